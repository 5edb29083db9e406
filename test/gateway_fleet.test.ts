/**
 * `saga serve` in front of three real `saga engine` processes (the generated tiny model, one thread, two
 * short sequences each, so that sessions compete for KV), with agent workloads of two tenants replayed
 * over HTTP through it in real time: sessions stay home and reuse their KV, a flooding tenant does not
 * starve the other, an engine killed mid-run loses no call, bad input is refused and the gateway serves on.
 *
 * The engines run `--policy vllm` (the baseline engine) throughout: what differs between runs is the
 * gateway's policy. Every run names its sessions afresh, so no run reuses another's KV.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROMPT_EXTRA_TOKENS, runAgentWorkload } from '../lib/engine/agent_client';
import { ENGINE_HEADER } from '../lib/router/upstream';
import { quantile } from '../lib/metrics/metrics';
import type { GatewayPolicyName } from '../lib/router/config';
import { startGateway, type Gateway } from '../lib/router/index';
import { generateWorkload } from '../lib/workloads/generators/index';
import { scaleWorkload } from '../lib/workloads/scale';
import type { Workload } from '../lib/workloads/types';
import { agentSender, fleetGatewayConfig, startEngineFleet, type CallRecord, type EngineFleet, type FleetGatewayOptions } from './helpers/engine_fleet';

const ENGINES = 3;
const SEQUENCES = 2;
const CONTEXT_TOKENS = 2048;
const TENANTS = [
  { name: 'light', weight: 1 },
  { name: 'flood', weight: 1 },
];

let fleet: EngineFleet;

/** Starting three engines (node, tsx, llama.cpp each) takes ~5 s here, much longer on a loaded machine. */
const START_TIMEOUT_MS = 120_000;

beforeAll(async () => {
  fleet = await startEngineFleet({ engines: ENGINES, sequences: SEQUENCES, contextTokens: CONTEXT_TOKENS, startTimeoutMs: START_TIMEOUT_MS });
}, START_TIMEOUT_MS);

afterAll(async () => {
  await fleet?.close();
}, START_TIMEOUT_MS);

/**
 * Browsing agents (webarena: many short calls, the page observation replaced each step) of one tenant,
 * scaled to the tiny engines: tokens x 1/16, tool gaps and arrivals x `timeScale`.
 */
function browsing(tenant: string, tasks: number, ratePerS: number, seed: number, timeScale: number): Workload {
  const generated = generateWorkload('webarena', { tenant, tasks, ratePerS, seed });
  return scaleWorkload(generated, { tokenScale: 1 / 16, timeScale, maxContextTokens: CONTEXT_TOKENS - PROMPT_EXTRA_TOKENS });
}

/** Two tenants' workloads as one, tasks in arrival order. */
function merge(a: Workload, b: Workload): Workload {
  expect(b.blockSize).toBe(a.blockSize);
  const tasks = [...a.tasks, ...b.tasks].sort((x, y) => x.arrivalS - y.arrivalS);
  return { name: `${a.name} + ${b.name}`, blockSize: a.blockSize, tasks };
}

let runs = 0;

interface Run {
  readonly records: CallRecord[];
  readonly metrics: string;
  /** Each record's call in the workload (same order as records). */
  readonly calls: { readonly promptTokens: number; readonly outputTokens: number }[];
}

/**
 * Replays `workload` through a gateway in front of the fleet; `onRecord` sees each call's record as it
 * ends, with the gateway. Resolves with every call's record and the gateway's /metrics at the end.
 */
async function replay(workload: Workload, options: Omit<FleetGatewayOptions, 'tenants'>, onRecord?: (record: CallRecord, gateway: Gateway) => void): Promise<Run> {
  const gateway = await startGateway(fleetGatewayConfig(fleet.urls, { ...options, tenants: TENANTS }));
  try {
    const prefix = `run${runs++}/`;
    const records: CallRecord[] = [];
    const sender = agentSender({ url: gateway.url, model: fleet.modelId, sessionPrefix: prefix, records, onRecord: (record) => onRecord?.(record, gateway) });
    await runAgentWorkload(workload, sender);
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    const byId = new Map(workload.tasks.map((t) => [t.id, t]));
    const calls = records.map((r) => byId.get(r.session.slice(prefix.length))?.calls[r.index] ?? { promptTokens: NaN, outputTokens: NaN });
    return { records, metrics, calls };
  } finally {
    await gateway.close();
  }
}

/** Records grouped by session, each session's in call order. */
function bySession(records: readonly CallRecord[]): CallRecord[][] {
  const sessions = new Map<string, CallRecord[]>();
  for (const r of records) sessions.set(r.session, [...(sessions.get(r.session) ?? []), r]);
  return [...sessions.values()].map((calls) => calls.sort((x, y) => x.index - y.index));
}

const cachedShare = (records: readonly CallRecord[]) => records.reduce((n, r) => n + r.cachedTokens, 0) / records.reduce((n, r) => n + r.promptTokens, 0);

/** The sum of a Prometheus counter over its label sets. */
function counterSum(metrics: string, name: string): number {
  return [...metrics.matchAll(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
}

/**
 * Every call answered once, 200, with the usage of its own prompt (never another call's answer), and the
 * gateway counts as many answers as there were calls.
 */
function expectEachCallAnsweredOnce(workload: Workload, run: Run): void {
  const expected = workload.tasks.reduce((n, t) => n + t.calls.length, 0);
  expect(run.records.length).toBe(expected);
  expect(counterSum(run.metrics, 'saga_gateway_tenant_calls_total')).toBe(expected);
  expect(new Set(run.records.map((r) => `${r.session}#${r.index}`)).size).toBe(expected);
  expect(run.records.every((r) => r.status === 200)).toBe(true);
  run.records.forEach((r, i) => {
    expect(r.promptTokens, `${r.session} call ${r.index}`).toBe(run.calls[i].promptTokens + PROMPT_EXTRA_TOKENS);
    expect(r.completionTokens, `${r.session} call ${r.index}`).toBe(run.calls[i].outputTokens);
  });
}

describe('saga serve in front of three saga engines', () => {
  // Two tenants, five sessions at a time or so: about as many as the fleet's six sequences.
  const workload = merge(browsing('light', 3, 2, 1, 0.02), browsing('flood', 4, 2, 2, 0.02));

  it('keeps sessions home with affinity and saga: their follow-up calls reuse cached tokens, more than round-robin', async () => {
    const share = new Map<GatewayPolicyName, number>();
    for (const policy of ['round-robin', 'affinity', 'saga'] as const) {
      const run = await replay(workload, { policy, capacity: SEQUENCES });
      expectEachCallAnsweredOnce(workload, run);
      share.set(policy, cachedShare(run.records));
      if (policy === 'round-robin') continue;
      let followUps = 0;
      let home = 0;
      let homeAndCached = 0;
      for (const calls of bySession(run.records)) {
        for (let i = 1; i < calls.length; i++) {
          followUps++;
          const engine = calls[i].headers.get(ENGINE_HEADER);
          expect(engine, policy).toBeTruthy();
          if (engine !== calls[i - 1].headers.get(ENGINE_HEADER)) continue;
          home++;
          if (calls[i].cachedTokens > 0) homeAndCached++;
        }
      }
      // affinity never moves a session while its engine is up; saga's work stealing may move a queued call.
      if (policy === 'affinity') expect(home, policy).toBe(followUps);
      else expect(home, policy).toBeGreaterThanOrEqual(0.8 * followUps);
      // A call at home finds its session's KV unless the engine gave the sequence to another session (seven
      // sessions, six sequences: it happens; measured 84-88% of home calls cached under affinity). saga also
      // moves a session whose home is busy to an idle engine, where it pushes another session out: 75-87% with
      // the machine lightly shared, 65-66% in two runs under heavy load.
      expect(homeAndCached, policy).toBeGreaterThanOrEqual((policy === 'affinity' ? 0.7 : 0.6) * home);
    }
    // Measured on an idle machine: round-robin 14%, affinity and saga 33%. On a loaded one saga steals more
    // (queues are longer, so moving a call saves more) and keeps less: 28% against round-robin's 19%.
    const rr = share.get('round-robin') as number;
    expect(share.get('affinity')).toBeGreaterThan(1.5 * rr);
    expect(share.get('saga')).toBeGreaterThan(1.2 * rr);
  });
});

describe('fair share under a flood', () => {
  it("saga serves the light tenant's calls ahead of a flooding tenant's backlog; round-robin (FCFS) does not", async () => {
    // light: three browsing agents with their tool gaps. flood: twenty-four agents arriving at once with
    // next to no gaps, far more than the six calls the fleet takes at a time, so that calls queue.
    const light = browsing('light', 3, 4, 3, 0.02);
    const flood = browsing('flood', 24, 1000, 4, 0.001);
    const workload = merge(light, flood);
    const waits = new Map<GatewayPolicyName, { light: number; flood: number }>();
    for (const policy of ['saga', 'round-robin'] as const) {
      const run = await replay(workload, { policy, capacity: SEQUENCES });
      expectEachCallAnsweredOnce(workload, run);
      // Latency of each tenant's calls while both have calls in: from the light tenant's first call to its last.
      const lightCalls = run.records.filter((r) => r.tenant === 'light');
      const from = Math.min(...lightCalls.map((r) => r.startMs));
      const to = Math.max(...lightCalls.map((r) => r.endMs));
      const floodCalls = run.records.filter((r) => r.tenant === 'flood' && r.startMs >= from && r.endMs <= to);
      const median = (records: CallRecord[]) => quantile(records.map((r) => r.endMs - r.startMs), 0.5);
      expect(floodCalls.length, policy).toBeGreaterThan(lightCalls.length);
      waits.set(policy, { light: median(lightCalls), flood: median(floodCalls) });
    }
    // Ratios within one run, so that the machine's speed cancels. Measured: saga 0.41-0.52, round-robin 1.05-1.21.
    const ratio = (policy: GatewayPolicyName) => {
      const w = waits.get(policy) as { light: number; flood: number };
      return w.light / w.flood;
    };
    expect(ratio('saga')).toBeLessThan(0.75);
    expect(ratio('saga')).toBeLessThan(0.8 * ratio('round-robin'));
  });
});

describe('bad input through the gateway', () => {
  it('answers OpenAI-style 400s (and 404 for an unknown model) and keeps serving', async () => {
    const maxBodyBytes = 64 * 1024;
    const gateway = await startGateway(fleetGatewayConfig(fleet.urls, { policy: 'saga', capacity: SEQUENCES, tenants: TENANTS, maxBodyBytes }));
    try {
      const post = (path: string, body: unknown, contentType = 'application/json') =>
        fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': contentType, 'x-saga-session': 'bad-input' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
      const model = fleet.modelId;
      const good = { model, messages: [{ role: 'user', content: 'hello there' }], max_tokens: 4 };
      const bad: [string, unknown, number][] = [
        ['/v1/chat/completions', '{"model": ', 400],
        ['/v1/chat/completions', '[1, 2, 3]', 400],
        ['/v1/chat/completions', { ...good, messages: 'hello' }, 400],
        ['/v1/chat/completions', { ...good, messages: [] }, 400],
        ['/v1/chat/completions', { ...good, max_tokens: -1 }, 400],
        ['/v1/chat/completions', { ...good, messages: [{ role: 'user', content: 'x'.repeat(maxBodyBytes) }] }, 400],
        ['/v1/completions', { model, prompt: ' a b'.repeat(CONTEXT_TOKENS), max_tokens: 4 }, 400],
        ['/v1/completions', { model, max_tokens: 4 }, 400],
        ['/v1/completions', { model: 'no-such-model', prompt: 'hello', max_tokens: 4 }, 404],
      ];
      for (const [path, body, status] of bad) {
        const response = await post(path, body);
        const label = `${path} ${typeof body === 'string' ? body : JSON.stringify(body).slice(0, 80)}`;
        expect(response.status, label).toBe(status);
        const error = ((await response.json()) as { error?: { message?: unknown; type?: unknown } }).error;
        expect(typeof error?.message, label).toBe('string');
        expect(error?.type, label).toBe('invalid_request_error');
      }
      const after = await post('/v1/chat/completions', good);
      expect(after.status).toBe(200);
      expect(((await after.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBeGreaterThan(0);
      expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    } finally {
      await gateway.close();
    }
  });
});

// Last: it kills an engine of the fleet.
describe('an engine killed mid-run', () => {
  it('loses no call: every call of the workload answered once, by the engines still up', async () => {
    const workload = merge(browsing('light', 3, 2, 5, 0.02), browsing('flood', 4, 2, 6, 0.02));
    const total = workload.tasks.reduce((n, t) => n + t.calls.length, 0);
    const victim = 1;
    const victimName = `engine-${victim}`;
    let killed: Promise<void> | undefined;
    let inFlightAtKill = 0;
    let killedAtMs = Infinity;
    let answered = 0;
    const run = await replay(workload, { policy: 'saga', capacity: SEQUENCES }, (_record, gateway) => {
      if (killed !== undefined) return;
      // A quarter in, at an answer while the victim has a call in flight (else at half way): SIGKILL, as a crash.
      const done = ++answered;
      const inFlight = gateway.engines[victim].inFlight;
      if (done >= total / 4 && (inFlight > 0 || done >= total / 2)) {
        inFlightAtKill = inFlight;
        killedAtMs = performance.now();
        killed = fleet.kill(victim);
      }
    });
    await killed;
    expect(killed).toBeDefined();
    expect(fleet.alive(victim)).toBe(false);
    expectEachCallAnsweredOnce(workload, run);
    // Calls sent after the kill are answered by the engines still up.
    const late = run.records.filter((r) => r.startMs > killedAtMs && r.headers.get(ENGINE_HEADER) === victimName);
    expect(late).toEqual([]);
    const retries = Number(new RegExp(`^saga_gateway_retries_total\\{engine="${victimName}"\\} (\\S+)$`, 'm').exec(run.metrics)?.[1] ?? 0);
    // The calls it had in flight were tried again elsewhere (measured: 2 of 2), and it is marked down.
    if (inFlightAtKill > 0) expect(retries).toBeGreaterThanOrEqual(1);
    expect(run.metrics).toMatch(new RegExp(`^saga_gateway_engine_up\\{engine="${victimName}"\\} 0$`, 'm'));
  });
});
