/**
 * Calls to the engines, over undici: one connection Pool per engine. A call's body goes up with the
 * engine-specific hints (below), or as the client's bytes unchanged to an engine that takes none; its
 * answer comes back whole (a non-streamed answer is read in full, so a failure part-way can still be
 * retried elsewhere) or streamed (bytes go to the client as they arrive, never buffered). A failure before
 * the client's first byte is a `retry` outcome; after it, the stream ends with an OpenAI error event and no
 * `[DONE]`, so clients can tell it did not complete.
 *
 * Hints, by engine kind (README "saga serve" says which versions each was checked against):
 * - `llama.cpp`: `cache_prompt: true` and `id_slot`, a slot per session on that engine, so that a session's
 *   calls reuse the KV its slot holds;
 * - `vllm` with `priorityScheduling`: `priority`, the gateway queue policy's priority, rounded (lower first);
 * - `saga-engine`: the program identity as x-saga-session / x-saga-tenant / x-saga-kind headers;
 * - `sglang`, `openai`: none.
 */
import type { ServerResponse } from 'node:http';
import { once } from 'node:events';
import { Pool } from 'undici';
import { OpenAiError, STATUS } from '../engine/openai_errors';
import { CallAbort } from './call_abort';
import { IDENTITY_HEADERS } from '../engine/program_identity';
import type { GatewayConfig } from './config';
import type { EngineState } from './engine_state';
import type { GatewayCall } from './gateway_call';
import type { AttemptOutcome } from './scheduler';
import { StreamUsage, completionTokensOf, usageOfBody, type AnswerUsage } from './stream_usage';

/** Headers of a streamed answer: no caching, and no buffering in proxies in front of the gateway. */
const STREAM_HEADERS = { 'cache-control': 'no-cache', 'x-accel-buffering': 'no' } as const;
/** The engine that served an answer, for clients and tests. */
export const ENGINE_HEADER = 'x-saga-engine';
/** Upstream statuses that say the engine cannot serve now (overloaded, shutting down): tried elsewhere. */
const UNAVAILABLE_STATUSES: readonly number[] = [STATUS.badGateway, STATUS.unavailable, STATUS.gatewayTimeout];

/** How undici and Node name transport failures, and whether the engine itself is at fault. */
const TRANSPORT_FAILURES: Readonly<Record<string, { readonly reason: string; readonly engineDown: boolean }>> = {
  ECONNREFUSED: { reason: 'connect_refused', engineDown: true },
  UND_ERR_CONNECT_TIMEOUT: { reason: 'connect_timeout', engineDown: true },
  UND_ERR_HEADERS_TIMEOUT: { reason: 'first_byte_timeout', engineDown: true },
  UND_ERR_BODY_TIMEOUT: { reason: 'body_timeout', engineDown: true },
  UND_ERR_SOCKET: { reason: 'connection_lost', engineDown: true },
  ECONNRESET: { reason: 'connection_lost', engineDown: true },
  EPIPE: { reason: 'connection_lost', engineDown: true },
  ENOTFOUND: { reason: 'unresolvable', engineDown: true },
  EHOSTUNREACH: { reason: 'unreachable', engineDown: true },
};

class RequestTimeout extends Error {}

/** An entry of an engine's model list, as the engine gave it. */
export interface ModelEntry {
  readonly id: string;
  readonly [field: string]: unknown;
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const cause = (error as { cause?: unknown }).cause;
  return cause === undefined ? undefined : errorCode(cause);
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export class Upstream {
  private readonly pools = new Map<number, Pool>();
  private readonly basePaths = new Map<number, string>();

  constructor(
    engines: readonly EngineState<GatewayCall>[],
    private readonly config: GatewayConfig,
  ) {
    for (const engine of engines) {
      const url = new URL(engine.config.url);
      this.basePaths.set(engine.id, url.pathname.replace(/\/+$/, ''));
      // One connection per call in flight, and one for health probes.
      this.pools.set(engine.id, new Pool(url.origin, { connections: engine.config.capacity + 1, connect: { timeout: config.timeouts.connectMs } }));
    }
  }

  /** One attempt of `job` on `engine`. Never rejects. */
  run = async (job: GatewayCall, engine: EngineState<GatewayCall>): Promise<AttemptOutcome> => {
    const attempt = new CallAbort();
    const leave = () => attempt.abort();
    job.clientGone.once('abort', leave);
    const timer = setTimeout(() => attempt.abort(new RequestTimeout()), this.config.timeouts.requestMs);
    try {
      return await this.exchange(job, engine, attempt);
    } catch (error) {
      return this.failed(job, engine, error, attempt);
    } finally {
      clearTimeout(timer);
      job.clientGone.removeListener('abort', leave);
    }
  };

  /** GET /v1/models: the engine's model entries (throws when it does not answer 200 in time). */
  async probe(engine: EngineState<GatewayCall>): Promise<ModelEntry[]> {
    const { timeoutMs } = this.config.health;
    const res = await this.pool(engine).request({
      path: `${this.basePaths.get(engine.id)}/v1/models`,
      method: 'GET',
      headers: engine.config.apiKey === undefined ? {} : { authorization: `Bearer ${engine.config.apiKey}` },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`GET /v1/models answered ${res.statusCode}`);
    const json = JSON.parse(text) as { data?: unknown };
    if (!Array.isArray(json.data)) throw new Error('GET /v1/models answered no data list');
    return json.data.filter((m: unknown): m is ModelEntry => typeof m === 'object' && m !== null && typeof (m as { id?: unknown }).id === 'string');
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((pool) => pool.close()));
  }

  private pool(engine: EngineState<GatewayCall>): Pool {
    const pool = this.pools.get(engine.id);
    if (pool === undefined) throw new Error(`no pool for engine ${engine.name}`);
    return pool;
  }

  private async exchange(job: GatewayCall, engine: EngineState<GatewayCall>, signal: CallAbort): Promise<AttemptOutcome> {
    const { firstByteMs } = this.config.timeouts;
    const res = await this.pool(engine).request({
      path: `${this.basePaths.get(engine.id)}${job.path}`,
      method: 'POST',
      headers: this.headers(job, engine),
      body: takesHints(engine) ? JSON.stringify(withHints(job, engine)) : (job.rawBody ?? JSON.stringify(job.body)),
      signal,
      headersTimeout: firstByteMs,
      bodyTimeout: firstByteMs,
    });
    const contentType = headerText(res.headers['content-type']) ?? 'application/json';
    const headers = { 'content-type': contentType, [ENGINE_HEADER]: engine.name };
    if (res.statusCode >= 400 || !job.stream) {
      const body = Buffer.from(await res.body.arrayBuffer());
      if (UNAVAILABLE_STATUSES.includes(res.statusCode)) {
        return retry(`status_${res.statusCode}`, res.statusCode === STATUS.unavailable, `engine ${engine.name} answered ${res.statusCode}`);
      }
      // 4xx and other 5xx: the engine's own answer, passed on as it is (a retry would fail the same way).
      job.settle({ kind: 'reply', status: res.statusCode, headers, body });
      const failure = res.statusCode >= 400 ? { reason: `status_${Math.floor(res.statusCode / 100)}xx`, engineDown: false } : undefined;
      return answered(job, usageOfBody(body), failure);
    }
    return this.relayStream(job, res.statusCode, { ...headers, ...STREAM_HEADERS }, res.body);
  }

  /** Passes a stream on chunk by chunk; reads its usage on the side. */
  private async relayStream(job: GatewayCall, status: number, headers: Record<string, string>, body: AsyncIterable<Uint8Array>): Promise<AttemptOutcome> {
    const usage = new StreamUsage();
    let out: ServerResponse | undefined;
    try {
      for await (const chunk of body) {
        out ??= job.openStream(status, headers);
        usage.push(chunk);
        if (!out.write(chunk) && !out.destroyed) await once(out, 'drain');
      }
    } catch (error) {
      if (out === undefined) throw error; // nothing sent yet: the caller may try elsewhere
      const failure = this.classify(error, job.clientGone.aborted);
      if (!out.destroyed && !out.writableEnded) {
        const notice = new OpenAiError(STATUS.badGateway, `The engine failed during the stream (${failure.reason}).`, null, 'upstream_failed');
        out.end(`data: ${JSON.stringify(notice.body())}\n\n`);
      }
      return answered(job, usage.result(), job.clientGone.aborted ? undefined : failure);
    }
    if (out === undefined) return retry('empty_response', false, 'the engine answered an empty stream');
    out.end();
    return answered(job, usage.result());
  }

  /** An attempt that threw before the client got a byte. */
  private failed(job: GatewayCall, engine: EngineState<GatewayCall>, error: unknown, signal: CallAbort): AttemptOutcome {
    if (job.clientGone.aborted) {
      job.settle({ kind: 'gone' });
      return answered(job, { promptTokens: undefined, completionTokens: 0, cachedTokens: undefined, finishReason: 'abort', outputChars: 0 });
    }
    if (signal.reason instanceof RequestTimeout) {
      const timeout = new OpenAiError(STATUS.gatewayTimeout, `The engine did not finish within timeouts.requestMs (${this.config.timeouts.requestMs} ms).`, null, 'upstream_timeout');
      job.settle({ kind: 'reply', status: timeout.status, headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify(timeout.body()) });
      return answered(job, { promptTokens: undefined, completionTokens: undefined, cachedTokens: undefined, finishReason: undefined, outputChars: 0 }, { reason: 'request_timeout', engineDown: false });
    }
    const failure = this.classify(error, false);
    return retry(failure.reason, failure.engineDown, `engine ${engine.name} failed: ${failure.reason}`);
  }

  private classify(error: unknown, clientGone: boolean): { reason: string; engineDown: boolean } {
    if (clientGone) return { reason: 'client_gone', engineDown: false };
    const code = errorCode(error);
    return (code === undefined ? undefined : TRANSPORT_FAILURES[code]) ?? { reason: code === undefined ? 'upstream_error' : code.toLowerCase(), engineDown: true };
  }

  private headers(job: GatewayCall, engine: EngineState<GatewayCall>): Record<string, string> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    const authorization = engine.config.apiKey === undefined ? job.authorization : `Bearer ${engine.config.apiKey}`;
    if (authorization !== undefined) headers.authorization = authorization;
    if (engine.config.kind === 'saga-engine') {
      headers[IDENTITY_HEADERS.session] = job.identity.session;
      headers[IDENTITY_HEADERS.tenant] = job.identity.tenant;
      headers[IDENTITY_HEADERS.kind] = job.identity.kind;
    }
    return headers;
  }
}

/** Whether the engine's body carries hints (else it goes up as the client sent it). */
function takesHints(engine: EngineState<GatewayCall>): boolean {
  return engine.config.kind === 'llama.cpp' || (engine.config.kind === 'vllm' && engine.config.priorityScheduling);
}

/** The body with the engine's hints (they replace any the client sent: slots and priorities are the gateway's). */
function withHints(job: GatewayCall, engine: EngineState<GatewayCall>): Record<string, unknown> {
  const body: Record<string, unknown> = { ...job.body };
  if (engine.config.kind === 'llama.cpp') {
    body.cache_prompt = true;
    if (job.slot !== undefined) body.id_slot = job.slot;
  } else if (engine.config.kind === 'vllm' && engine.config.priorityScheduling) {
    body.priority = Math.max(Number.MIN_SAFE_INTEGER, Math.min(Number.MAX_SAFE_INTEGER, Math.round(job.priority)));
  }
  return body;
}

function retry(reason: string, engineDown: boolean, message: string): AttemptOutcome {
  return { type: 'retry', reason, engineDown, error: new OpenAiError(STATUS.badGateway, `${message}; no other engine could serve the request.`, null, 'upstream_failed') };
}

function answered(job: GatewayCall, usage: AnswerUsage, failure?: { reason: string; engineDown: boolean }): AttemptOutcome {
  return {
    type: 'answered',
    promptTokens: usage.promptTokens ?? job.call.promptTokens,
    completionTokens: completionTokensOf(usage),
    cachedTokens: usage.cachedTokens,
    finishReason: usage.finishReason,
    usageReported: usage.promptTokens !== undefined && usage.completionTokens !== undefined,
    ...(failure === undefined ? {} : { failure }),
  };
}
