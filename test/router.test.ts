/**
 * `saga serve` against stub engines (in-process, localhost): routing choices of each policy, engine hints,
 * streaming passthrough, the model list, metrics and bad requests.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ROUTING } from '../lib/constants';
import { startGateway, type Gateway, type GatewayConfigInput } from '../lib/router/index';
import { agentSender } from './helpers/engine_fleet';
import { agentTurn, call, eventually, metricSum } from './helpers/gateway_requests';
import { startStubUpstream, type StubUpstream, type StubUpstreamOptions } from './helpers/stub_upstream';

const open: { close(): Promise<void> }[] = [];

afterEach(async () => {
  for (const thing of open.splice(0).reverse()) await thing.close();
});

async function stubs(...options: StubUpstreamOptions[]): Promise<StubUpstream[]> {
  const started = await Promise.all(options.map((o) => startStubUpstream(o)));
  open.push(...started);
  return started;
}

async function gateway(config: Omit<GatewayConfigInput, 'engines'> & { engines: GatewayConfigInput['engines'] }): Promise<Gateway> {
  const gw = await startGateway({ listen: { port: 0 }, ...config });
  open.push(gw);
  return gw;
}

function engines(upstreams: readonly StubUpstream[], kind = 'openai', capacity = 4): GatewayConfigInput['engines'] {
  return upstreams.map((u, i) => ({ name: `e${i}`, url: u.url, kind: kind as 'openai', capacity }));
}

describe('routing', () => {
  it('round-robin sends one call to each engine in turn, whatever the session', async () => {
    const ups = await stubs({}, {});
    const gw = await gateway({ policy: 'round-robin', engines: engines(ups) });
    const served: (string | null)[] = [];
    for (let i = 0; i < 4; i++) served.push((await call(gw.url, { session: 's1' })).engine);
    expect(served).toEqual(['e0', 'e1', 'e0', 'e1']);
  });

  it('counts the calls placed on each engine in its recent arrival rate (the stealing price reads it)', async () => {
    const ups = await stubs({}, {});
    const gw = await gateway({ policy: 'round-robin', engines: engines(ups) });
    expect(gw.engines.map((e) => e.arrivalsPerS)).toEqual([0, 0]);
    for (let i = 0; i < 4; i++) await call(gw.url, { session: 's1' });
    // Two calls each within a second: 2 / tau, barely decayed.
    for (const e of gw.engines) {
      expect(e.arrivalsPerS).toBeGreaterThan(1.9 / ROUTING.arrivalRateTimeConstantS);
      expect(e.arrivalsPerS).toBeLessThanOrEqual(2 / ROUTING.arrivalRateTimeConstantS);
    }
  });

  it('affinity keeps a session on its home engine and spreads new sessions', async () => {
    const ups = await stubs({}, {});
    const gw = await gateway({ policy: 'affinity', engines: engines(ups) });
    const s1: (string | null)[] = [];
    const s2: (string | null)[] = [];
    for (let turn = 1; turn <= 3; turn++) {
      s1.push((await call(gw.url, { session: 's1', body: agentTurn('s1', turn) })).engine);
      s2.push((await call(gw.url, { session: 's2', body: agentTurn('s2', turn) })).engine);
    }
    expect(new Set(s1).size).toBe(1);
    expect(new Set(s2).size).toBe(1);
    expect(s1[0]).not.toBe(s2[0]);
    // The stubs' prefix caches saw each session's earlier turns: later turns report cached tokens.
    const metrics = await gw.metrics();
    expect(metricSum(metrics, 'saga_gateway_session_routes_total', 'outcome="home"')).toBe(4);
    expect(metricSum(metrics, 'saga_gateway_session_routes_total', 'outcome="moved"')).toBe(0);
    expect(metricSum(metrics, 'saga_gateway_cached_tokens_total')).toBeGreaterThan(0);
    expect(metricSum(metrics, 'saga_gateway_affinity_hit_rate')).toBeGreaterThan(0.3);
  });

  it('round-robin moves a session between engines, so fewer of its tokens are cached than under affinity', async () => {
    const hitRate = async (policy: 'round-robin' | 'affinity') => {
      const ups = await stubs({}, {});
      const gw = await gateway({ policy, engines: engines(ups) });
      for (let turn = 1; turn <= 4; turn++) await call(gw.url, { session: 's', body: agentTurn('s', turn) });
      return metricSum(await gw.metrics(), 'saga_gateway_affinity_hit_rate');
    };
    expect(await hitRate('affinity')).toBeGreaterThan(await hitRate('round-robin'));
  });

  it('a call waits for its busy home under affinity, and saga moves it to an idle engine', async () => {
    const home = async (policy: 'affinity' | 'saga') => {
      // e0 is slow and takes one call at a time; e1 is idle.
      const ups = await stubs({ delayMs: 800 }, {});
      const gw = await gateway({ policy, engines: [{ name: 'e0', url: ups[0].url, kind: 'openai', capacity: 1 }, { name: 'e1', url: ups[1].url, kind: 'openai', capacity: 1 }] });
      const first = call(gw.url, { session: 's', body: agentTurn('s', 1) });
      await new Promise((resolve) => setTimeout(resolve, 50));
      const second = call(gw.url, { session: 's', body: agentTurn('s', 2) });
      const answers = await Promise.all([first, second]);
      expect(answers.map((a) => a.status)).toEqual([200, 200]);
      const metrics = await gw.metrics();
      return { engines: answers.map((a) => a.engine), moved: metricSum(metrics, 'saga_gateway_session_routes_total', 'outcome="moved"'), steals: metricSum(metrics, 'saga_gateway_steals_total') };
    };
    expect(await home('affinity')).toEqual({ engines: ['e0', 'e0'], moved: 0, steals: 0 });
    // saga moves it at arrival (e0 is predicted busy for longer than the move costs) or steals it from e0's
    // queue soon after (whichever the timing gives): one move either way.
    const saga = await home('saga');
    expect(saga.engines).toEqual(['e0', 'e1']);
    expect(saga.moved).toBe(1);
    expect(saga.steals).toBeLessThanOrEqual(1);
  });

  it("saga does not move a session onto an idle engine whose places its own sessions fill (they are in tool calls)", async () => {
    // e0 is slow and takes one call at a time; e1 is quick, has one place, and homes session t.
    const ups = await stubs({ delayMs: 800 }, {});
    const gw = await gateway({ policy: 'saga', engines: [{ name: 'e0', url: ups[0].url, kind: 'openai', capacity: 1 }, { name: 'e1', url: ups[1].url, kind: 'openai', capacity: 1 }] });
    const first = call(gw.url, { session: 's', body: agentTurn('s', 1) });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await call(gw.url, { session: 't', body: agentTurn('t', 1) })).engine).toBe('e1');
    // s's next call finds its home busy and e1 idle, but e1 with s would home 2 sessions for 1 place, and
    // no fewer than e0: it waits at home.
    const second = call(gw.url, { session: 's', body: agentTurn('s', 2) });
    const answers = await Promise.all([first, second]);
    expect(answers.map((a) => [a.status, a.engine])).toEqual([
      [200, 'e0'],
      [200, 'e0'],
    ]);
    const metrics = await gw.metrics();
    expect(metricSum(metrics, 'saga_gateway_session_routes_total', 'outcome="moved"')).toBe(0);
    expect(metricSum(metrics, 'saga_gateway_steals_total')).toBe(0);
  });

  it('a program ended by its client (DELETE /saga/sessions/:id) stops counting on its engine at once', async () => {
    const homeOfNext = async (end: boolean) => {
      const ups = await stubs({}, {});
      const gw = await gateway({ policy: 'affinity', engines: engines(ups) });
      expect((await call(gw.url, { session: 'a', body: agentTurn('a', 1) })).engine).toBe('e0');
      if (end) expect((await fetch(`${gw.url}/saga/sessions/a`, { method: 'DELETE' })).status).toBe(204);
      const next = (await call(gw.url, { session: 'b', body: agentTurn('b', 1) })).engine;
      return { next, ended: metricSum(await gw.metrics(), 'saga_gateway_sessions_ended_total', 'reason="client"') };
    };
    // e0 homes a until it ends: the next program goes to e1; once a ended, e0 is as free as e1 again.
    expect(await homeOfNext(false)).toEqual({ next: 'e1', ended: 0 });
    expect(await homeOfNext(true)).toEqual({ next: 'e0', ended: 1 });
  });

  it("the bench's agents (agentSender with endSessions) end their program after its last answer, and only then", async () => {
    const [up] = await stubs({});
    const gw = await gateway({ policy: 'saga', engines: engines([up]) });
    const send = agentSender({ url: gw.url, model: 'stub-model', endSessions: true });
    const ended = async () => metricSum(await gw.metrics(), 'saga_gateway_sessions_ended_total', 'reason="client"');
    const turn = { session: 'p', tenant: 't', kind: 'k', prompt: 'hello there', maxTokens: 4 };
    await send({ ...turn, lastCall: false });
    expect(await ended()).toBe(0);
    await send({ ...turn, prompt: 'hello there, again', lastCall: true });
    expect(await ended()).toBe(1);
  });

  it('refuses to end a session that is unknown, badly named or still has a call to answer, and keeps it', async () => {
    const [up] = await stubs({ delayMs: 300 });
    const gw = await gateway({ policy: 'saga', engines: engines([up]) });
    const del = async (id: string) => {
      const r = await fetch(`${gw.url}/saga/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' });
      return { status: r.status, code: ((await r.json()) as { error: { code: string | null } }).error.code };
    };
    expect(await del('nobody')).toEqual({ status: 404, code: 'session_not_found' });
    expect((await del('a\u0001b')).status).toBe(400);
    const pending = call(gw.url, { session: 's', body: agentTurn('s', 1) });
    await eventually(async () => metricSum(await gw.metrics(), 'saga_gateway_in_flight') === 1);
    expect(await del('s')).toEqual({ status: 409, code: 'session_busy' });
    expect((await pending).status).toBe(200);
    // Still known after the refusal: it ends once its call is answered, and then it is gone.
    expect((await fetch(`${gw.url}/saga/sessions/s`, { method: 'DELETE' })).status).toBe(204);
    expect(await del('s')).toEqual({ status: 404, code: 'session_not_found' });
    expect(metricSum(await gw.metrics(), 'saga_gateway_sessions_ended_total')).toBe(1);
  });

  it('saga orders the queue by fair share: a flooding tenant does not make another wait behind all its calls', async () => {
    const position = async (policy: 'affinity' | 'saga') => {
      const [up] = await stubs({ delayMs: 40 });
      const gw = await gateway({ policy, engines: [{ name: 'e0', url: up.url, kind: 'openai', capacity: 1 }], tenants: [{ name: 'flood' }, { name: 'calm' }] });
      const flood = Array.from({ length: 10 }, (_, i) => call(gw.url, { session: `f${i}`, tenant: 'flood', body: { messages: [{ role: 'user', content: `flood ${i} ${'x'.repeat(400)}` }] } }));
      await eventually(() => gw.engines[0].queued === 9); // one sent, nine waiting
      const calm = call(gw.url, { session: 'c', tenant: 'calm', body: { messages: [{ role: 'user', content: 'calm' }] } });
      await Promise.all([...flood, calm]);
      return up.requests.findIndex((r) => JSON.stringify(r.body.messages).includes('calm'));
    };
    expect(await position('affinity')).toBe(10); // FCFS: behind every flooding call
    expect(await position('saga')).toBeLessThanOrEqual(2);
  });

  it('sends a call only to an engine serving its model', async () => {
    const ups = await stubs({ model: 'm0' }, { model: 'm1' });
    const gw = await gateway({ policy: 'round-robin', engines: engines(ups) });
    for (let i = 0; i < 3; i++) expect((await call(gw.url, { body: { model: 'm1' } })).engine).toBe('e1');
    const models = (await (await fetch(`${gw.url}/v1/models`)).json()) as { object: string; data: { id: string }[] };
    expect(models.object).toBe('list');
    expect(models.data.map((m: { id: string }) => m.id).sort()).toEqual(['m0', 'm1']);
  });
});

describe('engine hints', () => {
  it('llama.cpp: cache_prompt and one stable id_slot per session, different slots for concurrent sessions', async () => {
    const [up] = await stubs({ delayMs: 100 });
    const gw = await gateway({ policy: 'affinity', engines: [{ name: 'l', url: up.url, kind: 'llama.cpp', capacity: 2 }] });
    const turn = (session: string) => call(gw.url, { session, body: { messages: [{ role: 'user', content: `session ${session}` }] } });
    await Promise.all([turn('a'), turn('b')]);
    await turn('a');
    await turn('b');
    await turn('a');
    expect(up.requests.every((r) => r.body.cache_prompt === true)).toBe(true);
    const slotsOf = (session: string) => up.requests.filter((r) => JSON.stringify(r.body.messages).includes(`session ${session}`)).map((r) => r.body.id_slot);
    expect(slotsOf('a')).toHaveLength(3);
    expect(new Set(slotsOf('a')).size).toBe(1);
    expect(new Set(slotsOf('b')).size).toBe(1);
    expect(new Set([slotsOf('a')[0], slotsOf('b')[0]])).toEqual(new Set([0, 1]));
  });

  it('vllm: priority from the queue policy only when the engine schedules by priority', async () => {
    const ups = await stubs({}, {});
    const gw = await gateway({
      policy: 'round-robin',
      engines: [{ name: 'p', url: ups[0].url, kind: 'vllm', capacity: 1, priorityScheduling: true }, { name: 'f', url: ups[1].url, kind: 'vllm', capacity: 1 }],
    });
    await call(gw.url);
    await call(gw.url);
    expect(Number.isInteger(ups[0].requests[0].body.priority)).toBe(true);
    expect(ups[1].requests[0].body).not.toHaveProperty('priority');
  });

  it('saga-engine: the identity goes up as x-saga-* headers, whichever convention the client used', async () => {
    const [up] = await stubs({});
    const gw = await gateway({ engines: engines([up], 'saga-engine') });
    await call(gw.url, { headers: { 'x-session-token': 'tok-1', 'x-saga-tenant': 'acme', 'x-saga-kind': 'swebench' } });
    await call(gw.url, { body: { user: 'user-7' } });
    expect(up.requests[0].headers).toMatchObject({ 'x-saga-session': 'tok-1', 'x-saga-tenant': 'acme', 'x-saga-kind': 'swebench' });
    expect(up.requests[1].headers).toMatchObject({ 'x-saga-session': 'user-7', 'x-saga-tenant': 'default' });
  });

  it('openai: the body goes up as the client sent it', async () => {
    const [up] = await stubs({});
    const gw = await gateway({ engines: engines([up]) });
    const body = { model: 'stub-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8, temperature: 0.5, tools: [{ type: 'function', function: { name: 'f' } }] };
    await call(gw.url, { body });
    expect(up.requests[0].body).toEqual(body);
  });
});

describe('streaming', () => {
  it('passes chunks on as they arrive, before the engine has finished', async () => {
    const [up] = await stubs({ chunks: 3, chunkDelayMs: 400 });
    const gw = await gateway({ engines: engines([up]) });
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'stub-model', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('chunk0');
    expect(up.completed()).toBe(0); // the engine is still writing
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toContain('chunk2');
    expect(rest.trim().endsWith('data: [DONE]')).toBe(true);
    expect(up.completed()).toBe(1);
    // The usage chunk was read on the way through.
    expect(metricSum(await gw.metrics(), 'saga_gateway_tenant_service_tokens_total', 'tenant="default"')).toBeGreaterThan(8);
  });

  it('text completions stream too', async () => {
    const [up] = await stubs({ chunks: 2 });
    const gw = await gateway({ engines: engines([up]) });
    const answer = await call(gw.url, { path: '/v1/completions', raw: JSON.stringify({ model: 'stub-model', prompt: 'once upon', stream: true }) });
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('"text":"chunk1 "');
    expect(up.requests[0].path).toBe('/v1/completions');
  });
});

describe('bad requests', () => {
  it.each([
    ['malformed JSON', { raw: '{"messages": [' }, null],
    ['a body that is not an object', { raw: '[1, 2]' }, null],
    ['no messages', { raw: JSON.stringify({ model: 'stub-model' }) }, 'messages'],
    ['empty messages', { body: { messages: [] } }, 'messages'],
    ['a message without a role', { body: { messages: [{ content: 'x' }] } }, 'messages[0].role'],
    ['max_tokens of 0', { body: { max_tokens: 0 } }, 'max_tokens'],
    ['max_tokens not an integer', { body: { max_tokens: 'many' } }, 'max_tokens'],
    ['stream not a boolean', { body: { stream: 'yes' } }, 'stream'],
    ['no prompt', { path: '/v1/completions' as const, raw: JSON.stringify({ model: 'stub-model' }) }, 'prompt'],
  ])('%s: an OpenAI 400 naming the field, nothing sent upstream', async (_what, options, param) => {
    const [up] = await stubs({});
    const gw = await gateway({ engines: engines([up]) });
    const answer = await call(gw.url, options);
    expect(answer.status).toBe(400);
    expect(answer.json.error).toMatchObject({ type: 'invalid_request_error', param });
    expect(typeof answer.json.error.message).toBe('string');
    expect(up.requests).toHaveLength(0);
  });

  it('a body over limits.maxBodyBytes: 400 request_too_large', async () => {
    const [up] = await stubs({});
    const gw = await gateway({ engines: engines([up]), limits: { maxBodyBytes: 1000 } });
    const answer = await call(gw.url, { body: { messages: [{ role: 'user', content: 'x'.repeat(2000) }] } });
    expect(answer.status).toBe(400);
    expect(answer.json.error).toMatchObject({ type: 'invalid_request_error', code: 'request_too_large' });
    expect(up.requests).toHaveLength(0);
  });

  it('an unknown URL: 404 in the same shape', async () => {
    const [up] = await stubs({});
    const gw = await gateway({ engines: engines([up]) });
    const res = await fetch(`${gw.url}/v1/embeddings`, { method: 'POST' });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unknown_url');
  });

  it("an engine's own 4xx is passed on as it is, not retried", async () => {
    const ups = await stubs({ behaviour: 'error', status: 422 }, {});
    const gw = await gateway({ policy: 'round-robin', engines: engines(ups) });
    const answer = await call(gw.url);
    expect(answer.status).toBe(422);
    expect(answer.json.error.message).toBe('stub error 422');
    expect(ups[1].requests).toHaveLength(0);
    expect(gw.engines[0].up).toBe(true);
  });
});

describe('whole answers passed on', () => {
  /** An engine answering every POST with `body` (bytes as given) under a `Content-Type` of its own spelling. */
  async function rawEngine(body: Buffer, contentType: string): Promise<string> {
    const models = JSON.stringify({ object: 'list', data: [{ id: 'stub-model', object: 'model' }] });
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.method === 'GET') res.writeHead(200, { 'content-type': 'application/json' }).end(models);
        else res.writeHead(200, [['Content-Type', contentType], ['Content-Length', String(body.length)]]).end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    open.push({ close: () => new Promise<void>((resolve) => server.close(() => resolve()).closeAllConnections()) });
    return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  }

  it.each([
    ['UTF-8 text beyond ASCII', Buffer.from(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: 'é 日本 🙂' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 2 } }), 'utf8')],
    ['bytes that are not UTF-8', Buffer.concat([Buffer.from('{"x": "', 'latin1'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}', 'latin1')])],
  ])('%s: the same bytes, content type and length, and the engine that served them', async (_name, body) => {
    const url = await rawEngine(body, 'Application/JSON; charset=UTF-8');
    const gw = await gateway({ engines: [{ name: 'e0', url, kind: 'openai', capacity: 2 }] });
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('Application/JSON; charset=UTF-8');
    expect(res.headers.get('content-length')).toBe(String(body.length));
    expect(res.headers.get('x-saga-engine')).toBe('e0');
    expect(Buffer.from(await res.arrayBuffer()).equals(body)).toBe(true);
  });
});

describe('pipelined requests', () => {
  it('two requests sent back to back on one connection get their two answers, in order', async () => {
    const [up] = await stubs({ completionTokens: 1 });
    const gw = await gateway({ engines: engines([up]) });
    const request = (n: number) => {
      const body = JSON.stringify({ messages: [{ role: 'user', content: `hi ${n}` }] });
      return `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
    };
    const { port } = new URL(gw.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    open.push({ close: async () => void socket.destroy() });
    let text = '';
    socket.setEncoding('latin1');
    const both = new Promise<void>((resolve) =>
      socket.on('data', (chunk: string) => {
        text += chunk;
        if ((text.match(/"finish_reason"/g) ?? []).length === 2) resolve();
      }),
    );
    socket.write(request(1) + request(2));
    await both;
    const answers = text.split('HTTP/1.1 ').slice(1);
    expect(answers.map((a) => a.slice(0, 3))).toEqual(['200', '200']);
    for (const answer of answers) {
      const [head, body] = answer.split('\r\n\r\n');
      expect(Number(/content-length: (\d+)/i.exec(head)?.[1])).toBe(Buffer.byteLength(body, 'latin1'));
    }
    expect(up.requests.map((r) => (r.body.messages as { content: string }[])[0].content)).toEqual(['hi 1', 'hi 2']);
  });
});

describe('health and metrics', () => {
  it('/healthz and /metrics say what each engine is doing', async () => {
    const ups = await stubs({}, {});
    const gw = await gateway({ engines: engines(ups), tenants: [{ name: 'a', weight: 2, slo: { slowdown: 5 } }] });
    await call(gw.url, { session: 's', tenant: 'a' });
    const health = (await (await fetch(`${gw.url}/healthz`)).json()) as { status: string; engines: { name: string; up: boolean }[] };
    expect(health).toMatchObject({ status: 'ok', policy: 'saga' });
    expect(health.engines.map((e: { name: string; up: boolean }) => [e.name, e.up])).toEqual([['e0', true], ['e1', true]]);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    for (const name of ['saga_gateway_queue_depth', 'saga_gateway_in_flight', 'saga_gateway_engine_up', 'saga_gateway_steals_total', 'saga_gateway_affinity_hit_rate']) expect(metrics).toContain(name);
    expect(metricSum(metrics, 'saga_gateway_engine_up')).toBe(2);
    expect(metricSum(metrics, 'saga_gateway_tenant_calls_total', 'tenant="a"')).toBe(1);
    expect(metricSum(metrics, 'saga_gateway_tenant_service_tokens_total', 'tenant="a"')).toBeGreaterThan(8);
    expect(metricSum(metrics, 'saga_gateway_tenant_slowdown_count', 'tenant="a"')).toBe(1);
    expect(metricSum(metrics, 'saga_gateway_tenant_slo_met_total', 'tenant="a"')).toBe(1);
    // The completion itself is counted (its answer goes out on the raw response, past Fastify's send path).
    expect(metricSum(metrics, 'saga_gateway_http_requests_total', 'route="/v1/chat/completions",status="200"')).toBe(1);
  });
});
