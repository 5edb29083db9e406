/**
 * lib/engine/server.ts and lib/engine/chat_prompt.ts over a fake engine: every endpoint's answer and its
 * exact shape, the identity handed to the engine, streaming in OpenAI's SSE format, a client leaving,
 * every bad input answered in OpenAI's error shape (and the server answering well afterwards), metrics.
 */
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { renderChatPrompt, type ChatMessage } from '../lib/engine/chat_prompt';
import { createEngineServer, type EngineServerOptions } from '../lib/engine/server';
import type { CompletionRequest, CompletionResult, EngineStats, InferenceEngine } from '../lib/engine/types';
import { SagaError } from '../lib/errors';

/** What the fake generates, one word at a time, up to maxTokens words. */
const FAKE_OUTPUT = 'the quick brown fox jumps over the lazy dog';
const FAKE_CONTEXT_TOKENS = 64;
const FAKE_CACHED_TOKENS = 2;
const MODEL = 'fake-model';

function words(text: string): string[] {
  return text.split(/\s+/).filter((word) => word !== '');
}

/**
 * A deterministic InferenceEngine: counts tokens as words, writes FAKE_OUTPUT word by word (a turn of the
 * event loop between words, as a real engine yields), records what it was asked, and can be told to fail
 * (before output or after the first word) or to hang after the first word until its request is aborted.
 */
class FakeEngine implements InferenceEngine {
  readonly contextSize = FAKE_CONTEXT_TOKENS;
  readonly policyName = 'saga';
  readonly requests: CompletionRequest[] = [];
  /** Rejected with, before any output; `failMidStream` after the first word instead. */
  failure: unknown = undefined;
  failMidStream = false;
  hang = false;
  /** Set when a hanging call saw its signal abort. */
  sawAbort = false;
  closed = false;
  private totals = { requests: 0, promptTokens: 0, completionTokens: 0, cachedTokens: 0 };

  constructor(readonly modelId: string = MODEL) {}

  countTokens(prompt: string): number {
    return words(prompt).length;
  }

  async complete(request: CompletionRequest, onText?: (delta: string) => void): Promise<CompletionResult> {
    this.requests.push(request);
    if (this.failure !== undefined && !this.failMidStream) throw this.failure;
    const output = words(FAKE_OUTPUT);
    const produced = output.slice(0, request.maxTokens);
    for (const [index, word] of produced.entries()) {
      onText?.(index === 0 ? word : ` ${word}`);
      await nextTurn();
      if (this.failure !== undefined) throw this.failure;
      if (this.hang) await this.untilAborted(request.signal);
    }
    const usage = { promptTokens: this.countTokens(request.prompt), completionTokens: produced.length, cachedTokens: FAKE_CACHED_TOKENS };
    this.totals = {
      requests: this.totals.requests + 1,
      promptTokens: this.totals.promptTokens + usage.promptTokens,
      completionTokens: this.totals.completionTokens + usage.completionTokens,
      cachedTokens: this.totals.cachedTokens + usage.cachedTokens,
    };
    return { text: produced.join(' '), finishReason: produced.length < output.length ? 'length' : 'stop', usage };
  }

  private untilAborted(signal: AbortSignal | undefined): Promise<never> {
    return new Promise((_resolve, reject) => {
      const stop = () => {
        this.sawAbort = true;
        reject(new Error('aborted'));
      };
      if (signal?.aborted) stop();
      else signal?.addEventListener('abort', stop);
    });
  }

  stats(): EngineStats {
    return {
      requestsTotal: this.totals.requests,
      requestsRunning: 0,
      requestsWaiting: 0,
      promptTokensTotal: this.totals.promptTokens,
      cachedTokensTotal: this.totals.cachedTokens,
      completionTokensTotal: this.totals.completionTokens,
      residentSessions: 1,
      hostTierSessions: 0,
      offloadsTotal: 3,
      dropsTotal: 0,
      restoresTotal: 1,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const servers: FastifyInstance[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

function serve(engine: InferenceEngine = new FakeEngine(), options: Partial<EngineServerOptions> = {}): FastifyInstance {
  const server = createEngineServer({ engines: [engine], ...options });
  servers.push(server);
  return server;
}

function post(server: FastifyInstance, url: string, body: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return server.inject({ method: 'POST', url, payload: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
}

const GOOD_COMPLETION = { model: MODEL, prompt: 'say something', max_tokens: 4, temperature: 0 };
const GOOD_CHAT = { model: MODEL, messages: [{ role: 'user', content: 'say something' }], max_tokens: 4, temperature: 0 };

function expectOpenAiError(response: LightMyRequestResponse, status: number, param: string | null, code: string | null = null): void {
  expect(response.statusCode, response.body).toBe(status);
  const body: unknown = response.json();
  expect(body).toEqual({ error: { message: expect.any(String), type: status >= 500 ? 'server_error' : 'invalid_request_error', param, code } });
}

async function expectStillServing(server: FastifyInstance): Promise<void> {
  const response = await post(server, '/v1/completions', GOOD_COMPLETION);
  expect(response.statusCode).toBe(200);
  expect(response.json().choices[0].text).toBe('the quick brown fox');
}

async function listen(server: FastifyInstance): Promise<string> {
  await server.listen({ port: 0, host: '127.0.0.1' });
  const { port } = server.server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

/** The `data:` payloads of an SSE body, in order. */
function sseData(body: string): string[] {
  expect(body.endsWith('\n\n')).toBe(true);
  return body
    .split('\n\n')
    .filter((event) => event !== '')
    .map((event) => {
      expect(event.startsWith('data: ')).toBe(true);
      return event.slice('data: '.length);
    });
}

async function until(condition: () => boolean): Promise<void> {
  for (let turn = 0; !condition(); turn++) {
    if (turn > 1000) throw new Error('condition never held');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('chat prompt', () => {
  it('renders each message as its role tag, its text and a newline, and opens the assistant turn', () => {
    const messages: ChatMessage[] = [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: [{ type: 'text', text: 'part one' }, { type: 'text', text: 'part two' }] },
      { role: 'assistant', content: null },
      { role: 'tool', content: '{"ok":true}' },
    ];
    expect(renderChatPrompt(messages)).toBe(
      '<|system|>\nbe brief\n<|user|>\npart one\npart two\n<|assistant|>\n\n<|tool|>\n{"ok":true}\n<|assistant|>\n',
    );
  });

  it('is prefix-stable: a conversation grown by the reply and more messages extends the previous prompt and its reply', () => {
    const conversation: ChatMessage[] = [
      { role: 'system', content: 'you are an agent' },
      { role: 'user', content: 'fix the bug' },
    ];
    const turns: [string, ChatMessage][] = [
      ['I will run the tests.', { role: 'tool', content: '3 failed' }],
      ['Patching foo.ts.', { role: 'tool', content: 'ok' }],
      ['Done.', { role: 'user', content: 'thanks' }],
    ];
    for (const [reply, next] of turns) {
      const before = renderChatPrompt(conversation);
      conversation.push({ role: 'assistant', content: reply }, next);
      expect(renderChatPrompt(conversation).startsWith(before + reply)).toBe(true);
    }
  });
});

describe('models and health', () => {
  it('GET /healthz lists the models', async () => {
    const response = await serve().inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok', models: [MODEL] });
  });

  it('GET /v1/models answers in OpenAI list format', async () => {
    const response = await serve().inject({ method: 'GET', url: '/v1/models' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ object: 'list', data: [{ id: MODEL, object: 'model', created: expect.any(Number), owned_by: 'saga' }] });
  });

  it('refuses two engines with one model id', () => {
    expect(() => createEngineServer({ engines: [new FakeEngine(), new FakeEngine()] })).toThrow(SagaError);
  });

  it('an unknown URL is a 404 in OpenAI shape', async () => {
    expectOpenAiError(await serve().inject({ method: 'GET', url: '/v1/nothing' }), 404, null, 'unknown_url');
  });
});

describe('completions', () => {
  it('POST /v1/completions answers in text_completion shape with the engine usage', async () => {
    const engine = new FakeEngine();
    const response = await post(serve(engine), '/v1/completions', GOOD_COMPLETION);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      id: expect.stringMatching(/^cmpl-\w+$/),
      object: 'text_completion',
      created: expect.any(Number),
      model: MODEL,
      choices: [{ index: 0, text: 'the quick brown fox', logprobs: null, finish_reason: 'length' }],
      usage: { prompt_tokens: 2, completion_tokens: 4, total_tokens: 6, prompt_tokens_details: { cached_tokens: FAKE_CACHED_TOKENS } },
    });
    expect(engine.requests[0]).toMatchObject({ prompt: 'say something', maxTokens: 4, temperature: 0 });
  });

  it('POST /v1/chat/completions answers in chat.completion shape', async () => {
    const engine = new FakeEngine();
    const response = await post(serve(engine), '/v1/chat/completions', { ...GOOD_CHAT, max_tokens: 20 });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      id: expect.stringMatching(/^chatcmpl-\w+$/),
      object: 'chat.completion',
      created: expect.any(Number),
      model: MODEL,
      choices: [{ index: 0, message: { role: 'assistant', content: FAKE_OUTPUT }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 4, completion_tokens: 9, total_tokens: 13, prompt_tokens_details: { cached_tokens: FAKE_CACHED_TOKENS } },
    });
    expect(engine.requests[0].prompt).toBe('<|user|>\nsay something\n<|assistant|>\n');
  });

  it('passes the sampling fields through, and takes a prompt array holding one string', async () => {
    const engine = new FakeEngine();
    const server = serve(engine);
    const body = { model: MODEL, prompt: ['one prompt'], max_tokens: 2, temperature: 0.7, seed: 42, stop: 'END', ignore_eos: true, top_p: 0.9 };
    expect((await post(server, '/v1/completions', body)).statusCode).toBe(200);
    expect((await post(server, '/v1/completions', { ...GOOD_COMPLETION, stop: ['a', 'b'] })).statusCode).toBe(200);
    expect(engine.requests[0]).toMatchObject({ prompt: 'one prompt', maxTokens: 2, temperature: 0.7, seed: 42, stop: ['END'], ignoreEos: true });
    expect(engine.requests[1].stop).toEqual(['a', 'b']);
    expect(engine.requests[0].signal).toBeInstanceOf(AbortSignal);
  });

  it('defaults: temperature 1, max_tokens 16 for completions and 256 for chat, cut to what the context leaves', async () => {
    const engine = new FakeEngine();
    const server = serve(engine);
    await post(server, '/v1/completions', { model: MODEL, prompt: 'hello' });
    await post(server, '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hello' }] });
    await post(server, '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hello' }], max_completion_tokens: 3, max_tokens: 5 });
    const longPrompt = Array.from({ length: FAKE_CONTEXT_TOKENS - 10 }, () => 'w').join(' ');
    await post(server, '/v1/completions', { model: MODEL, prompt: longPrompt });
    expect(engine.requests.map((request) => [request.maxTokens, request.temperature])).toEqual([
      [16, 1],
      [FAKE_CONTEXT_TOKENS - engine.countTokens('<|user|>\nhello\n<|assistant|>\n'), 1],
      [3, 1],
      [10, 1],
    ]);
  });

  it('a growing chat renders to prompts that extend the previous prompt and reply', async () => {
    const engine = new FakeEngine();
    const server = serve(engine);
    const messages: { role: string; content: string }[] = [{ role: 'user', content: 'start' }];
    for (let turn = 0; turn < 3; turn++) {
      const response = await post(server, '/v1/chat/completions', { model: MODEL, messages, max_tokens: 2 });
      const reply: string = response.json().choices[0].message.content;
      messages.push({ role: 'assistant', content: reply }, { role: 'tool', content: `result ${turn}` });
    }
    for (let turn = 1; turn < engine.requests.length; turn++) {
      expect(engine.requests[turn].prompt.startsWith(engine.requests[turn - 1].prompt + 'the quick')).toBe(true);
    }
  });
});

describe('program identity', () => {
  it('takes session, tenant and kind from the x-saga-* headers', async () => {
    const engine = new FakeEngine();
    const headers = { 'x-saga-session': 'task-7', 'x-saga-tenant': 'acme', 'x-saga-kind': 'swebench' };
    await post(serve(engine), '/v1/completions', { ...GOOD_COMPLETION, user: 'ignored' }, headers);
    expect(engine.requests[0]).toMatchObject({ session: 'task-7', tenant: 'acme', kind: 'swebench' });
  });

  it('falls back to `user` as the session, with default tenant and kind', async () => {
    const engine = new FakeEngine();
    await post(serve(engine), '/v1/completions', { ...GOOD_COMPLETION, user: 'alice' });
    expect(engine.requests[0]).toMatchObject({ session: 'alice', tenant: 'default', kind: 'default' });
  });

  it('gives every anonymous request a session of its own', async () => {
    const engine = new FakeEngine();
    const server = serve(engine);
    await post(server, '/v1/completions', GOOD_COMPLETION);
    await post(server, '/v1/completions', GOOD_COMPLETION);
    await post(server, '/v1/chat/completions', GOOD_CHAT);
    expect(new Set(engine.requests.map((request) => request.session)).size).toBe(3);
  });
});

describe('streaming', () => {
  async function streamed(url: string, body: object): Promise<{ status: number; contentType: string | null; data: string[] }> {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: response.status, contentType: response.headers.get('content-type'), data: sseData(await response.text()) };
  }

  it('completions: text chunks that reassemble to the whole answer, a closing chunk, then [DONE]', async () => {
    const server = serve();
    const base = await listen(server);
    const whole = (await post(server, '/v1/completions', GOOD_COMPLETION)).json().choices[0].text;
    const { status, contentType, data } = await streamed(`${base}/v1/completions`, { ...GOOD_COMPLETION, stream: true });
    expect(status).toBe(200);
    expect(contentType).toMatch(/^text\/event-stream/);
    expect(data.at(-1)).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((chunk) => JSON.parse(chunk));
    for (const chunk of chunks) {
      expect(chunk).toEqual({ id: chunks[0].id, object: 'text_completion', created: expect.any(Number), model: MODEL, choices: [expect.any(Object)] });
    }
    expect(chunks[0].id).toMatch(/^cmpl-/);
    expect(chunks.map((chunk) => chunk.choices[0].text).join('')).toBe(whole);
    expect(chunks.length).toBe(5);
    expect(chunks.at(-1).choices[0]).toEqual({ index: 0, text: '', logprobs: null, finish_reason: 'length' });
    expect(chunks.slice(0, -1).every((chunk) => chunk.choices[0].finish_reason === null)).toBe(true);
  });

  it('chat: opens with the role, then content deltas, a closing chunk, usage when asked, then [DONE]', async () => {
    const server = serve();
    const base = await listen(server);
    const whole = (await post(server, '/v1/chat/completions', GOOD_CHAT)).json();
    const { data } = await streamed(`${base}/v1/chat/completions`, { ...GOOD_CHAT, stream: true, stream_options: { include_usage: true } });
    expect(data.at(-1)).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((chunk) => JSON.parse(chunk));
    expect(chunks[0]).toEqual({
      id: expect.stringMatching(/^chatcmpl-/),
      object: 'chat.completion.chunk',
      created: expect.any(Number),
      model: MODEL,
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
      usage: null,
    });
    const usageChunk = chunks.at(-1);
    expect(usageChunk).toEqual({ id: chunks[0].id, object: 'chat.completion.chunk', created: expect.any(Number), model: MODEL, choices: [], usage: whole.usage });
    const closing = chunks.at(-2);
    expect(closing.choices).toEqual([{ index: 0, delta: {}, logprobs: null, finish_reason: 'length' }]);
    const deltas = chunks.slice(1, -2);
    expect(deltas.every((chunk) => chunk.usage === null && chunk.choices[0].finish_reason === null)).toBe(true);
    expect(deltas.map((chunk) => chunk.choices[0].delta.content).join('')).toBe(whole.choices[0].message.content);
  });

  it('an engine failing before any output gets an ordinary HTTP error; after output, an error event and no [DONE]', async () => {
    const engine = new FakeEngine();
    const server = serve(engine);
    const base = await listen(server);
    engine.failure = new SagaError('engine is shutting down', 'ERR_SAGA_ENGINE_CLOSED');
    const early = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...GOOD_COMPLETION, stream: true }) });
    expect(early.status).toBe(503);
    expect(await early.json()).toMatchObject({ error: { type: 'server_error', message: 'engine is shutting down' } });

    engine.failure = new Error('GPU fell off');
    engine.failMidStream = true;
    const { status, data } = await streamed(`${base}/v1/completions`, { ...GOOD_COMPLETION, stream: true });
    expect(status).toBe(200);
    expect(JSON.parse(data[0]).choices[0].text).toBe('the');
    expect(JSON.parse(data.at(-1) ?? '')).toEqual({ error: { message: 'GPU fell off', type: 'server_error', param: null, code: null } });
    expect(data).not.toContain('[DONE]');

    engine.failure = undefined;
    await expectStillServing(server);
  });

  it.each([
    ['streamed', true],
    ['whole', false],
  ])('a client leaving aborts the engine call (%s)', async (_name, stream) => {
    const engine = new FakeEngine();
    engine.hang = true;
    const server = serve(engine);
    const base = new URL(await listen(server));
    // node:http rather than fetch: fetch's pool keeps a spare connection open that would hold up close().
    const client = httpRequest({ host: base.hostname, port: base.port, path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json' } });
    client.on('error', () => undefined); // destroyed below on purpose
    const firstBytes = new Promise<void>((resolve) => client.once('response', (response) => response.once('data', () => resolve())));
    client.end(JSON.stringify({ ...GOOD_CHAT, stream }));
    if (stream) await firstBytes;
    else await until(() => engine.requests.length === 1);
    expect(engine.sawAbort).toBe(false);
    client.destroy();
    await until(() => engine.sawAbort);
    expect(engine.requests[0].signal?.aborted).toBe(true);
    engine.hang = false;
    await expectStillServing(server);
    const metrics = (await server.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain('saga_engine_http_requests_total{route="/v1/chat/completions",status="499"} 1');
  });
});

describe('bad requests', () => {
  const longPrompt = Array.from({ length: FAKE_CONTEXT_TOKENS }, () => 'w').join(' ');
  const cases: [string, string, unknown, number, string | null, string?][] = [
    ['non-object body', '/v1/completions', ['a'], 400, null],
    ['null body', '/v1/completions', null, 400, null],
    ['missing model', '/v1/completions', { prompt: 'hi' }, 400, 'model'],
    ['model not a string', '/v1/completions', { ...GOOD_COMPLETION, model: 7 }, 400, 'model'],
    ['unknown model', '/v1/completions', { ...GOOD_COMPLETION, model: 'gpt-9' }, 404, 'model', 'model_not_found'],
    ['unknown model (chat)', '/v1/chat/completions', { ...GOOD_CHAT, model: 'gpt-9' }, 404, 'model', 'model_not_found'],
    ['missing prompt', '/v1/completions', { model: MODEL }, 400, 'prompt'],
    ['empty prompt', '/v1/completions', { ...GOOD_COMPLETION, prompt: '' }, 400, 'prompt'],
    ['prompt a number', '/v1/completions', { ...GOOD_COMPLETION, prompt: 3 }, 400, 'prompt'],
    ['two prompts', '/v1/completions', { ...GOOD_COMPLETION, prompt: ['a', 'b'] }, 400, 'prompt'],
    ['token prompt', '/v1/completions', { ...GOOD_COMPLETION, prompt: [1, 2, 3] }, 400, 'prompt'],
    ['missing messages', '/v1/chat/completions', { model: MODEL }, 400, 'messages'],
    ['messages not an array', '/v1/chat/completions', { ...GOOD_CHAT, messages: 'hi' }, 400, 'messages'],
    ['empty messages', '/v1/chat/completions', { ...GOOD_CHAT, messages: [] }, 400, 'messages'],
    ['message not an object', '/v1/chat/completions', { ...GOOD_CHAT, messages: ['hi'] }, 400, 'messages[0]'],
    ['unknown role', '/v1/chat/completions', { ...GOOD_CHAT, messages: [{ role: 'wizard', content: 'hi' }] }, 400, 'messages[0].role'],
    ['missing user content', '/v1/chat/completions', { ...GOOD_CHAT, messages: [{ role: 'user' }] }, 400, 'messages[0].content'],
    ['image content', '/v1/chat/completions', { ...GOOD_CHAT, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }, 400, 'messages[0].content[0].type'],
    ['negative max_tokens', '/v1/completions', { ...GOOD_COMPLETION, max_tokens: -1 }, 400, 'max_tokens'],
    ['zero max_tokens', '/v1/completions', { ...GOOD_COMPLETION, max_tokens: 0 }, 400, 'max_tokens'],
    ['fractional max_tokens', '/v1/completions', { ...GOOD_COMPLETION, max_tokens: 1.5 }, 400, 'max_tokens'],
    ['string max_tokens', '/v1/completions', { ...GOOD_COMPLETION, max_tokens: '4' }, 400, 'max_tokens'],
    ['zero max_completion_tokens', '/v1/chat/completions', { ...GOOD_CHAT, max_completion_tokens: 0 }, 400, 'max_completion_tokens'],
    ['bad max_tokens beside max_completion_tokens', '/v1/chat/completions', { ...GOOD_CHAT, max_completion_tokens: 3, max_tokens: 'x' }, 400, 'max_tokens'],
    ['temperature above 2', '/v1/completions', { ...GOOD_COMPLETION, temperature: 2.5 }, 400, 'temperature'],
    ['negative temperature', '/v1/completions', { ...GOOD_COMPLETION, temperature: -0.1 }, 400, 'temperature'],
    ['temperature a string', '/v1/completions', { ...GOOD_COMPLETION, temperature: 'hot' }, 400, 'temperature'],
    ['fractional seed', '/v1/completions', { ...GOOD_COMPLETION, seed: 0.5 }, 400, 'seed'],
    ['n = 2', '/v1/completions', { ...GOOD_COMPLETION, n: 2 }, 400, 'n'],
    ['five stop sequences', '/v1/completions', { ...GOOD_COMPLETION, stop: ['a', 'b', 'c', 'd', 'e'] }, 400, 'stop'],
    ['stop a number', '/v1/completions', { ...GOOD_COMPLETION, stop: 5 }, 400, 'stop'],
    ['stop holding a number', '/v1/completions', { ...GOOD_COMPLETION, stop: ['a', 5] }, 400, 'stop[1]'],
    ['stream a string', '/v1/completions', { ...GOOD_COMPLETION, stream: 'yes' }, 400, 'stream'],
    ['stream_options without stream', '/v1/completions', { ...GOOD_COMPLETION, stream_options: { include_usage: true } }, 400, 'stream_options'],
    ['include_usage a string', '/v1/completions', { ...GOOD_COMPLETION, stream: true, stream_options: { include_usage: 'y' } }, 400, 'stream_options.include_usage'],
    ['user a number', '/v1/completions', { ...GOOD_COMPLETION, user: 5 }, 400, 'user'],
    ['ignore_eos a string', '/v1/completions', { ...GOOD_COMPLETION, ignore_eos: 'true' }, 400, 'ignore_eos'],
    ['prompt plus max_tokens over the context', '/v1/completions', { ...GOOD_COMPLETION, max_tokens: FAKE_CONTEXT_TOKENS - 1 }, 400, 'prompt', 'context_length_exceeded'],
    ['prompt alone fills the context', '/v1/completions', { model: MODEL, prompt: longPrompt }, 400, 'prompt', 'context_length_exceeded'],
    ['messages over the context', '/v1/chat/completions', { ...GOOD_CHAT, messages: [{ role: 'user', content: longPrompt }] }, 400, 'messages', 'context_length_exceeded'],
  ];

  const namedCases = cases.map(([name, url, body, status, param, code = null]) => ({ name, url, body, status, param, code }));

  it.each(namedCases)('$name → $status', async ({ url, body, status, param, code }) => {
    const server = serve();
    const response = await post(server, url, body);
    expectOpenAiError(response, status, param, code);
    if (param !== null) expect(response.json().error.message).toContain(param.replace(/\[\d+\].*/, ''));
    await expectStillServing(server);
  });

  it('words the context error as OpenAI does', async () => {
    const response = await post(serve(), '/v1/chat/completions', { ...GOOD_CHAT, max_tokens: FAKE_CONTEXT_TOKENS });
    const prompt = new FakeEngine().countTokens('<|user|>\nsay something\n<|assistant|>\n');
    expect(response.json().error.message).toBe(
      `This model's maximum context length is ${FAKE_CONTEXT_TOKENS} tokens. However, you requested ${prompt + FAKE_CONTEXT_TOKENS} tokens ` +
        `(${prompt} in the messages, ${FAKE_CONTEXT_TOKENS} in the completion). Please reduce the length of the messages or completion.`,
    );
  });

  it.each([
    ['empty', ''],
    ['too long', 'x'.repeat(257)],
    ['control characters', 'a\u0001b'],
  ])('a bad identity header (%s) → 400 naming the header', async (_name, value) => {
    const server = serve();
    expectOpenAiError(await post(server, '/v1/completions', GOOD_COMPLETION, { 'x-saga-session': value }), 400, 'x-saga-session');
    expectOpenAiError(await post(server, '/v1/completions', GOOD_COMPLETION, { 'x-saga-tenant': value }), 400, 'x-saga-tenant');
    await expectStillServing(server);
  });

  it('malformed JSON, an empty body, and a body that is not JSON → 400', async () => {
    const server = serve();
    const send = (payload: string, contentType: string) => server.inject({ method: 'POST', url: '/v1/completions', payload, headers: { 'content-type': contentType } });
    expectOpenAiError(await send('{"model": ', 'application/json'), 400, null);
    expectOpenAiError(await send('', 'application/json'), 400, null);
    expectOpenAiError(await send('{"model":"fake-model"}', 'text/plain'), 400, null);
    expectOpenAiError(await send('model=fake-model', 'application/x-www-form-urlencoded'), 400, null);
    await expectStillServing(server);
  });

  it('a body over maxBodyBytes → 413', async () => {
    const server = serve(new FakeEngine(), { maxBodyBytes: 1024 });
    expectOpenAiError(await post(server, '/v1/completions', { ...GOOD_COMPLETION, prompt: 'x'.repeat(2048) }), 413, null);
    await expectStillServing(server);
  });

  it.each([
    ['ERR_SAGA_BAD_ARGUMENT', 400, null, null],
    ['ERR_SAGA_CONTEXT_LENGTH', 400, 'messages', 'context_length_exceeded'],
    ['ERR_SAGA_ENGINE_CLOSED', 503, null, null],
    ['ERR_SAGA_INTERNAL', 500, null, null],
  ] as const)('the engine failing with %s → %i', async (code, status, param, errorCode) => {
    const engine = new FakeEngine();
    const server = serve(engine);
    engine.failure = new SagaError(`failed: ${code}`, code);
    const response = await post(server, '/v1/chat/completions', GOOD_CHAT);
    expectOpenAiError(response, status, param, errorCode);
    expect(response.json().error.message).toBe(`failed: ${code}`);
    engine.failure = undefined;
    await expectStillServing(server);
  });

  it('any other engine failure → 500 server_error with the message and no stack', async () => {
    const engine = new FakeEngine();
    const server = serve(engine);
    engine.failure = new TypeError('cannot read the KV');
    const response = await post(server, '/v1/completions', GOOD_COMPLETION);
    expectOpenAiError(response, 500, null);
    expect(response.json().error.message).toBe('cannot read the KV');
    expect(response.body).not.toContain('at ');
    engine.failure = undefined;
    await expectStillServing(server);
  });
});

/** Prometheus text format: `# HELP`/`# TYPE` lines and `name{labels} value` samples, by name and labels. */
function parsePrometheus(text: string): { types: Map<string, string>; samples: Map<string, number> } {
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ')) continue;
    const type = /^# TYPE (\w+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type !== null) {
      types.set(type[1], type[2]);
      continue;
    }
    const sample = /^(\w+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (sample === null) throw new Error(`not Prometheus text: ${line}`);
    samples.set(sample[1], Number(sample[2]));
  }
  return { types, samples };
}

describe('metrics', () => {
  it('GET /metrics: the engine stats per model and policy as counters and gauges, and HTTP requests, moving with requests', async () => {
    const server = serve();
    const scrape = async () => {
      const response = await server.inject({ method: 'GET', url: '/metrics' });
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toMatch(/^text\/plain/);
      return parsePrometheus(response.body);
    };
    const labels = `{model="${MODEL}",policy="saga"}`;
    const before = await scrape();
    expect(before.samples.get(`saga_engine_requests_total${labels}`)).toBe(0);

    await post(server, '/v1/completions', GOOD_COMPLETION);
    await post(server, '/v1/completions', { ...GOOD_COMPLETION, n: 3 });
    const after = await scrape();
    for (const name of ['requests', 'prompt_tokens', 'cached_tokens', 'completion_tokens', 'offloads', 'drops', 'restores']) {
      expect(after.types.get(`saga_engine_${name}_total`)).toBe('counter');
    }
    for (const name of ['requests_running', 'requests_waiting', 'resident_sessions', 'host_tier_sessions']) {
      expect(after.types.get(`saga_engine_${name}`)).toBe('gauge');
    }
    expect(after.samples.get(`saga_engine_requests_total${labels}`)).toBe(1);
    expect(after.samples.get(`saga_engine_prompt_tokens_total${labels}`)).toBe(2);
    expect(after.samples.get(`saga_engine_cached_tokens_total${labels}`)).toBe(FAKE_CACHED_TOKENS);
    expect(after.samples.get(`saga_engine_completion_tokens_total${labels}`)).toBe(4);
    expect(after.samples.get(`saga_engine_offloads_total${labels}`)).toBe(3);
    expect(after.samples.get(`saga_engine_resident_sessions${labels}`)).toBe(1);
    expect(after.types.get('saga_engine_http_requests_total')).toBe('counter');
    expect(after.samples.get('saga_engine_http_requests_total{route="/v1/completions",status="200"}')).toBe(1);
    expect(after.samples.get('saga_engine_http_requests_total{route="/v1/completions",status="400"}')).toBe(1);
    expect(after.samples.get('saga_engine_http_requests_total{route="/metrics",status="200"}')).toBe(1);
    expect(after.types.get('saga_engine_http_request_duration_seconds')).toBe('histogram');
    expect(after.samples.get('saga_engine_http_request_duration_seconds_count{route="/v1/completions"}')).toBe(2);
  });

  it('two servers in one process keep registries of their own', async () => {
    const first = serve();
    const second = serve();
    await post(first, '/v1/completions', GOOD_COMPLETION);
    const secondScrape = parsePrometheus((await second.inject({ method: 'GET', url: '/metrics' })).body);
    expect(secondScrape.samples.get(`saga_engine_requests_total{model="${MODEL}",policy="saga"}`)).toBe(0);
  });
});

describe('POST /saga/models', () => {
  it('adds the loaded model, which /v1/models lists and requests can name', async () => {
    const loaded = new FakeEngine('second-model');
    const server = serve(new FakeEngine(), { loadModel: async () => loaded });
    const response = await post(server, '/saga/models', { path: '/models/second.gguf' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ id: 'second-model', object: 'model', created: expect.any(Number), owned_by: 'saga' });
    const listed = (await server.inject({ method: 'GET', url: '/v1/models' })).json();
    expect(listed.data.map((model: { id: string }) => model.id)).toEqual([MODEL, 'second-model']);
    expect((await post(server, '/v1/completions', { ...GOOD_COMPLETION, model: 'second-model' })).statusCode).toBe(200);
    expect(loaded.requests).toHaveLength(1);
    await server.close();
    expect(loaded.closed).toBe(true);
  });

  it('a file the loader refuses → 400 invalid_model_file, and the models served stay as they were', async () => {
    const server = serve(new FakeEngine(), {
      loadModel: async (path) => {
        throw new SagaError(`${path}: not a GGUF file`, 'ERR_SAGA_BAD_MODEL');
      },
    });
    const response = await post(server, '/saga/models', { path: '/tmp/junk.bin' });
    expectOpenAiError(response, 400, 'path', 'invalid_model_file');
    expect(response.json().error.message).toBe('/tmp/junk.bin: not a GGUF file');
    expect((await server.inject({ method: 'GET', url: '/v1/models' })).json().data).toHaveLength(1);
    await expectStillServing(server);
  });

  it('a model id already served → 409, and the duplicate is closed', async () => {
    const duplicate = new FakeEngine(MODEL);
    const server = serve(new FakeEngine(), { loadModel: async () => duplicate });
    expectOpenAiError(await post(server, '/saga/models', { path: '/models/same.gguf' }), 409, 'path', 'model_already_loaded');
    expect(duplicate.closed).toBe(true);
    await expectStillServing(server);
  });

  it('a missing path → 400; no loader → 404', async () => {
    const withLoader = serve(new FakeEngine(), { loadModel: async () => new FakeEngine('other') });
    expectOpenAiError(await post(withLoader, '/saga/models', {}), 400, 'path');
    expectOpenAiError(await post(withLoader, '/saga/models', { path: 3 }), 400, 'path');
    expectOpenAiError(await post(serve(), '/saga/models', { path: '/models/x.gguf' }), 404, 'path');
  });
});
