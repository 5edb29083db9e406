/**
 * The AFS bound (docs/fairness.md): on every engine, for backlogged tenants i and j,
 * v_i - v_j <= L_i + B (L_i: tenant i's largest charge / weight; B: the urgency boost when a predictor is
 * plugged in; under decodeCharge 'finish', plus i's most decode in flight / weight).
 *
 * 1. Random event sequences: arrivals on random engines, admissions exactly as the engine makes them
 *    (the waiting call of least (priority, tieBreak, arrival order), recomputed first), preemptions (back
 *    to waiting, no event, no charge on re-admission), finishes; random weights, cache hits, urgency.
 *    The bound is checked after every event from the test's own bookkeeping.
 * 2. Random simulated workloads (the real engine and cluster): the gap the policy saw stays within the
 *    largest call's tokens over the weights.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AfsQueue, createAfsBundle } from '../lib/policy/afs';
import type { CallInfo } from '../lib/policy/types';
import { resolveClusterSpec, simulate } from '../lib/sim/simulate';
import { generateWorkload } from '../lib/workloads/generators/index';

const TENANTS = ['t0', 't1', 't2', 't3'];
const EPS = 1e-6;

type Op =
  | { kind: 'arrive'; engine: number; task: number; prompt: number; output: number; cachedShare: number }
  | { kind: 'admit'; engine: number }
  | { kind: 'preempt'; engine: number; pick: number }
  | { kind: 'finish'; engine: number; pick: number; last: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('arrive' as const),
    engine: fc.nat(1),
    task: fc.nat(11),
    prompt: fc.integer({ min: 1, max: 60_000 }),
    output: fc.integer({ min: 1, max: 4_000 }),
    cachedShare: fc.double({ min: 0, max: 1, noNaN: true }),
  }),
  fc.record({ kind: fc.constant('admit' as const), engine: fc.nat(1) }),
  fc.record({ kind: fc.constant('admit' as const), engine: fc.nat(1) }),
  fc.record({ kind: fc.constant('preempt' as const), engine: fc.nat(1), pick: fc.nat() }),
  fc.record({ kind: fc.constant('finish' as const), engine: fc.nat(1), pick: fc.nat(), last: fc.boolean() }),
);

interface Waiting {
  call: CallInfo;
  cached: number;
  order: number;
  fresh: boolean;
}

interface Running {
  call: CallInfo;
  admittedS: number;
}

describe('AFS fairness bound', () => {
  it('holds after every event on random event sequences', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(1, 2, 3, 0.5), { minLength: TENANTS.length, maxLength: TENANTS.length }),
        fc.constantFrom<'admit' | 'finish'>('admit', 'finish'),
        fc.boolean(),
        fc.array(opArb, { minLength: 1, maxLength: 300 }),
        (weightList, decodeCharge, withPredictor, ops) => {
          const weights: Record<string, number> = {};
          TENANTS.forEach((t, i) => (weights[t] = weightList[i]));
          // A predictor that calls some programs urgent (remaining work large against elapsed time).
          const predictor = (call: CallInfo): number | undefined => (call.taskIndex % 3 === 0 ? 1e6 : call.taskIndex % 3 === 1 ? 0 : undefined);
          const q = new AfsQueue({ weights, decodeCharge, ...(withPredictor ? { remainingWorkS: predictor } : {}) });
          const boost = withPredictor ? q.urgencyBoostTokens : 0;
          const waiting: Waiting[][] = [[], []];
          const running: Running[][] = [[], []];
          const busyTask = new Set<number>(); // tasks with a call outstanding
          const nextCall = new Map<number, number>();
          // The test's own bookkeeping: largest charge / weight and most decode in flight / weight, per engine and tenant.
          const maxCharge = [new Map<string, number>(), new Map<string, number>()];
          const inflight = [new Map<string, number>(), new Map<string, number>()];
          const maxInflight = [new Map<string, number>(), new Map<string, number>()];
          const bump = (m: Map<string, number>, k: string, v: number): void => {
            if (v > (m.get(k) ?? 0)) m.set(k, v);
          };
          let now = 0;
          let order = 0;
          const check = (): void => {
            for (let e = 0; e < 2; e++) {
              const backlogged = new Set(waiting[e].filter((w) => w.fresh).map((w) => w.call.tenant));
              const counters = q.backloggedCounters(e);
              expect(new Set(counters.map((c) => c.tenant))).toEqual(backlogged);
              if (counters.length < 2) continue;
              const min = Math.min(...counters.map((c) => c.v));
              for (const c of counters) {
                const allowed = boost + (maxCharge[e].get(c.tenant) ?? 0) + (decodeCharge === 'finish' ? (maxInflight[e].get(c.tenant) ?? 0) : 0);
                expect(c.v - min).toBeLessThanOrEqual(allowed + EPS);
              }
            }
          };
          for (const op of ops) {
            now += 0.5;
            const e = op.engine;
            if (op.kind === 'arrive') {
              if (busyTask.has(op.task)) continue;
              const callIndex = nextCall.get(op.task) ?? 0;
              const call: CallInfo = {
                taskIndex: op.task,
                callIndex,
                session: op.task,
                tenant: TENANTS[op.task % TENANTS.length], // a program keeps its tenant
                kind: 'test',
                arrivalS: now,
                promptTokens: op.prompt,
                outputTokens: op.output,
                blockHashes: new BigUint64Array(0),
              };
              busyTask.add(op.task);
              waiting[e].push({ call, cached: Math.floor(op.prompt * op.cachedShare), order: order++, fresh: true });
              q.observe({ type: 'call-arrive', call, engineId: e, nowS: now });
            } else if (op.kind === 'admit') {
              if (waiting[e].length === 0) continue;
              // The engine: recompute every key, take the least (priority, tieBreak, order).
              let best = 0;
              let bestKey = [Infinity, Infinity, Infinity];
              waiting[e].forEach((w, i) => {
                const key = [q.priority(w.call, now), q.tieBreak(w.call, now), w.order];
                if (key[0] < bestKey[0] || (key[0] === bestKey[0] && (key[1] < bestKey[1] || (key[1] === bestKey[1] && key[2] < bestKey[2])))) {
                  best = i;
                  bestKey = key;
                }
              });
              const [w] = waiting[e].splice(best, 1);
              running[e].push({ call: w.call, admittedS: now });
              if (w.fresh) {
                const tenant = w.call.tenant;
                const weight = weights[tenant];
                const prefill = w.call.promptTokens - w.cached;
                const charge = decodeCharge === 'admit' ? prefill + w.call.outputTokens : prefill;
                bump(maxCharge[e], tenant, charge / weight);
                if (decodeCharge === 'finish') {
                  const d = (inflight[e].get(tenant) ?? 0) + w.call.outputTokens;
                  inflight[e].set(tenant, d);
                  bump(maxInflight[e], tenant, d / weight);
                  bump(maxCharge[e], tenant, w.call.outputTokens / weight);
                }
                q.observe({ type: 'call-admit', call: w.call, engineId: e, cachedTokens: w.cached, nowS: now });
              }
            } else if (op.kind === 'preempt') {
              if (running[e].length === 0) continue;
              const vi = q.preemptionVictim(running[e], now);
              expect(vi).toBeGreaterThanOrEqual(0);
              expect(vi).toBeLessThan(running[e].length);
              const [r] = running[e].splice(vi, 1);
              waiting[e].push({ call: r.call, cached: 0, order: order++, fresh: false });
            } else {
              if (running[e].length === 0) continue;
              const [r] = running[e].splice(op.pick % running[e].length, 1);
              if (decodeCharge === 'finish') inflight[e].set(r.call.tenant, (inflight[e].get(r.call.tenant) ?? 0) - r.call.outputTokens);
              q.observe({ type: 'call-finish', call: r.call, engineId: e, nowS: now, lastCall: op.last });
              busyTask.delete(r.call.taskIndex);
              if (op.last) nextCall.delete(r.call.taskIndex);
              else nextCall.set(r.call.taskIndex, r.call.callIndex + 1);
            }
            check();
          }
          expect(q.worstBoundRatio).toBeLessThanOrEqual(1 + EPS);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('holds on random simulated workloads', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.array(fc.constantFrom(1, 2, 4), { minLength: 3, maxLength: 3 }), (seed, weightList) => {
        const workload = generateWorkload('mixed', { tasks: 24, ratePerS: 1, seed });
        const tenants = [...new Set(workload.tasks.map((t) => t.tenant))];
        const weights: Record<string, number> = {};
        tenants.forEach((t, i) => (weights[t] = weightList[i % weightList.length]));
        const bundle = createAfsBundle({ weights });
        const q = bundle.queue as AfsQueue;
        let largest = 0;
        for (const task of workload.tasks) for (const call of task.calls) largest = Math.max(largest, (call.promptTokens + call.outputTokens) / weights[task.tenant]);
        const result = simulate(workload, resolveClusterSpec({ gpus: 2, capacityBlocks: 12000, maxNumSeqs: 8 }), bundle);
        expect(result.callsFinished).toBe(workload.tasks.reduce((n, t) => n + t.calls.length, 0));
        expect(q.worstBoundRatio).toBeLessThanOrEqual(1 + EPS);
        expect(q.maxBackloggedGap).toBeLessThanOrEqual(largest + EPS);
      }),
      { numRuns: 6 },
    );
  });
});
