/**
 * `saga serve`'s HTTP side (Fastify): OpenAI's completions and chat completions, checked just enough to
 * schedule them (a JSON object; `messages` or `prompt`; `max_tokens`, `stream`, `user` of the right types)
 * and otherwise passed on as they came; the union of the engines' models; health; Prometheus metrics.
 * Errors are OpenAI-shaped (lib/engine/openai_errors.ts), as `saga engine`'s: 400 for a bad request (a body
 * over `limits.maxBodyBytes` included, code `request_too_large`), 429 with Retry-After when admission
 * refuses, 503 when no engine is up, 502 when every engine tried failed, 504 past `timeouts.requestMs`.
 */
import { performance } from 'node:perf_hooks';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { countHttpRequests } from '../engine/http_metrics';
import { OPENAI_SERVER_OPTIONS, OpenAiError, STATUS, installOpenAiErrorHandlers, invalidRequest, isFastifyClientError, toOpenAiError } from '../engine/openai_errors';
import { field, missing, readBoolean, readMaxTokens, readString, requireJsonObject, wrongType, type JsonObject } from '../engine/openai_fields';
import { checkIdentityValue, readIdentity } from '../engine/program_identity';
import type { CallInfo } from '../policy/types';
import type { GatewayConfig } from './config';
import type { EngineState } from './engine_state';
import { GatewayCall, type CompletionPath, type Settlement } from './gateway_call';
import type { GatewayMetrics } from './metrics';
import { chatPromptText, completionPromptText, estimatePrompt } from './prompt_estimate';
import type { Scheduler } from './scheduler';
import type { SessionTable } from './sessions';
import type { ModelEntry, Upstream } from './upstream';

/** Where a client says a program ended (DELETE; `:id` is its session id, as sent in x-saga-session). */
export const SESSION_END_PATH = '/saga/sessions/:id';

/** A request whose JSON body's bytes the parser kept. */
type RawBodyRequest = FastifyRequest & { rawBody?: Buffer };

export interface GatewayServerParts {
  readonly config: GatewayConfig;
  readonly engines: readonly EngineState<GatewayCall>[];
  readonly scheduler: Scheduler;
  readonly upstream: Upstream;
  readonly metrics: GatewayMetrics;
  readonly sessions: SessionTable;
  readonly logger?: boolean;
}

interface Endpoint {
  readonly path: CompletionPath;
  /** Fields that set the output length (chat takes the newer one first). */
  readonly maxTokensParams: readonly string[];
  promptText(body: JsonObject): string;
}

const CHAT: Endpoint = {
  path: '/v1/chat/completions',
  maxTokensParams: ['max_completion_tokens', 'max_tokens'],
  promptText(body) {
    const messages = field(body, 'messages');
    if (messages === undefined) throw missing('messages');
    if (!Array.isArray(messages)) throw wrongType('messages', 'an array', messages);
    if (messages.length === 0) throw invalidRequest('messages', "Invalid 'messages': empty array. Expected an array with minimum length 1.");
    messages.forEach((message: unknown, i) => {
      if (typeof message !== 'object' || message === null || Array.isArray(message)) throw wrongType(`messages[${i}]`, 'an object', message);
      if (typeof (message as JsonObject).role !== 'string') throw missing(`messages[${i}].role`);
    });
    return chatPromptText(messages, field(body, 'tools'));
  },
};

const COMPLETIONS: Endpoint = {
  path: '/v1/completions',
  maxTokensParams: ['max_tokens'],
  promptText(body) {
    const prompt = field(body, 'prompt');
    if (prompt === undefined) throw missing('prompt');
    if (typeof prompt !== 'string' && !Array.isArray(prompt)) throw wrongType('prompt', 'a string or an array', prompt);
    if (prompt.length === 0) throw invalidRequest('prompt', "Invalid 'prompt': the prompt must not be empty.");
    return completionPromptText(prompt);
  },
};

/**
 * A settled call's answer. A whole answer is written on the raw response (as Fastify's send of a Buffer or
 * string would: the given headers and its content-length), without Fastify's send path; a streamed one
 * went out already; a client that left gets nothing.
 */
function respond(reply: FastifyReply, settled: Settlement): void {
  if (settled.kind === 'streamed') return;
  reply.hijack();
  if (settled.kind === 'gone') return;
  const raw = reply.raw;
  if (raw.destroyed) return;
  raw.writeHead(settled.status, { ...settled.headers, 'content-length': Buffer.byteLength(settled.body) });
  raw.end(settled.body);
}

export function createGatewayServer(parts: GatewayServerParts): FastifyInstance {
  const { config, engines, scheduler, upstream, metrics, sessions } = parts;
  const app = Fastify({ ...OPENAI_SERVER_OPTIONS, logger: parts.logger ?? false, bodyLimit: config.limits.maxBodyBytes });
  installOpenAiErrorHandlers(app, (error) => {
    if (isFastifyClientError(error) && error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return invalidRequest(null, `The request body is larger than this gateway accepts (limits.maxBodyBytes: ${config.limits.maxBodyBytes} bytes).`, 'request_too_large');
    }
    return toOpenAiError(error);
  });
  countHttpRequests(app, metrics.registry, 'saga_gateway');
  // JSON bodies are parsed as Fastify's own parser does (same errors, same prototype-poisoning checks), and
  // their bytes are kept: an engine that takes no hints gets them as they came, not re-serialised.
  const parseJson = app.getDefaultJsonParser(app.initialConfig.onProtoPoisoning ?? 'error', app.initialConfig.onConstructorPoisoning ?? 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    (request as RawBodyRequest).rawBody = body as Buffer;
    // Fastify's parser takes a Buffer as well as a string (secure-json-parse does); its type says string.
    parseJson(request, body as unknown as string, done);
  });
  let order = 0;
  let anonymous = 0;

  /**
   * A completion request: checked, admitted and queued here (errors thrown here are Fastify's to answer);
   * its answer goes out when the call settles (`respond`), on the raw response.
   */
  function complete(endpoint: Endpoint, request: FastifyRequest, reply: FastifyReply): void {
    const arrivalMs = performance.now();
    const body = requireJsonObject(request.body);
    const text = endpoint.promptText(body);
    const maxTokens = readMaxTokens(body, endpoint.maxTokensParams).value;
    const stream = readBoolean(body, 'stream') ?? false;
    const model = readString(body, 'model');
    const identity = readIdentity(request.headers, readString(body, 'user'), () => `anonymous-${++anonymous}`);
    const estimate = estimatePrompt(text);
    const { session, callIndex } = sessions.enter(identity.session, Date.now());
    const call: CallInfo = {
      taskIndex: session,
      callIndex,
      session,
      tenant: identity.tenant,
      kind: identity.kind,
      arrivalS: scheduler.nowS(),
      promptTokens: estimate.promptTokens,
      outputTokens: 0, // unknown until the call ends
      blockHashes: estimate.blockHashes,
    };
    sessions.record(identity.session, call);
    const authorization = request.headers.authorization;
    const job = new GatewayCall(
      call,
      order++,
      identity,
      endpoint.path,
      body,
      stream,
      model,
      authorization,
      arrivalMs,
      (status, headers) => {
        reply.hijack();
        reply.raw.writeHead(status, headers);
        return reply.raw;
      },
      (settled) => {
        sessions.settled(identity.session, session);
        respond(reply, settled);
      },
    );
    job.promptChars = text.length;
    job.maxTokens = maxTokens;
    job.rawBody = (request as RawBodyRequest).rawBody;
    // 'close' comes once per response.
    reply.raw.on('close', () => {
      if (!reply.raw.writableEnded) job.clientGone.abort();
    });
    try {
      scheduler.submit(job);
    } catch (error) {
      sessions.settled(identity.session, session);
      if (error instanceof OpenAiError && (error.status === STATUS.tooManyRequests || error.status === STATUS.unavailable)) {
        void reply.header('retry-after', String(config.admission.retryAfterS));
      }
      throw error;
    }
  }

  app.post(CHAT.path, (request, reply) => complete(CHAT, request, reply));
  app.post(COMPLETIONS.path, (request, reply) => complete(COMPLETIONS, request, reply));

  app.get('/v1/models', async () => {
    // Asked live of every engine up (so that a model loaded since shows), else what the last probe learned.
    const lists = await Promise.all(
      engines.filter((e) => e.up).map((e) =>
        upstream.probe(e).then(
          (entries) => {
            e.models = entries.map((m) => m.id);
            return entries;
          },
          () => (e.models ?? []).map((id): ModelEntry => ({ id, object: 'model', owned_by: e.name })),
        ),
      ),
    );
    const byId = new Map<string, ModelEntry>();
    for (const entry of lists.flat()) if (!byId.has(entry.id)) byId.set(entry.id, entry);
    return { object: 'list', data: [...byId.values()] };
  });

  // The client's word that a program ended (its calls in flight finish as usual): its session stops counting
  // on its home engine at once, not after GATEWAY.sessionIdleS, and its id may start a new program.
  app.delete<{ Params: { id: string } }>(SESSION_END_PATH, async (request, reply) => {
    const id = checkIdentityValue(request.params.id, 'id');
    const last = sessions.end(id);
    if (last === 'unknown') throw new OpenAiError(STATUS.notFound, `No session '${id}' is known (never seen, already ended, or idle past its expiry).`, 'id', 'session_not_found');
    if (last === 'open') throw new OpenAiError(STATUS.conflict, `Session '${id}' has calls not yet answered: end it after their answers.`, 'id', 'session_busy');
    scheduler.sessionEnded(last, scheduler.nowS());
    metrics.sessionsEnded.inc({ reason: 'client' });
    void reply.code(STATUS.noContent);
  });

  app.get('/healthz', async (_request, reply) => {
    const up = engines.filter((e) => e.up).length;
    void reply.code(up > 0 ? STATUS.ok : STATUS.unavailable);
    return {
      status: up === engines.length ? 'ok' : up > 0 ? 'degraded' : 'down',
      policy: config.policy,
      engines: engines.map((e) => ({ name: e.name, kind: e.config.kind, up: e.up, inFlight: e.inFlight, queued: e.queue.length, ...(e.downReason === undefined ? {} : { downReason: e.downReason }) })),
    };
  });

  app.get('/metrics', async (_request, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.text();
  });

  return app;
}
