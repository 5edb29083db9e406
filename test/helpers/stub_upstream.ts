/**
 * A stub OpenAI-compatible engine for gateway tests and benches: an in-process Fastify server on a port of
 * its own that answers chat and text completions with OpenAI-shaped JSON (usage included) or SSE chunks,
 * and that can be told to fail: refuse connections (closed), answer an error status, hang, or die in the
 * middle of a stream. It records every completion request it receives.
 *
 * Usage reports cached tokens as a prefix cache would: the longest prefix of the prompt, in whole 16-token
 * blocks (at 4 characters a token), that some prompt this stub saw before shares, so that tests can tell a
 * session that stayed on one engine from one that moved.
 */
import type { IncomingHttpHeaders } from 'node:http';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';

export type StubBehaviour =
  /** Answer normally. */
  | 'ok'
  /** Answer `status` with an OpenAI error body. */
  | 'error'
  /** Accept the request and never answer. */
  | 'hang'
  /** Streams: send the first chunk, then drop the connection. Whole answers: drop the connection at once. */
  | 'die';

export interface StubUpstreamOptions {
  /** Model id served (default `stub-model`). */
  readonly model?: string;
  /** Milliseconds before the answer (or a stream's first chunk). */
  readonly delayMs?: number;
  /** Streams: content chunks sent (default 3), and milliseconds between them (default 0). */
  readonly chunks?: number;
  readonly chunkDelayMs?: number;
  /** Completion tokens reported (default 8). */
  readonly completionTokens?: number;
  readonly behaviour?: StubBehaviour;
  /** Status of the `error` behaviour (default 500). */
  readonly status?: number;
  /** Report cached tokens (default true). */
  readonly reportCached?: boolean;
  /** Port to listen on (default: any free one); e.g. to bring back an engine that died. */
  readonly port?: number;
}

export interface StubRequest {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
}

export interface StubUpstream {
  /** `http://127.0.0.1:PORT`, the engine's base URL. */
  readonly url: string;
  readonly port: number;
  /** Completion requests received, in order. */
  readonly requests: StubRequest[];
  /** Completions answered in full. */
  readonly completed: () => number;
  /** Changes what the stub does with the next requests. */
  setBehaviour(behaviour: StubBehaviour, status?: number): void;
  /** Stops listening and drops every connection, hanging ones included (an engine that died). */
  close(): Promise<void>;
}

const CHARS_PER_TOKEN = 4;
const BLOCK_TOKENS = 16;

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}

function promptOf(body: Record<string, unknown>): string {
  if (Array.isArray(body.messages)) return body.messages.map((m) => JSON.stringify(m)).join('\n');
  return typeof body.prompt === 'string' ? body.prompt : JSON.stringify(body.prompt ?? '');
}

/**
 * The prefix cache the stub pretends to have: the hash of every 64-character prefix of the prompts seen
 * (FNV-1a, 32 bits, chained), so that a lookup costs one pass over the prompt however many were seen.
 */
class PrefixCache {
  private readonly prefixes = new Set<number>();

  /** Characters of `prompt` cached, in whole blocks; then caches the prompt's own blocks. */
  lookupAndAdd(prompt: string): number {
    const blockChars = BLOCK_TOKENS * CHARS_PER_TOKEN;
    let hash = 0x811c9dc5;
    let cached = 0;
    let missed = false;
    for (let i = 0; i < prompt.length; i++) {
      hash = Math.imul(hash ^ prompt.charCodeAt(i), 0x01000193) >>> 0;
      if ((i + 1) % blockChars !== 0) continue;
      if (!missed && this.prefixes.has(hash)) cached = i + 1;
      else missed = true;
      this.prefixes.add(hash);
    }
    // A bound on the stub's memory over long benches: forget everything, as a flushed cache would.
    if (this.prefixes.size > 1_000_000) this.prefixes.clear();
    return cached;
  }
}

export async function startStubUpstream(options: StubUpstreamOptions = {}): Promise<StubUpstream> {
  const model = options.model ?? 'stub-model';
  const completionTokens = options.completionTokens ?? 8;
  const chunks = options.chunks ?? 3;
  let behaviour: StubBehaviour = options.behaviour ?? 'ok';
  let status = options.status ?? 500;
  const requests: StubRequest[] = [];
  const cache = new PrefixCache();
  let completed = 0;
  let ids = 0;
  const app = Fastify({ logger: false, forceCloseConnections: true, bodyLimit: 64 * 1024 * 1024 });

  function usage(prompt: string): object {
    const promptTokens = Math.ceil(prompt.length / CHARS_PER_TOKEN);
    const cachedTokens = Math.min(promptTokens, cache.lookupAndAdd(prompt) / CHARS_PER_TOKEN);
    return {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
      ...(options.reportCached === false ? {} : { prompt_tokens_details: { cached_tokens: cachedTokens } }),
    };
  }

  async function complete(chat: boolean, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const body = request.body as Record<string, unknown>;
    requests.push({ path: request.url, headers: request.headers, body });
    const mode = behaviour;
    if (mode === 'hang') return new Promise<never>(() => undefined);
    await sleep(options.delayMs ?? 0);
    if (mode === 'error') return reply.code(status).send({ error: { message: `stub error ${status}`, type: status < 500 ? 'invalid_request_error' : 'server_error', param: null, code: null } });
    if (mode === 'die' && body.stream !== true) {
      request.raw.socket.destroy();
      return reply;
    }
    const id = `stub-${++ids}`;
    const head = { id, object: chat ? 'chat.completion' : 'text_completion', created: 0, model };
    const u = usage(promptOf(body));
    if (body.stream !== true) {
      completed++;
      const text = 'x'.repeat(completionTokens * CHARS_PER_TOKEN);
      const choice = chat ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' } : { index: 0, text, finish_reason: 'stop' };
      return { ...head, choices: [choice], usage: u };
    }
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'text/event-stream' });
    const chunkObject = chat ? 'chat.completion.chunk' : 'text_completion';
    const event = (choice: object, extra: object = {}) => `data: ${JSON.stringify({ ...head, object: chunkObject, choices: [choice], ...extra })}\n\n`;
    const piece = (text: string) => (chat ? { index: 0, delta: { content: text }, finish_reason: null } : { index: 0, text, finish_reason: null });
    for (let i = 0; i < chunks; i++) {
      if (i > 0) await sleep(options.chunkDelayMs ?? 0);
      if (raw.destroyed) return reply;
      if (mode === 'die') {
        // Dropped once the chunk has left: the client has its first byte, then the engine is gone.
        raw.write(event(piece(`chunk${i} `)), () => raw.socket?.destroy());
        return reply;
      }
      raw.write(event(piece(`chunk${i} `)));
    }
    const includeUsage = typeof body.stream_options === 'object' && body.stream_options !== null && (body.stream_options as { include_usage?: unknown }).include_usage === true;
    raw.write(event(chat ? { index: 0, delta: {}, finish_reason: 'stop' } : { index: 0, text: '', finish_reason: 'stop' }));
    if (includeUsage) raw.write(`data: ${JSON.stringify({ ...head, object: chunkObject, choices: [], usage: u })}\n\n`);
    raw.end('data: [DONE]\n\n');
    completed++;
    return reply;
  }

  app.post('/v1/chat/completions', (request, reply) => complete(true, request, reply));
  app.post('/v1/completions', (request, reply) => complete(false, request, reply));
  app.get('/v1/models', async () => ({ object: 'list', data: [{ id: model, object: 'model', created: 0, owned_by: 'stub' }] }));
  app.get('/health', async () => ({ status: 'ok' }));

  await app.listen({ host: '127.0.0.1', port: options.port ?? 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    completed: () => completed,
    setBehaviour(next, nextStatus) {
      behaviour = next;
      if (nextStatus !== undefined) status = nextStatus;
    },
    async close() {
      await app.close();
    },
  };
}
