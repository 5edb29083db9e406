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
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { SagaError, badArgument } from '../errors';
import { CHAT_ROLES, isChatRole, renderChatPrompt, type ChatMessage, type ChatRole, type ChatTextPart } from './chat_prompt';
import type { CompletionRequest, CompletionResult, CompletionUsage, EngineStats, FinishReason, InferenceEngine, ProgramIdentity } from './types';

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
/** Session, tenant and kind are ids that key the engine's tables and logs, not payloads. */
const MAX_IDENTITY_CHARS = 256;
const DEFAULT_TENANT = 'default';
const DEFAULT_KIND = 'default';
const IDENTITY_HEADERS = { session: 'x-saga-session', tenant: 'x-saga-tenant', kind: 'x-saga-kind' } as const;
/** Control characters have no place in an id and break logs and metric labels. */
const CONTROL_CHARACTER = /\p{Cc}/u;
/** Calls run from milliseconds (health, scrapes, short completions) to minutes (long generations behind a queue). */
const HTTP_DURATION_BUCKETS_S = [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** The route label of requests that matched no route, so that scanners cannot mint label values. */
const UNMATCHED_ROUTE = 'unmatched';
const MS_PER_S = 1000;

const STATUS = {
  ok: 200,
  badRequest: 400,
  notFound: 404,
  conflict: 409,
  payloadTooLarge: 413,
  unsupportedMediaType: 415,
  /** nginx's status for a client that left before its answer was complete (in metrics only: nobody receives it). */
  clientClosedRequest: 499,
  internalError: 500,
  unavailable: 503,
} as const;

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

// ---------------------------------------------------------------------------------------------------------
// Errors in OpenAI's shape

type OpenAiErrorType = 'invalid_request_error' | 'server_error';

export interface OpenAiErrorBody {
  readonly error: { readonly message: string; readonly type: OpenAiErrorType; readonly param: string | null; readonly code: string | null };
}

/** A failure answered to the client: its HTTP status and OpenAI's error object. */
export class OpenAiError extends Error {
  readonly type: OpenAiErrorType;

  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'OpenAiError';
    this.type = status < STATUS.internalError ? 'invalid_request_error' : 'server_error';
  }

  body(): OpenAiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

function invalidRequest(param: string | null, message: string, code: string | null = null): OpenAiError {
  return new OpenAiError(STATUS.badRequest, message, param, code);
}

interface FastifyClientError extends Error {
  readonly code: string;
  readonly statusCode: number;
}

/** Fastify's own 4xx errors (body parsing, content type, body size). */
function isFastifyClientError(error: unknown): error is FastifyClientError {
  if (!(error instanceof Error) || !('statusCode' in error) || !('code' in error)) return false;
  const { statusCode, code } = error;
  return typeof statusCode === 'number' && statusCode >= STATUS.badRequest && statusCode < STATUS.internalError && typeof code === 'string';
}

function fromFastifyClientError(error: FastifyClientError): OpenAiError {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return invalidRequest(null, 'Unsupported content type: send the request body as JSON, with content-type application/json.');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return invalidRequest(null, 'The request body is empty: expected a JSON object.');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return invalidRequest(null, 'The request body is not valid JSON.');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new OpenAiError(STATUS.payloadTooLarge, 'The request body is larger than this server accepts.');
    default:
      return new OpenAiError(error.statusCode === STATUS.unsupportedMediaType ? STATUS.badRequest : error.statusCode, error.message);
  }
}

function fromSagaError(error: SagaError, promptParam: string | null): OpenAiError {
  switch (error.code) {
    case 'ERR_SAGA_BAD_ARGUMENT':
      return invalidRequest(null, error.message);
    case 'ERR_SAGA_CONTEXT_LENGTH':
      return invalidRequest(promptParam, error.message, 'context_length_exceeded');
    case 'ERR_SAGA_ENGINE_CLOSED':
      return new OpenAiError(STATUS.unavailable, error.message);
    default:
      return new OpenAiError(STATUS.internalError, error.message);
  }
}

/** Any failure as the answer to send; `promptParam` names the field a prompt the engine found too long came in. */
export function toOpenAiError(error: unknown, promptParam: string | null = null): OpenAiError {
  if (error instanceof OpenAiError) return error;
  if (error instanceof SagaError) return fromSagaError(error, promptParam);
  if (isFastifyClientError(error)) return fromFastifyClientError(error);
  const message = error instanceof Error ? error.message : String(error);
  return new OpenAiError(STATUS.internalError, message === '' ? 'Internal server error.' : message);
}

// ---------------------------------------------------------------------------------------------------------
// Reading request fields (OpenAI takes `null` for an optional field as "not given"; unknown fields are ignored)

type JsonObject = Readonly<Record<string, unknown>>;

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requireJsonObject(body: unknown): JsonObject {
  if (!isJsonObject(body)) throw invalidRequest(null, `The request body must be a JSON object, but got ${describeJson(body)}.`);
  return body;
}

function field(body: JsonObject, name: string): unknown {
  const value = Object.hasOwn(body, name) ? body[name] : undefined;
  return value === null ? undefined : value;
}

function describeJson(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a decimal';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

function wrongType(param: string, expected: string, value: unknown): OpenAiError {
  return invalidRequest(param, `Invalid type for '${param}': expected ${expected}, but got ${describeJson(value)} instead.`);
}

function missing(param: string): OpenAiError {
  return invalidRequest(param, `Missing required parameter: '${param}'.`);
}

function readString(body: JsonObject, name: string): string | undefined {
  const value = field(body, name);
  if (value !== undefined && typeof value !== 'string') throw wrongType(name, 'a string', value);
  return value;
}

function readRequiredString(body: JsonObject, name: string): string {
  const value = readString(body, name);
  if (value === undefined) throw missing(name);
  if (value === '') throw invalidRequest(name, `Invalid '${name}': expected a non-empty string.`);
  return value;
}

function readBoolean(body: JsonObject, name: string): boolean | undefined {
  const value = field(body, name);
  if (value !== undefined && typeof value !== 'boolean') throw wrongType(name, 'a boolean', value);
  return value;
}

function outOfRange(param: string, kind: string, bound: string, value: number): OpenAiError {
  return invalidRequest(param, `Invalid '${param}': ${kind}. Expected a value ${bound}, but got ${value} instead.`);
}

function readInteger(body: JsonObject, name: string, min = Number.MIN_SAFE_INTEGER): number | undefined {
  const value = field(body, name);
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw wrongType(name, 'an integer', value);
  if (value < min) throw outOfRange(name, 'integer below minimum value', `>= ${min}`, value);
  if (value > Number.MAX_SAFE_INTEGER) throw outOfRange(name, 'integer above maximum value', `<= ${Number.MAX_SAFE_INTEGER}`, value);
  return value;
}

function readNumber(body: JsonObject, name: string, min: number, max: number): number | undefined {
  const value = field(body, name);
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw wrongType(name, 'a number', value);
  if (value < min) throw outOfRange(name, 'number below minimum value', `>= ${min}`, value);
  if (value > max) throw outOfRange(name, 'number above maximum value', `<= ${max}`, value);
  return value;
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

/** The first of `names` given, each checked (chat takes `max_completion_tokens` over the older `max_tokens`). */
function readMaxTokens(body: JsonObject, names: readonly string[]): { readonly value: number | undefined; readonly param: string } {
  const values = names.map((name) => readInteger(body, name, 1));
  const given = values.findIndex((value) => value !== undefined);
  return given < 0 ? { value: undefined, param: names[0] } : { value: values[given], param: names[given] };
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

/** A boolean of a nested object, named by its full path in errors. */
function readBooleanAt(object: JsonObject, name: string, param: string): boolean {
  const value = field(object, name);
  if (value !== undefined && typeof value !== 'boolean') throw wrongType(param, 'a boolean', value);
  return value ?? false;
}

function checkIdentityValue(value: string, param: string): string {
  if (value === '' || value.length > MAX_IDENTITY_CHARS || CONTROL_CHARACTER.test(value)) {
    throw invalidRequest(param, `Invalid '${param}': expected 1 to ${MAX_IDENTITY_CHARS} printable characters.`);
  }
  return value;
}

function identityHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  const text = Array.isArray(value) ? value.join(', ') : value;
  return text === undefined ? undefined : checkIdentityValue(text, name);
}

/**
 * The agent program a call belongs to: the x-saga-* headers; else `user` as the session (what OpenAI
 * clients can set without custom headers); else a session of its own, so that unrelated calls never share.
 */
function readIdentity(headers: IncomingHttpHeaders, user: string | undefined, anonymousSession: () => string): ProgramIdentity {
  const userSession = user === undefined || user === '' ? undefined : checkIdentityValue(user, 'user');
  return {
    session: identityHeader(headers, IDENTITY_HEADERS.session) ?? userSession ?? anonymousSession(),
    tenant: identityHeader(headers, IDENTITY_HEADERS.tenant) ?? DEFAULT_TENANT,
    kind: identityHeader(headers, IDENTITY_HEADERS.kind) ?? DEFAULT_KIND,
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
  return Math.floor(Date.now() / MS_PER_S);
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

/** HTTP requests by route and status, and their durations, counted when the response closes (streams included). */
function countHttpRequests(app: FastifyInstance, registry: Registry): void {
  const requests = new Counter({
    name: 'saga_engine_http_requests_total',
    help: 'HTTP requests answered, by route and status (499: the client left first).',
    labelNames: ['route', 'status'] as const,
    registers: [registry],
  });
  const durations = new Histogram({
    name: 'saga_engine_http_request_duration_seconds',
    help: 'Time from a request arriving to its response closing, by route.',
    labelNames: ['route'] as const,
    buckets: HTTP_DURATION_BUCKETS_S,
    registers: [registry],
  });
  app.addHook('onRequest', (request, reply, done) => {
    const startMs = performance.now();
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    reply.raw.once('close', () => {
      const status = reply.raw.writableEnded ? reply.raw.statusCode : STATUS.clientClosedRequest;
      requests.inc({ route, status: String(status) });
      durations.observe({ route }, (performance.now() - startMs) / MS_PER_S);
    });
    done();
  });
}

// ---------------------------------------------------------------------------------------------------------
// The server

export function createEngineServer(options: EngineServerOptions): FastifyInstance {
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES });
  // JSON only: a text/plain body would otherwise reach the handlers as a string.
  app.removeContentTypeParser('text/plain');

  const models = new ServedModels();
  for (const engine of options.engines) models.add(engine);
  /** Engines this server loaded (POST /saga/models): it closes them; the caller closes the ones it passed in. */
  const loadedHere: InferenceEngine[] = [];
  let anonymousSessions = 0;
  const anonymousSession = (): string => `anon-${++anonymousSessions}`;

  const registry = new Registry();
  registerEngineMetrics(registry, models);
  countHttpRequests(app, registry);

  app.setErrorHandler((error, request, reply) => {
    const answer = toOpenAiError(error);
    if (answer.status >= STATUS.internalError) request.log.error({ err: error }, 'request failed');
    return reply.status(answer.status).send(answer.body());
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(STATUS.notFound).send(new OpenAiError(STATUS.notFound, `Invalid URL (${request.method} ${request.url}).`, null, 'unknown_url').body()),
  );

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
