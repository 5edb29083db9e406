/**
 * `saga engine`'s HTTP server: OpenAI's completions and chat completions (whole and streamed), the model
 * list, loading more models at run time, health and Prometheus metrics, over any InferenceEngine
 * (./types.ts). The server checks requests and shapes answers and errors as OpenAI does; the engine runs.
 *
 * Errors all come out as OpenAI's `{error: {message, type, param, code}}`: 400 for a bad request (also
 * malformed JSON and a body that is not JSON), 413 for a body over `maxBodyBytes`, 404 for an unknown
 * model or URL, 409 for loading a model id twice, 503 for an engine shutting down, 500 for anything else.
 *
 * Returned not listening: the CLI listens, and closes the engines it passed in; the server closes the ones
 * it loaded itself (POST /saga/models) when it closes.
 */
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import { SagaError, badArgument } from '../errors';
import { CHAT_ROLES, isChatRole, renderChatPrompt, type ChatMessage, type ChatRole, type ChatTextPart } from './chat_prompt';
import { countHttpRequests } from './http_metrics';
import { OPENAI_SERVER_OPTIONS, OpenAiError, STATUS, installOpenAiErrorHandlers, invalidRequest, toOpenAiError } from './openai_errors';
import {
  field,
  isJsonObject,
  missing,
  readBoolean,
  readBooleanAt,
  readInteger,
  readMaxTokens,
  readNumber,
  readRequiredString,
  readString,
  requireJsonObject,
  wrongType,
  type JsonObject,
} from './openai_fields';
import { readIdentity } from './program_identity';
import type { CompletionRequest, CompletionResult, CompletionUsage, EngineStats, FinishReason, InferenceEngine } from './types';

export { OpenAiError, toOpenAiError, type OpenAiErrorBody } from './openai_errors';

/** Room for a long agent conversation (a 128k-token context is ~0.5 MB of text) several times over as JSON. */
const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
/** OpenAI's default for /v1/completions. */
const DEFAULT_COMPLETION_MAX_TOKENS = 16;
/** OpenAI sets none for chat (up to the context); a bounded default keeps a forgotten max_tokens from holding a sequence for the whole context. */
const DEFAULT_CHAT_MAX_TOKENS = 256;
/** OpenAI's default and range for `temperature`. */
const DEFAULT_TEMPERATURE = 1;
const MAX_TEMPERATURE = 2;
/** OpenAI's limit on `stop`. */
const MAX_STOP_SEQUENCES = 4;
const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  // Proxies such as nginx would otherwise hold the tokens back in their buffers.
  'x-accel-buffering': 'no',
} as const;

export interface EngineServerOptions {
  /** Models served from the start; their ids must differ. */
  readonly engines: readonly InferenceEngine[];
  /** Loads a GGUF file as another engine (POST /saga/models); without it that route answers 404. */
  readonly loadModel?: (path: string) => Promise<InferenceEngine>;
  readonly maxBodyBytes?: number;
  readonly logger?: boolean;
}


/** `stop`: a string or up to MAX_STOP_SEQUENCES of them. */
function readStop(body: JsonObject): string[] | undefined {
  const value = field(body, 'stop');
  if (value === undefined) return undefined;
  if (typeof value !== 'string' && !Array.isArray(value)) throw wrongType('stop', 'a string or an array of strings', value);
  const sequences: unknown[] = Array.isArray(value) ? value : [value];
  if (sequences.length > MAX_STOP_SEQUENCES) {
    throw invalidRequest('stop', `Invalid 'stop': array too long. Expected an array with maximum length ${MAX_STOP_SEQUENCES}, but got an array with length ${sequences.length} instead.`);
  }
  return sequences.map((sequence, index) => {
    const param = Array.isArray(value) ? `stop[${index}]` : 'stop';
    if (typeof sequence !== 'string') throw wrongType(param, 'a string', sequence);
    // An empty stop sequence would match at once and end every generation before it starts.
    if (sequence === '') throw invalidRequest(param, `Invalid '${param}': a stop sequence must not be empty.`);
    return sequence;
  });
}


function readTextPrompt(body: JsonObject): string {
  const value = field(body, 'prompt');
  if (value === undefined) throw missing('prompt');
  const prompt = Array.isArray(value) && value.length === 1 ? value[0] : value;
  if (typeof prompt !== 'string') {
    if (Array.isArray(value)) {
      throw invalidRequest('prompt', "Invalid 'prompt': this server takes one text prompt per request: a string, or an array holding exactly one string.");
    }
    throw wrongType('prompt', 'a string', value);
  }
  if (prompt === '') throw invalidRequest('prompt', "Invalid 'prompt': the prompt must not be empty.");
  return prompt;
}

function readContentPart(value: unknown, param: string): ChatTextPart {
  if (!isJsonObject(value)) throw wrongType(param, 'an object', value);
  if (value.type !== 'text') {
    throw invalidRequest(`${param}.type`, `Invalid '${param}.type': this server takes text content only ('text'), but got ${JSON.stringify(value.type ?? null)}.`);
  }
  const text = readString(value, 'text');
  if (text === undefined) throw missing(`${param}.text`);
  return { type: 'text', text };
}

function readContent(message: JsonObject, role: ChatRole, param: string): ChatMessage['content'] {
  const value = field(message, 'content');
  if (value === undefined) {
    // An assistant message that only called tools carries no content.
    if (role === 'assistant') return null;
    throw missing(param);
  }
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) throw wrongType(param, 'a string or an array of text parts', value);
  return value.map((part, index) => readContentPart(part, `${param}[${index}]`));
}

function readChatMessage(value: unknown, param: string): ChatMessage {
  if (!isJsonObject(value)) throw wrongType(param, 'an object', value);
  const role = field(value, 'role');
  if (role === undefined) throw missing(`${param}.role`);
  if (!isChatRole(role)) {
    const supported = CHAT_ROLES.map((known) => `'${known}'`).join(', ');
    throw invalidRequest(`${param}.role`, `Invalid '${param}.role': ${JSON.stringify(role)}. Supported values are: ${supported}.`);
  }
  return { role, content: readContent(value, role, `${param}.content`) };
}

function readChatPrompt(body: JsonObject): string {
  const value = field(body, 'messages');
  if (value === undefined) throw missing('messages');
  if (!Array.isArray(value)) throw wrongType('messages', 'an array', value);
  if (value.length === 0) throw invalidRequest('messages', "Invalid 'messages': empty array. Expected an array with minimum length 1.");
  return renderChatPrompt(value.map((message, index) => readChatMessage(message, `messages[${index}]`)));
}

/** Everything of a completion request other than the prompt and the model. */
interface GenerationOptions {
  /** Undefined: the endpoint's default, fitted to the context. */
  readonly maxTokens: number | undefined;
  readonly maxTokensParam: string;
  readonly temperature: number;
  readonly seed: number | undefined;
  readonly stop: string[] | undefined;
  readonly ignoreEos: boolean | undefined;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly user: string | undefined;
}

function readGenerationOptions(body: JsonObject, endpoint: CompletionEndpoint): GenerationOptions {
  const maxTokens = readMaxTokens(body, endpoint.maxTokensParams);
  const n = readInteger(body, 'n', 1);
  if (n !== undefined && n !== 1) throw invalidRequest('n', `Invalid 'n': this server generates one choice per request, so 'n' must be 1, but got ${n}.`);
  const stream = readBoolean(body, 'stream') ?? false;
  const streamOptions = field(body, 'stream_options');
  if (streamOptions !== undefined && !isJsonObject(streamOptions)) throw wrongType('stream_options', 'an object', streamOptions);
  if (streamOptions !== undefined && !stream) {
    throw invalidRequest('stream_options', "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
  }
  const includeUsage = streamOptions === undefined ? false : readBooleanAt(streamOptions, 'include_usage', 'stream_options.include_usage');
  return {
    maxTokens: maxTokens.value,
    maxTokensParam: maxTokens.param,
    temperature: readNumber(body, 'temperature', 0, MAX_TEMPERATURE) ?? DEFAULT_TEMPERATURE,
    seed: readInteger(body, 'seed'),
    stop: readStop(body),
    ignoreEos: readBoolean(body, 'ignore_eos'),
    stream,
    includeUsage,
    user: readString(body, 'user'),
  };
}

/**
 * Tokens to generate: the request's, if prompt and output fit the context together; else the endpoint's
 * default cut to what fits. A prompt that leaves no room at all is refused in OpenAI's words.
 */
function fitMaxTokens(engine: InferenceEngine, prompt: string, options: GenerationOptions, endpoint: CompletionEndpoint): number {
  const promptTokens = engine.countTokens(prompt);
  const room = engine.contextSize - promptTokens;
  const limit = `This model's maximum context length is ${engine.contextSize} tokens.`;
  const what = endpoint.promptParam;
  if (options.maxTokens !== undefined) {
    if (options.maxTokens <= room) return options.maxTokens;
    throw invalidRequest(
      what,
      `${limit} However, you requested ${promptTokens + options.maxTokens} tokens (${promptTokens} in the ${what}, ${options.maxTokens} in the completion). ` +
        `Please reduce the length of the ${what} or completion.`,
      'context_length_exceeded',
    );
  }
  if (room >= 1) return Math.min(endpoint.defaultMaxTokens, room);
  throw invalidRequest(
    what,
    `${limit} However, your ${what} resulted in ${promptTokens} tokens, which leaves no room for the completion. Please reduce the length of the ${what}.`,
    'context_length_exceeded',
  );
}

// ---------------------------------------------------------------------------------------------------------
// Answers: the two completion endpoints differ only in where the prompt comes from and how a choice looks

interface ResponseHead {
  readonly id: string;
  readonly created: number;
  readonly model: string;
}

interface OpenAiUsage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  readonly prompt_tokens_details: { readonly cached_tokens: number };
}

function toOpenAiUsage(usage: CompletionUsage): OpenAiUsage {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedTokens },
  };
}

interface CompletionEndpoint {
  /** The field the prompt comes in: named by context-length errors. */
  readonly promptParam: 'prompt' | 'messages';
  /** Fields that may set the output length, preferred first. */
  readonly maxTokensParams: readonly string[];
  readonly defaultMaxTokens: number;
  readonly idPrefix: string;
  readonly object: string;
  readonly chunkObject: string;
  readPrompt(body: JsonObject): string;
  /** The one choice of a whole answer. */
  choice(text: string, finishReason: FinishReason): object;
  /** The choice of a streamed chunk: a piece of the text, or, with a finish reason, the closing chunk. */
  chunkChoice(text: string, finishReason: FinishReason | null): object;
  /** What the stream opens with before any text, if anything (chat: the assistant's role). */
  readonly openingChunkChoice: object | null;
}

function textChoice(text: string, finishReason: FinishReason | null): object {
  return { index: 0, text, logprobs: null, finish_reason: finishReason };
}

const TEXT_COMPLETIONS: CompletionEndpoint = {
  promptParam: 'prompt',
  maxTokensParams: ['max_tokens'],
  defaultMaxTokens: DEFAULT_COMPLETION_MAX_TOKENS,
  idPrefix: 'cmpl-',
  object: 'text_completion',
  chunkObject: 'text_completion',
  readPrompt: readTextPrompt,
  choice: textChoice,
  chunkChoice: textChoice,
  openingChunkChoice: null,
};

const CHAT_COMPLETIONS: CompletionEndpoint = {
  promptParam: 'messages',
  maxTokensParams: ['max_completion_tokens', 'max_tokens'],
  defaultMaxTokens: DEFAULT_CHAT_MAX_TOKENS,
  idPrefix: 'chatcmpl-',
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  readPrompt: readChatPrompt,
  choice: (text, finishReason) => ({ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finishReason }),
  // The closing chunk carries an empty delta, as OpenAI's does.
  chunkChoice: (text, finishReason) => ({ index: 0, delta: finishReason === null ? { content: text } : {}, logprobs: null, finish_reason: finishReason }),
  openingChunkChoice: { index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null },
};

/** The fields every answer and chunk opens with, in OpenAI's order. */
function envelope(head: ResponseHead, object: string): object {
  return { id: head.id, object, created: head.created, model: head.model };
}

function completionResponse(endpoint: CompletionEndpoint, head: ResponseHead, result: CompletionResult): object {
  return { ...envelope(head, endpoint.object), choices: [endpoint.choice(result.text, result.finishReason)], usage: toOpenAiUsage(result.usage) };
}

/**
 * A streamed answer as Server-Sent Events in OpenAI's format. It starts (hijacks the reply, sends the
 * headers) only with its first event, so that an engine failing before any output still gets an ordinary
 * HTTP error status; after that, a failure can only be reported as an `error` event.
 */
class CompletionEventStream {
  private opened = false;

  constructor(
    private readonly reply: FastifyReply,
    private readonly endpoint: CompletionEndpoint,
    private readonly head: ResponseHead,
    private readonly includeUsage: boolean,
  ) {}

  get started(): boolean {
    return this.opened;
  }

  text(delta: string): void {
    if (delta !== '') this.send(this.chunk([this.endpoint.chunkChoice(delta, null)]));
  }

  finish(result: CompletionResult): void {
    this.send(this.chunk([this.endpoint.chunkChoice('', result.finishReason)]));
    if (this.includeUsage) this.send({ ...envelope(this.head, this.endpoint.chunkObject), choices: [], usage: toOpenAiUsage(result.usage) });
    this.sendData('[DONE]');
    this.reply.raw.end();
  }

  /** No [DONE] after an error: the stream did not complete, and clients can tell. */
  fail(error: OpenAiError): void {
    this.send(error.body());
    this.reply.raw.end();
  }

  private chunk(choices: readonly object[]): object {
    // With include_usage, OpenAI gives every chunk before the usage chunk `usage: null`.
    return { ...envelope(this.head, this.endpoint.chunkObject), choices, ...(this.includeUsage ? { usage: null } : {}) };
  }

  private send(event: object): void {
    this.sendData(JSON.stringify(event));
  }

  private sendData(data: string): void {
    const raw = this.reply.raw;
    if (!this.opened) {
      this.opened = true;
      this.reply.hijack();
      if (!raw.destroyed) raw.writeHead(STATUS.ok, SSE_HEADERS);
      if (this.endpoint.openingChunkChoice !== null) this.send(this.chunk([this.endpoint.openingChunkChoice]));
    }
    // Also guards an engine calling onText after it settled: writing after end would raise on the response.
    if (!raw.destroyed && !raw.writableEnded) raw.write(`data: ${data}\n\n`);
  }
}

/** Aborted when the client goes away before its answer is complete: the engine stops generating for nobody. */
function abortWhenClientLeaves(response: ServerResponse): AbortController {
  const controller = new AbortController();
  response.once('close', () => {
    if (!response.writableEnded) controller.abort();
  });
  return controller;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

// ---------------------------------------------------------------------------------------------------------
// Models served

interface ModelEntry {
  readonly id: string;
  readonly object: 'model';
  readonly created: number;
  readonly owned_by: 'saga';
}

/** The engines by model id, with the entries /v1/models lists. */
class ServedModels {
  private readonly byId = new Map<string, { readonly engine: InferenceEngine; readonly entry: ModelEntry }>();

  has(modelId: string): boolean {
    return this.byId.has(modelId);
  }

  add(engine: InferenceEngine): ModelEntry {
    if (this.has(engine.modelId)) throw badArgument(`model id '${engine.modelId}' is served twice`);
    const entry: ModelEntry = { id: engine.modelId, object: 'model', created: nowSeconds(), owned_by: 'saga' };
    this.byId.set(engine.modelId, { engine, entry });
    return entry;
  }

  engine(modelId: string): InferenceEngine {
    const served = this.byId.get(modelId);
    if (served === undefined) {
      throw new OpenAiError(STATUS.notFound, `The model '${modelId}' does not exist or is not served here.`, 'model', 'model_not_found');
    }
    return served.engine;
  }

  engines(): InferenceEngine[] {
    return [...this.byId.values()].map((served) => served.engine);
  }

  entries(): ModelEntry[] {
    return [...this.byId.values()].map((served) => served.entry);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Metrics

interface EngineStatMetric {
  readonly name: string;
  readonly help: string;
  read(stats: EngineStats): number;
}

const ENGINE_COUNTERS: readonly EngineStatMetric[] = [
  { name: 'saga_engine_requests_total', help: 'Completion requests the engine has run.', read: (s) => s.requestsTotal },
  { name: 'saga_engine_prompt_tokens_total', help: 'Prompt tokens of those requests.', read: (s) => s.promptTokensTotal },
  { name: 'saga_engine_cached_tokens_total', help: 'Prompt tokens whose KV was reused or restored, not recomputed.', read: (s) => s.cachedTokensTotal },
  { name: 'saga_engine_completion_tokens_total', help: 'Tokens generated.', read: (s) => s.completionTokensTotal },
  { name: 'saga_engine_offloads_total', help: 'Sessions moved from a sequence to the host tier.', read: (s) => s.offloadsTotal },
  { name: 'saga_engine_drops_total', help: 'Sessions whose KV was discarded.', read: (s) => s.dropsTotal },
  { name: 'saga_engine_restores_total', help: 'Sessions restored from the host tier into a sequence.', read: (s) => s.restoresTotal },
];

const ENGINE_GAUGES: readonly EngineStatMetric[] = [
  { name: 'saga_engine_requests_running', help: 'Requests generating now.', read: (s) => s.requestsRunning },
  { name: 'saga_engine_requests_waiting', help: 'Requests waiting for admission.', read: (s) => s.requestsWaiting },
  { name: 'saga_engine_resident_sessions', help: 'Sessions whose KV is resident in a sequence.', read: (s) => s.residentSessions },
  { name: 'saga_engine_host_tier_sessions', help: 'Sessions whose KV is held in the host tier.', read: (s) => s.hostTierSessions },
];

const ENGINE_LABELS = ['model', 'policy'] as const;
type EngineLabels = Record<(typeof ENGINE_LABELS)[number], string>;

/** Each engine's labels and stats, read once per metric at scrape time. */
function* engineSnapshots(models: ServedModels): Generator<{ readonly labels: EngineLabels; readonly stats: EngineStats }> {
  for (const engine of models.engines()) yield { labels: { model: engine.modelId, policy: engine.policyName }, stats: engine.stats() };
}

/**
 * The engines' own counters and gauges, copied from `stats()` when scraped. A counter is reset and set
 * to the snapshot's total, so that it keeps Prometheus's counter type (rate() and resets work on it).
 */
function registerEngineMetrics(registry: Registry, models: ServedModels): void {
  const config = (metric: EngineStatMetric) => ({ name: metric.name, help: metric.help, labelNames: ENGINE_LABELS, registers: [registry] });
  for (const metric of ENGINE_COUNTERS) {
    new Counter({
      ...config(metric),
      collect() {
        this.reset();
        for (const { labels, stats } of engineSnapshots(models)) this.inc(labels, metric.read(stats));
      },
    });
  }
  for (const metric of ENGINE_GAUGES) {
    new Gauge({
      ...config(metric),
      collect() {
        this.reset();
        for (const { labels, stats } of engineSnapshots(models)) this.set(labels, metric.read(stats));
      },
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// The server

export function createEngineServer(options: EngineServerOptions): FastifyInstance {
  const app = Fastify({ ...OPENAI_SERVER_OPTIONS, logger: options.logger ?? false, bodyLimit: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES });
  installOpenAiErrorHandlers(app);

  const models = new ServedModels();
  for (const engine of options.engines) models.add(engine);
  /** Engines this server loaded (POST /saga/models): it closes them; the caller closes the ones it passed in. */
  const loadedHere: InferenceEngine[] = [];
  let anonymousSessions = 0;
  const anonymousSession = (): string => `anon-${++anonymousSessions}`;

  const registry = new Registry();
  registerEngineMetrics(registry, models);
  countHttpRequests(app, registry, 'saga_engine');

  async function complete(endpoint: CompletionEndpoint, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const body = requireJsonObject(request.body);
    const engine = models.engine(readRequiredString(body, 'model'));
    const prompt = endpoint.readPrompt(body);
    const generation = readGenerationOptions(body, endpoint);
    const identity = readIdentity(request.headers, generation.user, anonymousSession);
    const maxTokens = fitMaxTokens(engine, prompt, generation, endpoint);
    const client = abortWhenClientLeaves(reply.raw);
    const completion: CompletionRequest = {
      ...identity,
      prompt,
      maxTokens,
      temperature: generation.temperature,
      seed: generation.seed,
      stop: generation.stop,
      ignoreEos: generation.ignoreEos,
      signal: client.signal,
    };
    const head: ResponseHead = { id: `${endpoint.idPrefix}${randomUUID().replaceAll('-', '')}`, created: nowSeconds(), model: engine.modelId };
    const stream = generation.stream ? new CompletionEventStream(reply, endpoint, head, generation.includeUsage) : null;
    try {
      const result = await engine.complete(completion, stream === null ? undefined : (delta) => stream.text(delta));
      if (stream === null) return completionResponse(endpoint, head, result);
      stream.finish(result);
    } catch (error) {
      if (client.signal.aborted) {
        reply.hijack(); // the client is gone: nobody to answer, nothing to report
        return reply;
      }
      const answer = toOpenAiError(error, endpoint.promptParam);
      if (stream === null || !stream.started) throw answer;
      if (answer.status >= STATUS.internalError) request.log.error({ err: error }, 'streamed request failed');
      stream.fail(answer);
    }
    return reply;
  }

  app.get('/healthz', async () => ({ status: 'ok', models: models.entries().map((entry) => entry.id) }));
  app.get('/v1/models', async () => ({ object: 'list', data: models.entries() }));
  app.post('/v1/completions', (request, reply) => complete(TEXT_COMPLETIONS, request, reply));
  app.post('/v1/chat/completions', (request, reply) => complete(CHAT_COMPLETIONS, request, reply));

  app.post('/saga/models', async (request) => {
    const { loadModel } = options;
    if (loadModel === undefined) {
      throw new OpenAiError(STATUS.notFound, 'This server loads no models at run time: it was started without a model loader.', 'path');
    }
    const path = readRequiredString(requireJsonObject(request.body), 'path');
    let engine: InferenceEngine;
    try {
      engine = await loadModel(path);
    } catch (error) {
      if (error instanceof SagaError && error.code === 'ERR_SAGA_BAD_MODEL') throw invalidRequest('path', error.message, 'invalid_model_file');
      throw error;
    }
    if (models.has(engine.modelId)) {
      await engine.close().catch((error: unknown) => request.log.warn({ err: error }, 'closing a duplicate model failed'));
      throw new OpenAiError(STATUS.conflict, `The model '${engine.modelId}' is already served.`, 'path', 'model_already_loaded');
    }
    loadedHere.push(engine);
    return models.add(engine);
  });

  app.get('/metrics', async (_request, reply) => {
    void reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  app.addHook('onClose', async () => {
    await Promise.all(loadedHere.map((engine) => engine.close()));
  });

  return app;
}
