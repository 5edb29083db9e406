/**
 * The simulator (lib/sim): determinism, isolation, vLLM's LRU order, preemption, conservation of calls,
 * bulk decode against one-iteration steps, and the oracle bound against LRU.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { main } from '../lib/cli';
import { describe, expect, it } from 'vitest';
import { Tier } from '../lib/kv/kv_cache';
import { computeMetrics } from '../lib/metrics/metrics';
import { createPolicy, FcfsQueue } from '../lib/policy/index';
import { Cluster } from '../lib/sim/cluster';
import { CostModel } from '../lib/sim/cost_model';
import { isolatedTaskTimes, resolveClusterSpec, resolveWorkload, simulate, type ClusterSpecInput } from '../lib/sim/simulate';
import { GPUS, MODELS } from '../lib/constants';
import type { Call, Task, Workload } from '../lib/workloads/types';

const MASK = (1n << 64n) - 1n;

/** Chained block hashes of `tokens` made of segments: a call's prompt is its task's context so far. */
function chain(parent: bigint, content: bigint): bigint {
  let h = (parent ^ (content * 0x9e3779b97f4a7c15n)) & MASK;
  h ^= h >> 31n;
  h = (h * 0xbf58476d1ce4e5b9n) & MASK;
  h ^= h >> 29n;
  return h === 0n ? 1n : h;
}

interface CallSpec {
  /** Tokens appended to the context before this call (the first call: the whole prompt). */
  newTokens: number;
  outputTokens: number;
  gapAfterS?: number;
}

interface TaskSpec {
  arrivalS: number;
  tenant?: string;
  /** Tokens of a prefix shared by every task with the same `shared` id (a system prompt). */
  shared?: { id: number; tokens: number };
  calls: CallSpec[];
}

/** A workload whose next prompt is always the previous prompt + its output + new tokens. */
function makeWorkload(specs: TaskSpec[], blockSize = 16): Workload {
  const tasks: Task[] = specs.map((spec, t) => {
    // Token "content" ids: shared prefix tokens are (shared id, i); the task's own are (task, i).
    const content: bigint[] = [];
    if (spec.shared) for (let i = 0; i < spec.shared.tokens; i++) content.push(BigInt(1_000_000 * (spec.shared.id + 1) + i));
    const calls: Call[] = [];
    let own = 0;
    spec.calls.forEach((c, j) => {
      for (let i = 0; i < c.newTokens; i++) content.push(BigInt(1e12) + BigInt(t) * 100_000_000n + BigInt(own++));
      const prompt = content.length;
      const hashes = new BigUint64Array(Math.floor(prompt / blockSize));
      let h = 7n;
      for (let b = 0; b < hashes.length; b++) {
        let x = h;
        for (let i = 0; i < blockSize; i++) x = chain(x, content[b * blockSize + i]);
        hashes[b] = x;
        h = x;
      }
      calls.push({ blockHashes: hashes, promptTokens: prompt, outputTokens: c.outputTokens, gapAfterS: j + 1 < spec.calls.length ? (c.gapAfterS ?? 1) : 0 });
      for (let i = 0; i < c.outputTokens; i++) content.push(BigInt(2e12) + BigInt(t) * 100_000_000n + BigInt(own++));
    });
    return { id: `task${t}`, tenant: spec.tenant ?? 'a', kind: 'test', arrivalS: spec.arrivalS, calls };
  });
  tasks.sort((a, b) => a.arrivalS - b.arrivalS);
  return { name: 'test', blockSize, tasks };
}

function smallSpec(extra: ClusterSpecInput = {}) {
  return resolveClusterSpec({ model: 'llama-3.1-8b', gpu: 'h100', gpus: 1, ...extra });
}

function hitRate(result: ReturnType<typeof simulate>): number {
  let hit = 0;
  let prompt = 0;
  for (const t of result.tasks) {
    hit += t.cachedTokens;
    prompt += t.promptTokens;
  }
  return hit / prompt;
}

describe('determinism', () => {
  it('the same seed gives identical results, run after run', () => {
    const spec = resolveClusterSpec({ gpus: 2, capacityBlocks: 12000 });
    const a = simulate(resolveWorkload('mixed', { tasks: 12, ratePerS: 0.5, seed: 7 }), spec, 'vllm');
    const b = simulate(resolveWorkload('mixed', { tasks: 12, ratePerS: 0.5, seed: 7 }), spec, 'vllm');
    expect(b.tasks).toEqual(a.tasks);
    expect(b.engines).toEqual(a.engines);
    expect(b.makespanS).toBe(a.makespanS);
    const c = simulate(resolveWorkload('mixed', { tasks: 12, ratePerS: 0.5, seed: 7 }), spec, 'belady');
    const d = simulate(resolveWorkload('mixed', { tasks: 12, ratePerS: 0.5, seed: 7 }), spec, 'belady');
    expect(d.tasks).toEqual(c.tasks);
  });
});

describe('isolation', () => {
  it('a single task alone has slowdown 1', () => {
    const w = makeWorkload([{ arrivalS: 3, calls: [{ newTokens: 900, outputTokens: 50, gapAfterS: 2 }, { newTokens: 300, outputTokens: 80, gapAfterS: 5 }, { newTokens: 40, outputTokens: 200 }] }]);
    const spec = resolveClusterSpec({ gpus: 4 });
    const result = simulate(w, spec, 'vllm');
    const isolated = isolatedTaskTimes(w, spec);
    const m = computeMetrics(result, result, isolated, undefined);
    expect(m.slo.slowdown).toBeGreaterThan(0.999);
    expect(m.slo.slowdown).toBeLessThan(1.001);
    // Its later calls found their own context cached.
    expect(result.tasks[0].cachedTokens).toBeGreaterThanOrEqual(Math.floor((900 + 50) / 16) * 16 + Math.floor((1290 + 80 - 15) / 16) * 16 - 32);
  });

  it('isolated time = prefill + decode of each call + gaps, from the cost model', () => {
    const w = makeWorkload([{ arrivalS: 0, calls: [{ newTokens: 2000, outputTokens: 100 }] }]);
    const spec = smallSpec();
    const cm = new CostModel(MODELS['llama-3.1-8b'], GPUS.h100, 1);
    const expected = cm.prefillS(2000, 0, spec.maxNumBatchedTokens) + cm.decodeAloneS(2000, 100);
    expect(isolatedTaskTimes(w, spec)[0]).toBeCloseTo(expected, 9);
  });
});

describe('vLLM LRU', () => {
  it('releases a finished request tail first with key = release time: older releases, deeper blocks leave first', () => {
    const w = makeWorkload([
      { arrivalS: 0, calls: [{ newTokens: 64, outputTokens: 1 }] },
      { arrivalS: 5, calls: [{ newTokens: 80, outputTokens: 1 }] },
    ]);
    const spec = smallSpec({ capacityBlocks: 64 });
    const cluster = new Cluster(w, { engines: 1, engine: { capacityBlocks: 64, blockSize: 16, maxNumSeqs: 8, maxNumBatchedTokens: 8192 }, cost: new CostModel(spec.model, spec.gpu, 1) }, createPolicy('vllm', { workload: w }));
    cluster.run();
    const kv = cluster.engines[0].kv;
    const out = new Int32Array(64);
    const n = kv.victims(Tier.Device, out);
    const state = kv.snapshot();
    const order = Array.from(out.subarray(0, n), (id) => [state.session[id], state.position[id], state.key[id]]);
    // Task 0 (64 prompt tokens: blocks 0..3, the last recomputed holds the first output token) then task 1.
    expect(order.map(([s]) => s)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 1]);
    expect(order.filter(([s]) => s === 0).map(([, p]) => p)).toEqual([3, 2, 1, 0]);
    expect(order.filter(([s]) => s === 1).map(([, p]) => p)).toEqual([4, 3, 2, 1, 0]);
    const keys0 = new Set(order.filter(([s]) => s === 0).map(([, , k]) => k));
    expect(keys0.size).toBe(1);
    expect([...keys0][0]).toBeLessThan(order[n - 1][2]);
  });
});

describe('preemption', () => {
  it('under memory pressure the newest running request is preempted, recomputed, and still finishes', () => {
    // Four calls of 4 prompt blocks that grow to 17 blocks each, on 40 blocks.
    const w = makeWorkload(Array.from({ length: 4 }, (_, t) => ({ arrivalS: t * 0.001, calls: [{ newTokens: 64, outputTokens: 200 }] })));
    const spec = smallSpec({ capacityBlocks: 40 });
    const result = simulate(w, spec, 'vllm', { recordCalls: true });
    const preemptions = result.engines.reduce((n, e) => n + e.preemptions, 0);
    expect(preemptions).toBeGreaterThan(0);
    expect(result.callsFinished).toBe(4);
    expect(result.engines[0].outputTokens).toBe(800);
    // FCFS: the first request is never the one preempted, and finishes first.
    const calls = result.calls ?? [];
    const byTask = [...calls].sort((a, b) => a.taskIndex - b.taskIndex);
    expect(byTask[0].preemptions).toBe(0);
    expect(byTask[0].finishS).toBe(Math.min(...calls.map((c) => c.finishS)));
  });

  it('growth-aware admission (a queue that expects outputs) admits only what can grow: no preemption', () => {
    const w = makeWorkload(Array.from({ length: 4 }, (_, t) => ({ arrivalS: t * 0.001, calls: [{ newTokens: 64, outputTokens: 200 }] })));
    const spec = smallSpec({ capacityBlocks: 40 });
    const expecting = new (class extends FcfsQueue {
      expectedOutputTokens(): number {
        return 200;
      }
    })();
    const bundle = { ...createPolicy('vllm', { workload: w }), queue: expecting };
    const result = simulate(w, spec, bundle, { recordCalls: true });
    expect(result.engines.reduce((n, e) => n + e.preemptions, 0)).toBe(0);
    expect(result.callsFinished).toBe(4);
    // 17 blocks a call on 40: two run at once, the other two wait for them (admitted later, not preempted).
    const admitted = (result.calls ?? []).map((c) => c.admittedS).sort((a, b) => a - b);
    expect(admitted[1]).toBeLessThan(0.01);
    expect(admitted[2]).toBeGreaterThan(admitted[1]);
    // An engine with nothing running still admits a call larger than its reserve allows (never stalls).
    const big = makeWorkload([{ arrivalS: 0, calls: [{ newTokens: 64, outputTokens: 500 }] }]);
    expect(simulate(big, smallSpec({ capacityBlocks: 40 }), { ...createPolicy('vllm', { workload: big }), queue: expecting }).callsFinished).toBe(1);
  });
});

describe('conservation', () => {
  const taskArb = fc.record({
    arrivalS: fc.double({ min: 0, max: 20, noNaN: true }),
    shared: fc.option(fc.record({ id: fc.integer({ min: 0, max: 1 }), tokens: fc.integer({ min: 16, max: 200 }) }), { nil: undefined }),
    calls: fc.array(
      fc.record({ newTokens: fc.integer({ min: 1, max: 400 }), outputTokens: fc.integer({ min: 1, max: 120 }), gapAfterS: fc.double({ min: 0, max: 5, noNaN: true }) }),
      { minLength: 1, maxLength: 4 },
    ),
  });

  it('every call completes exactly once, in order, on any workload and memory pressure', () => {
    fc.assert(
      fc.property(fc.array(taskArb, { minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 1, max: 3 }), (specs, p, gpus) => {
        const w = makeWorkload(specs as TaskSpec[]);
        let longest = 1;
        for (const t of w.tasks) for (const c of t.calls) longest = Math.max(longest, Math.ceil((c.promptTokens + c.outputTokens) / 16));
        const spec = resolveClusterSpec({ gpus, capacityBlocks: longest + 8, maxNumSeqs: 4, maxNumBatchedTokens: 256 });
        const result = simulate(w, spec, p === 0 ? 'vllm' : 'belady', { recordCalls: true });
        const calls = result.calls ?? [];
        const total = w.tasks.reduce((n, t) => n + t.calls.length, 0);
        expect(result.callsFinished).toBe(total);
        const seen = new Set(calls.map((c) => `${c.taskIndex}:${c.callIndex}`));
        expect(seen.size).toBe(total);
        for (const c of calls) {
          expect(c.finishS).toBeGreaterThan(c.arrivalS);
          expect(c.firstTokenS).toBeLessThanOrEqual(c.finishS);
          expect(c.cachedTokens).toBeLessThan(c.promptTokens);
        }
        result.tasks.forEach((t, i) => {
          const mine = calls.filter((c) => c.taskIndex === i).sort((a, b) => a.callIndex - b.callIndex);
          for (let j = 1; j < mine.length; j++) {
            expect(mine[j].arrivalS).toBeCloseTo(mine[j - 1].finishS + w.tasks[i].calls[j - 1].gapAfterS, 9);
          }
          expect(t.endS).toBe(mine[mine.length - 1].finishS);
        });
        // Output tokens are produced once each, preemptions or not.
        const output = w.tasks.reduce((n, t) => n + t.calls.reduce((m, c) => m + c.outputTokens, 0), 0);
        expect(result.engines.reduce((n, e) => n + e.outputTokens, 0)).toBe(output);
      }),
      { numRuns: 60 },
    );
  });

  it('bulk decode gives the same run as one iteration per step', () => {
    fc.assert(
      fc.property(fc.array(taskArb, { minLength: 1, maxLength: 5 }), (specs) => {
        const w = makeWorkload(specs as TaskSpec[]);
        let longest = 1;
        for (const t of w.tasks) for (const c of t.calls) longest = Math.max(longest, Math.ceil((c.promptTokens + c.outputTokens) / 16));
        const base = { gpus: 2, capacityBlocks: 2 * longest + 4, maxNumSeqs: 3, maxNumBatchedTokens: 512 };
        const bulk = simulate(w, resolveClusterSpec({ ...base, bulkDecode: true }), 'vllm', { recordCalls: true });
        const step = simulate(w, resolveClusterSpec({ ...base, bulkDecode: false }), 'vllm', { recordCalls: true });
        expect(bulk.engines.reduce((n, e) => n + e.iterations, 0)).toBe(step.engines.reduce((n, e) => n + e.iterations, 0));
        expect(bulk.engines.reduce((n, e) => n + e.steps, 0)).toBeLessThanOrEqual(step.engines.reduce((n, e) => n + e.steps, 0));
        bulk.tasks.forEach((t, i) => {
          expect(t.endS).toBeCloseTo(step.tasks[i].endS, 6);
          expect(t.cachedTokens).toBe(step.tasks[i].cachedTokens);
          expect(t.preemptions).toBe(step.tasks[i].preemptions);
        });
      }),
      { numRuns: 40 },
    );
  });
});

describe('the belady bound', () => {
  it('hits at least as often as vLLM LRU on a memory-bound handmade workload', () => {
    // Eight sessions of ~90-block contexts on 400 blocks: some return after 1 s, some after 40 s.
    const specs: TaskSpec[] = Array.from({ length: 8 }, (_, t) => ({
      arrivalS: t * 0.5,
      shared: { id: 0, tokens: 320 },
      calls: Array.from({ length: 5 }, () => ({ newTokens: 260, outputTokens: 40, gapAfterS: t % 2 === 0 ? 1 : 40 })),
    }));
    const w = makeWorkload(specs);
    const spec = smallSpec({ capacityBlocks: 400 });
    const lru = simulate(w, spec, 'vllm');
    const oracle = simulate(w, spec, 'belady');
    expect(hitRate(oracle)).toBeGreaterThan(hitRate(lru));
    const m = computeMetrics(lru, lru, isolatedTaskTimes(w, spec), oracle);
    expect(m.cache.missRatioVsBelady).toBeGreaterThan(1);
  });

  it('hits at least as often as vLLM LRU on a memory-bound generated mixed workload', () => {
    const w = resolveWorkload('mixed', { tasks: 40, ratePerS: 0.2, seed: 3 });
    const spec = resolveClusterSpec({ gpus: 2 }); // 2 x H100, Llama-3.1-8B: 25,481 blocks each
    const lru = simulate(w, spec, 'vllm');
    const oracle = simulate(w, spec, 'belady');
    const occupancy = lru.engines.reduce((n, e) => n + e.occupiedBlockS, 0) / (2 * spec.capacityBlocks * lru.makespanS);
    expect(occupancy).toBeGreaterThan(0.8); // memory-bound
    expect(hitRate(oracle)).toBeGreaterThanOrEqual(hitRate(lru));
    expect(oracle.policy.label).toBe('belady (bound)');
  });
});

describe('saga simulate', () => {
  it('prints the same numbers for the same seed, as JSON of the documented shape', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'saga-sim-'));
    const log = console.log;
    console.log = () => undefined;
    try {
      const args = ['simulate', '--tasks', '4', '--gpus', '2', '--rate', '1', '--seed', '5'];
      expect(await main([...args, '--json', path.join(dir, 'a.json')])).toBe(0);
      expect(await main([...args, '--json', path.join(dir, 'b.json')])).toBe(0);
    } finally {
      console.log = log;
    }
    const a = fs.readFileSync(path.join(dir, 'a.json'), 'utf8');
    expect(fs.readFileSync(path.join(dir, 'b.json'), 'utf8')).toBe(a);
    const report = JSON.parse(a);
    expect(report.results.map((r: { policy: string }) => r.policy)).toEqual(['vllm', 'saga', 'belady (bound)']);
    expect(report.results[0].speedupVsBaseline).toBe(1);
    expect(report.config.gpus).toBe(2);
  });

  it('bad input is one SagaError with a stable code', async () => {
    await expect(main(['simulate', '--gpus', '0'])).rejects.toMatchObject({ code: 'ERR_SAGA_BAD_ARGUMENT' });
    await expect(main(['simulate', '--policies', 'nope'])).rejects.toMatchObject({ code: 'ERR_SAGA_UNKNOWN_POLICY' });
    await expect(main(['simulate', '--model', 'gpt-9'])).rejects.toMatchObject({ code: 'ERR_SAGA_BAD_ARGUMENT' });
    await expect(main(['simulate', '--workload', '/no/such/trace'])).rejects.toMatchObject({ code: 'ERR_SAGA_TRACE_NOT_FOUND' });
  });
});
