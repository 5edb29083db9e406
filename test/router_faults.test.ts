/**
 * `saga serve` when things go wrong: engines that refuse, hang or die (retries only before a client's first
 * byte, queued calls moved, engines marked down and back up), admission (429, 503), graceful drain, and
 * every accepted request answered exactly once (the clients' answers against the gateway's and the
 * engines' counts).
 */
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startGateway, type Gateway, type GatewayConfigInput } from '../lib/router/index';
import { call, eventually, metricSum, type Answer } from './helpers/gateway_requests';
import { startStubUpstream, type StubUpstream, type StubUpstreamOptions } from './helpers/stub_upstream';

const open: { close(): Promise<void> }[] = [];

afterEach(async () => {
  for (const thing of open.splice(0).reverse()) await thing.close();
});

async function stub(options: StubUpstreamOptions = {}): Promise<StubUpstream> {
  const started = await startStubUpstream(options);
  open.push(started);
  return started;
}

async function gateway(config: GatewayConfigInput): Promise<Gateway> {
  const gw = await startGateway({ listen: { port: 0 }, ...config });
  open.push(gw);
  return gw;
}

function engine(name: string, up: StubUpstream, capacity = 4): GatewayConfigInput['engines'][number] {
  return { name, url: up.url, kind: 'openai', capacity };
}

/** Requests the gateway answered, by its own count (every route). */
async function answeredByGateway(gw: Gateway, route = '/v1/chat/completions'): Promise<number> {
  return metricSum(await gw.metrics(), 'saga_gateway_http_requests_total', `route="${route}"`);
}

describe('retries before the first byte, never after', () => {
  it('an engine that refuses connections is marked down and the call goes to another', async () => {
    const dead = await stub();
    const live = await stub();
    const gw = await gateway({ policy: 'round-robin', engines: [engine('e0', dead), engine('e1', live)] });
    await dead.close(); // it was up when the gateway started
    const answers = await Promise.all([0, 1, 2, 3].map(() => call(gw.url)));
    expect(answers.map((a) => [a.status, a.engine])).toEqual(Array(4).fill([200, 'e1']));
    expect(gw.engines[0].up).toBe(false);
    const metrics = await gw.metrics();
    expect(metricSum(metrics, 'saga_gateway_upstream_errors_total', 'reason="connect_refused"')).toBeGreaterThanOrEqual(1);
    expect(metricSum(metrics, 'saga_gateway_retries_total')).toBeGreaterThanOrEqual(1);
    expect(live.completed()).toBe(4);
    expect(await answeredByGateway(gw)).toBe(4);
  });

  it('a whole answer that dies on the way is tried again elsewhere (nothing reached the client yet)', async () => {
    const dying = await stub({ behaviour: 'die' });
    const live = await stub();
    const gw = await gateway({ policy: 'round-robin', engines: [engine('e0', dying), engine('e1', live)] });
    const answer = await call(gw.url);
    expect(answer.status).toBe(200);
    expect(answer.engine).toBe('e1');
    expect(dying.requests).toHaveLength(1);
    expect(metricSum(await gw.metrics(), 'saga_gateway_upstream_errors_total', 'engine="e0"')).toBe(1);
  });

  it('a stream that dies after its first chunk ends with an error event and no [DONE], and is not retried', async () => {
    const dying = await stub({ behaviour: 'die' });
    const live = await stub();
    const gw = await gateway({ policy: 'round-robin', engines: [engine('e0', dying), engine('e1', live)] });
    const answer = await call(gw.url, { body: { stream: true } });
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('chunk0');
    expect(answer.text).toContain('"code":"upstream_failed"');
    expect(answer.text).not.toContain('[DONE]');
    expect(live.requests).toHaveLength(0);
    expect(gw.engines[0].up).toBe(false);
  });

  it('a call every engine fails gets one 502', async () => {
    const a = await stub({ behaviour: 'die' });
    const b = await stub({ behaviour: 'die' });
    const gw = await gateway({ policy: 'round-robin', engines: [engine('e0', a), engine('e1', b)] });
    const answer = await call(gw.url);
    expect(answer.status).toBe(502);
    expect(answer.json.error.code).toBe('upstream_failed');
    expect(a.requests.length + b.requests.length).toBe(2);
    expect(await answeredByGateway(gw)).toBe(1);
  });

  it('an engine answering 503 (overloaded, shutting down) is marked down and the call tried elsewhere', async () => {
    const busy = await stub({ behaviour: 'error', status: 503 });
    const live = await stub();
    const gw = await gateway({ policy: 'round-robin', engines: [engine('e0', busy), engine('e1', live)] });
    expect((await call(gw.url)).engine).toBe('e1');
    expect(gw.engines[0].up).toBe(false);
  });
});

describe('engines that hang or die with calls queued', () => {
  it('a hung engine times out, and its running and queued calls all go elsewhere, each answered once', async () => {
    const hung = await stub({ behaviour: 'hang' });
    const live = await stub({ delayMs: 20 });
    const gw = await gateway({
      policy: 'round-robin',
      engines: [engine('e0', hung, 1), engine('e1', live, 2)],
      // Far above the live stub's 20 ms, so that a loaded machine (vitest runs files in parallel) cannot
      // time out a live call too: this failed once at 300 ms under load.
      timeouts: { firstByteMs: 1000 },
    });
    const answers: Answer[] = await Promise.all(Array.from({ length: 8 }, (_, i) => call(gw.url, { session: `s${i}` })));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    expect(answers.every((a) => a.engine === 'e1')).toBe(true);
    // The hung engine saw only its one call in flight; the rest never left the gateway's queue for it.
    expect(hung.requests).toHaveLength(1);
    expect(live.completed()).toBe(8);
    expect(new Set(answers.map((a) => a.json.id)).size).toBe(8);
    expect(await answeredByGateway(gw)).toBe(8);
    const metrics = await gw.metrics();
    expect(metricSum(metrics, 'saga_gateway_upstream_errors_total', 'reason="first_byte_timeout"')).toBe(1);
    expect(metricSum(metrics, 'saga_gateway_engine_up', 'engine="e0"')).toBe(0);
  });

  it('an engine that comes back is probed and takes calls again', async () => {
    const first = await stub();
    const other = await stub();
    const gw = await gateway({ policy: 'round-robin', engines: [engine('e0', first), engine('e1', other)], health: { intervalMs: 50 } });
    const port = first.port;
    await first.close();
    await call(gw.url);
    expect(gw.engines[0].up).toBe(false);
    const back = await stub({ port });
    await eventually(() => gw.engines[0].up);
    const served = new Set<string | null>();
    for (let i = 0; i < 4; i++) served.add((await call(gw.url)).engine);
    expect(served).toEqual(new Set(['e0', 'e1']));
    expect(back.completed()).toBeGreaterThan(0);
  });
});

describe('admission', () => {
  it('a full queue answers 429 with Retry-After, and the calls admitted are all answered', async () => {
    const slow = await stub({ delayMs: 300 });
    const gw = await gateway({ engines: [engine('e0', slow, 1)], admission: { maxQueuedPerEngine: 1, retryAfterS: 7 } });
    const answers = await Promise.all([0, 1, 2, 3].map((i) => call(gw.url, { session: `s${i}` })));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).toEqual([200, 200, 429, 429]);
    for (const refused of answers.filter((a) => a.status === 429)) {
      expect(refused.headers.get('retry-after')).toBe('7');
      expect(refused.json.error).toMatchObject({ code: 'queue_full', type: 'invalid_request_error' });
    }
    expect(slow.requests).toHaveLength(2);
    expect(metricSum(await gw.metrics(), 'saga_gateway_rejected_total', 'reason="queue_full"')).toBe(2);
    // A refused call does not hold its session open: every program can be ended now.
    for (let i = 0; i < 4; i++) expect((await fetch(`${gw.url}/saga/sessions/s${i}`, { method: 'DELETE' })).status).toBe(204);
  });

  it('no engine up: 503 with Retry-After', async () => {
    const gone = await stub();
    await gone.close();
    const gw = await gateway({ engines: [engine('e0', gone)] });
    const answer = await call(gw.url);
    expect(answer.status).toBe(503);
    expect(answer.headers.get('retry-after')).toBe('1');
    expect(answer.json.error).toMatchObject({ type: 'server_error', code: 'no_engine_available' });
    const health = await fetch(`${gw.url}/healthz`);
    expect(health.status).toBe(503);
    expect(((await health.json()) as { status: string }).status).toBe('down');
  });
});

describe('graceful shutdown', () => {
  it('close() lets the calls in flight and queued finish, then stops', async () => {
    const slow = await stub({ delayMs: 300 });
    const gw = await startGateway({ listen: { port: 0 }, engines: [engine('e0', slow, 1)] });
    const pending = [call(gw.url, { session: 'a' }), call(gw.url, { session: 'b' })];
    await eventually(() => slow.requests.length === 1);
    const closed = gw.close();
    const answers = await Promise.all(pending);
    await closed;
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    expect(slow.completed()).toBe(2);
    await expect(fetch(`${gw.url}/healthz`)).rejects.toThrow();
  });

  it('a request arriving on an open connection while it drains gets an OpenAI 503 shutting_down with Retry-After', async () => {
    const slow = await stub({ delayMs: 300 });
    const gw = await startGateway({ listen: { port: 0 }, engines: [engine('e0', slow, 1)] });
    // A raw keep-alive connection: one call in flight, then, once the drain began, a second request on it.
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] });
    const request = `POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
    const socket = net.connect(gw.port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk) => (received += chunk.toString()));
    const socketClosed = new Promise((resolve) => socket.on('close', resolve));
    socket.write(request);
    await eventually(() => slow.requests.length === 1);
    const closed = gw.close();
    await new Promise((resolve) => setTimeout(resolve, 20));
    socket.write(request);
    await closed;
    await socketClosed;
    const answers = received.split(/(?=HTTP\/1\.1 )/);
    expect(answers.map((a) => a.slice(0, 12))).toEqual(['HTTP/1.1 200', 'HTTP/1.1 503']);
    expect(answers[1]).toMatch(/\r\nretry-after: 1\r\n/i);
    expect(JSON.parse(answers[1].slice(answers[1].indexOf('\r\n\r\n') + 4))).toMatchObject({ error: { type: 'server_error', code: 'shutting_down' } });
    expect(slow.completed()).toBe(1);
  });
});
