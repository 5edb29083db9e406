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
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { once } from 'node:events';
import { Pool, errors, type Dispatcher } from 'undici';
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

/** The request headers of a call that carries no key or identity headers (shared: undici only reads them). */
const JSON_HEADERS: Readonly<Record<string, string>> = Object.freeze({ 'content-type': 'application/json' });

/** The headers of an answer passed on: the engine's content type, and which engine served it. */
function answerHeaders(contentType: string | undefined, engine: EngineState<GatewayCall>): Record<string, string> {
  return { 'content-type': contentType ?? 'application/json', [ENGINE_HEADER]: engine.name };
}

/**
 * An undici dispatch handler that collects a whole answer: its status, content type and body chunks, then
 * calls `done` once (with the error, if it failed). `abort` stops it (the client left: no reason; the
 * request timeout: a RequestTimeout), before or after the request went out; undici then reports the
 * abort through onResponseError, as `request()` with a signal would.
 */
class WholeAnswer implements Dispatcher.DispatchHandler {
  status = 0;
  contentType: string | undefined;
  /** Why it was aborted (undefined when it was not, or the client left). */
  reason: unknown;
  private aborted = false;
  private controller: Dispatcher.DispatchController | undefined;
  private readonly chunks: Buffer[] = [];
  private ended = false;

  constructor(private readonly done: (error: unknown) => void) {}

  abort(reason: unknown): void {
    if (this.aborted || this.ended) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(abortError(reason));
  }

  body(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.aborted) controller.abort(abortError(this.reason));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // 1xx: the answer is still to come
    this.status = statusCode;
    this.contentType = headerText(headers['content-type']);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    this.finish(undefined);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.finish(error);
  }

  private finish(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.done(error);
  }
}

/** What undici's request() rejects with when its signal aborts without a reason. */
function abortError(reason: unknown): Error {
  return reason instanceof Error ? reason : new errors.RequestAbortedError();
}

function abortOnTimeout(answer: WholeAnswer): void {
  answer.abort(new RequestTimeout());
}

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
  /** Each engine's connection pool and URL path prefix, by engine id. */
  private readonly links = new Map<number, { readonly pool: Pool; readonly base: string }>();

  constructor(
    engines: readonly EngineState<GatewayCall>[],
    private readonly config: GatewayConfig,
  ) {
    for (const engine of engines) {
      const url = new URL(engine.config.url);
      // One connection per call in flight, and one for health probes.
      const pool = new Pool(url.origin, { connections: engine.config.capacity + 1, connect: { timeout: config.timeouts.connectMs } });
      this.links.set(engine.id, { pool, base: url.pathname.replace(/\/+$/, '') });
    }
  }

  /** One attempt of `job` on `engine`. Never rejects. */
  run = (job: GatewayCall, engine: EngineState<GatewayCall>): Promise<AttemptOutcome> => (job.stream ? this.runStreamed(job, engine) : this.runWhole(job, engine));

  /**
   * A non-streamed call: its answer is collected whole by a dispatch handler (WholeAnswer), without the
   * body stream, async resource and promises of undici's `request()`: the hot path of most calls.
   */
  private runWhole(job: GatewayCall, engine: EngineState<GatewayCall>): Promise<AttemptOutcome> {
    return new Promise((resolve, reject) => {
      const answer = new WholeAnswer((error) => {
        clearTimeout(timer);
        job.clientGone.removeListener('abort', leave);
        try {
          resolve(error === undefined ? this.whole(job, engine, answer) : this.failed(job, engine, error, answer.reason));
        } catch (thrown) {
          // As an exception in `request()`'s path would be: a failed attempt (the scheduler's own catch past that).
          try {
            resolve(this.failed(job, engine, thrown, answer.reason));
          } catch (again) {
            reject(again);
          }
        }
      });
      const leave = () => answer.abort(undefined);
      job.clientGone.once('abort', leave);
      const timer = setTimeout(abortOnTimeout, this.config.timeouts.requestMs, answer);
      const link = this.link(engine);
      link.pool.dispatch(
        {
          path: link.base + job.path,
          method: 'POST',
          headers: this.headers(job, engine),
          body: this.body(job, engine),
          headersTimeout: this.config.timeouts.firstByteMs,
          bodyTimeout: this.config.timeouts.firstByteMs,
        },
        answer,
      );
    });
  }

  /** A streamed call: over undici's `request()`, its body relayed chunk by chunk. */
  private async runStreamed(job: GatewayCall, engine: EngineState<GatewayCall>): Promise<AttemptOutcome> {
    const attempt = new CallAbort();
    const leave = () => attempt.abort();
    job.clientGone.once('abort', leave);
    const timer = setTimeout(() => attempt.abort(new RequestTimeout()), this.config.timeouts.requestMs);
    try {
      return await this.exchange(job, engine, attempt);
    } catch (error) {
      return this.failed(job, engine, error, attempt.reason);
    } finally {
      clearTimeout(timer);
      job.clientGone.removeListener('abort', leave);
    }
  }

  /** GET /v1/models: the engine's model entries (throws when it does not answer 200 in time). */
  async probe(engine: EngineState<GatewayCall>): Promise<ModelEntry[]> {
    const { timeoutMs } = this.config.health;
    const link = this.link(engine);
    const res = await link.pool.request({
      path: `${link.base}/v1/models`,
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
    await Promise.all([...this.links.values()].map((link) => link.pool.close()));
  }

  private link(engine: EngineState<GatewayCall>): { readonly pool: Pool; readonly base: string } {
    const link = this.links.get(engine.id);
    if (link === undefined) throw new Error(`no pool for engine ${engine.name}`);
    return link;
  }

  /** The body sent up: with the engine's hints, or the client's bytes as they came. */
  private body(job: GatewayCall, engine: EngineState<GatewayCall>): string | Buffer {
    return takesHints(engine) ? JSON.stringify(withHints(job, engine)) : (job.rawBody ?? JSON.stringify(job.body));
  }

  private async exchange(job: GatewayCall, engine: EngineState<GatewayCall>, signal: CallAbort): Promise<AttemptOutcome> {
    const { firstByteMs } = this.config.timeouts;
    const link = this.link(engine);
    const res = await link.pool.request({
      path: link.base + job.path,
      method: 'POST',
      headers: this.headers(job, engine),
      body: this.body(job, engine),
      signal,
      headersTimeout: firstByteMs,
      bodyTimeout: firstByteMs,
    });
    const headers = answerHeaders(headerText(res.headers['content-type']), engine);
    if (res.statusCode >= 400) return this.answer(job, engine, res.statusCode, headers, Buffer.from(await res.body.arrayBuffer()));
    return this.relayStream(job, res.statusCode, { ...headers, ...STREAM_HEADERS }, res.body);
  }

  /** A whole answer collected: passed on, or tried elsewhere when the engine cannot serve now. */
  private whole(job: GatewayCall, engine: EngineState<GatewayCall>, answer: WholeAnswer): AttemptOutcome {
    return this.answer(job, engine, answer.status, answerHeaders(answer.contentType, engine), answer.body());
  }

  private answer(job: GatewayCall, engine: EngineState<GatewayCall>, status: number, headers: Record<string, string>, body: Buffer): AttemptOutcome {
    if (UNAVAILABLE_STATUSES.includes(status)) {
      return retry(`status_${status}`, status === STATUS.unavailable, `engine ${engine.name} answered ${status}`);
    }
    // 4xx and other 5xx: the engine's own answer, passed on as it is (a retry would fail the same way).
    job.settle({ kind: 'reply', status, headers, body });
    const failure = status >= 400 ? { reason: `status_${Math.floor(status / 100)}xx`, engineDown: false } : undefined;
    return answered(job, usageOfBody(body), failure);
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
  private failed(job: GatewayCall, engine: EngineState<GatewayCall>, error: unknown, abortReason: unknown): AttemptOutcome {
    if (job.clientGone.aborted) {
      job.settle({ kind: 'gone' });
      return answered(job, { promptTokens: undefined, completionTokens: 0, cachedTokens: undefined, finishReason: 'abort', outputChars: 0 });
    }
    if (abortReason instanceof RequestTimeout) {
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
    const authorization = engine.config.apiKey === undefined ? job.authorization : `Bearer ${engine.config.apiKey}`;
    // The common case (no key, no identity headers): one shared object, which undici only reads.
    if (authorization === undefined && engine.config.kind !== 'saga-engine') return JSON_HEADERS;
    const headers: Record<string, string> = { ...JSON_HEADERS };
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
