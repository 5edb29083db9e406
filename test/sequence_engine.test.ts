/**
 * The simulated saga engine (lib/sim/sequence_engine.ts): sequences that each hold one session. Checked
 * on hand-sized workloads where the right answer is plain, and on a generated one for determinism and
 * for the holds (saga keeps sessions the graph expects back soon; vllm holds nothing).
 */
import { describe, expect, it } from 'vitest';
import { GPUS, MODELS } from '../lib/constants';
import { createPolicy } from '../lib/policy/index';
import { CostModel } from '../lib/sim/cost_model';
import { simulateSequenceEngine } from '../lib/sim/sequence_engine';
import { generateWorkload } from '../lib/workloads/generators/index';
import { scaleWorkload } from '../lib/workloads/scale';
import type { Task, Workload } from '../lib/workloads/types';

const cost = new CostModel(MODELS['llama-3.1-8b'], GPUS.h100, 1);
const config = { sequences: 1, contextTokens: 4096, batchTokens: 512, cost };

/** A task whose every call extends the previous prompt by `grow` blocks (one token per block). */
function growingTask(id: string, arrivalS: number, calls: number, gapS: number, salt: bigint): Task {
  const list = [];
  for (let c = 0; c < calls; c++) {
    const blocks = 100 + c * 20;
    list.push({ blockHashes: BigUint64Array.from({ length: blocks }, (_, i) => salt * 100000n + BigInt(i) + 1n), promptTokens: blocks, outputTokens: 8, gapAfterS: c + 1 < calls ? gapS : 0 });
  }
  return { id, tenant: 't', kind: 'k', arrivalS, calls: list };
}

function workloadOf(tasks: Task[]): Workload {
  return { name: 'hand', blockSize: 1, tasks };
}

describe('simulateSequenceEngine', () => {
  it('a lone session reuses its previous prompt on every call but the first, and ends each task', () => {
    const w = workloadOf([growingTask('a', 0, 4, 0.5, 1n)]);
    const r = simulateSequenceEngine(w, createPolicy('vllm', { workload: w }), config);
    const t = r.tasks[0];
    expect(t.promptTokens).toBe(100 + 120 + 140 + 160);
    expect(t.cachedTokens).toBe(100 + 120 + 140); // each call finds its predecessor's prompt
    expect(t.outputTokens).toBe(32);
    expect(t.endS).toBeGreaterThan(1.5); // three gaps of 0.5 s
    expect(r.drops).toBe(0);
  });

  it('two sessions on one sequence: vllm gives the idle one up at once, and it recomputes', () => {
    const w = workloadOf([growingTask('a', 0, 3, 1, 1n), growingTask('b', 0.2, 3, 1, 2n)]);
    const r = simulateSequenceEngine(w, createPolicy('vllm', { workload: w }), config);
    expect(r.drops).toBeGreaterThan(0);
    expect(r.tasks[0].cachedTokens + r.tasks[1].cachedTokens).toBeLessThan(2 * (100 + 120));
    expect(r.tasks.every((t) => Number.isFinite(t.endS))).toBe(true);
  });

  it('is deterministic, and saga holds sessions it expects back soon: fewer drops, more cached', () => {
    const generated = generateWorkload('mixed', { tasks: 12, ratePerS: 0.5, seed: 4 });
    // Tool gaps x0.02: tens of milliseconds, the order of recomputing a session on an H100, where holding
    // pays (at x0.2 they are ten times that, and saga rightly holds almost nothing).
    const w = scaleWorkload(generated, { tokenScale: 1 / 16, timeScale: 0.02, maxContextTokens: 2000 });
    const run = (policy: string) => simulateSequenceEngine(w, createPolicy(policy, { workload: w }), { ...config, sequences: 2, contextTokens: 2048 });
    const vllm = run('vllm');
    expect(run('vllm')).toEqual(vllm);
    const saga = run('saga');
    const share = (r: typeof vllm) => r.tasks.reduce((n, t) => n + t.cachedTokens, 0) / r.tasks.reduce((n, t) => n + t.promptTokens, 0);
    expect(vllm.drops).toBeGreaterThan(0);
    expect(saga.drops).toBeLessThan(vllm.drops);
    expect(share(saga)).toBeGreaterThan(share(vllm));
    expect(saga.tasks.every((t) => Number.isFinite(t.endS))).toBe(true);
  });

  it('refuses a sequence count that is not a positive integer', () => {
    const w = workloadOf([growingTask('a', 0, 1, 0, 1n)]);
    expect(() => simulateSequenceEngine(w, createPolicy('vllm', { workload: w }), { ...config, sequences: 0 })).toThrow(expect.objectContaining({ code: 'ERR_SAGA_BAD_ARGUMENT' }));
  });
});
