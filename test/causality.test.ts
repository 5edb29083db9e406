/**
 * Causality of every online policy (issue 4, item 6): perturb everything a workload reveals after time t
 * and assert that every decision the policy made before t is unchanged. Decisions: routing choices and
 * steals, queue priorities, tie-breaks and preemption victims, and every eviction key, in the order made.
 *
 * What "revealed after t" means, from a first run: a call's prompt and output arrive with it (perturbed
 * for calls arriving after t); its output length is known when it ends (lengthened for calls ending
 * after t, so they still end after t); the gap after a call is known when the next call arrives
 * (lengthened where that arrival is after t); tasks arriving after t are new prompts entirely. A policy
 * that reads any of these early (an output length at admission, a next call's hashes, a gap) decides
 * differently before t in the second run, and the test fails.
 */
import { describe, expect, it, vi } from 'vitest';
import { FairSharePlacement } from '../lib/policy/fair_share_placement';
import { createPolicy, isOraclePolicy, policyNames } from '../lib/policy/index';
import { evictionPolicyNames, isOracleEviction } from '../lib/policy/index';
import type { CallInfo, EngineView, EvictionPolicy, PolicyBundle, PolicyEvent, ReleaseInfo, RunningInfo } from '../lib/policy/types';
import { ReplayStream, createReplayPolicy, replayPolicy } from '../lib/replay';
import { resolveClusterSpec, simulate, type ClusterSpec } from '../lib/sim/simulate';
import { generateWorkload } from '../lib/workloads/generators';
import type { Workload } from '../lib/workloads/types';

interface Decision {
  t: number;
  what: string;
}

/** Wraps a bundle so every decision is logged with its time. */
function recording(bundle: PolicyBundle, log: Decision[]): PolicyBundle {
  const { routing, queue, eviction } = bundle;
  const id = (c: CallInfo) => `${c.taskIndex}.${c.callIndex}`;
  return {
    ...bundle,
    routing: {
      name: routing.name,
      route: (call: CallInfo, engines: readonly EngineView[], nowS: number) => {
        const e = routing.route(call, engines, nowS);
        log.push({ t: nowS, what: `route ${id(call)} -> ${e}` });
        return e;
      },
      ...(routing.steal === undefined
        ? {}
        : {
            steal: (thief: EngineView, engines: readonly EngineView[], nowS: number) => {
              const s = routing.steal?.(thief, engines, nowS);
              if (s !== undefined) log.push({ t: nowS, what: `steal ${id(s.call)} ${s.from} -> ${thief.id}` });
              return s;
            },
          }),
    },
    queue: {
      ...queue,
      name: queue.name,
      ...(queue.dynamic === undefined ? {} : { dynamic: queue.dynamic }),
      priority: (call: CallInfo, nowS: number) => {
        const p = queue.priority(call, nowS);
        log.push({ t: nowS, what: `priority ${id(call)} ${p}` });
        return p;
      },
      ...(queue.tieBreak === undefined
        ? {}
        : {
            tieBreak: (call: CallInfo, nowS: number) => {
              const k = queue.tieBreak?.(call, nowS) ?? 0;
              log.push({ t: nowS, what: `tie ${id(call)} ${k}` });
              return k;
            },
          }),
      preemptionVictim: (running: readonly RunningInfo[], nowS: number) => {
        const v = queue.preemptionVictim(running, nowS);
        log.push({ t: nowS, what: `preempt ${id(running[v].call)}` });
        return v;
      },
    },
    eviction: recordingEviction(eviction, log),
    ...(bundle.observe === undefined ? {} : { observe: (event: PolicyEvent) => bundle.observe?.(event) }),
  };
}

function recordingEviction(eviction: EvictionPolicy, log: Decision[]): EvictionPolicy {
  return {
    name: eviction.name,
    ...(eviction.oracle === undefined ? {} : { oracle: eviction.oracle }),
    releaseKeys: (info: ReleaseInfo, out: Float64Array) => {
      eviction.releaseKeys(info, out);
      log.push({ t: info.nowS, what: `keys ${info.call.taskIndex}.${info.call.callIndex} ${info.reason} ${Array.from(out.subarray(0, info.count)).join(',')}` });
    },
    ...(eviction.attach === undefined ? {} : { attach: (e, cache) => eviction.attach?.(e, cache) }),
    ...(eviction.observe === undefined ? {} : { observe: (event: PolicyEvent) => eviction.observe?.(event) }),
  };
}

const MASK = (1n << 64n) - 1n;
const fresh = (h: bigint, salt: bigint) => ((h ^ (salt * 0x9e3779b97f4a7c15n)) & MASK) | 1n;

/** The workload with everything revealed after `t` changed, given when calls arrived and ended in a run. */
function perturbAfter(w: Workload, t: number, arrivals: Map<string, number>, ends: Map<string, number>): Workload {
  return {
    ...w,
    tasks: w.tasks.map((task, ti) => ({
      ...task,
      calls: task.calls.map((call, ci) => {
        const arrived = arrivals.get(`${ti}.${ci}`) ?? Infinity;
        const ended = ends.get(`${ti}.${ci}`) ?? Infinity;
        const nextArrives = arrivals.get(`${ti}.${ci + 1}`) ?? Infinity;
        const c = { ...call };
        if (arrived > t) {
          // A different prompt: same length class, fresh hashes past the first block (a shared system
          // prompt may stay: it was revealed by earlier tasks).
          c.blockHashes = call.blockHashes.map((h, i) => (i === 0 ? h : fresh(h, BigInt(ti * 1000 + ci + 7))));
          c.promptTokens = call.promptTokens + 3;
        }
        if (ended > t) c.outputTokens = call.outputTokens * 2 + 5;
        if (nextArrives > t) c.gapAfterS = call.gapAfterS * 1.5 + 2;
        if (ended > t && c.stop !== undefined) c.stop = c.stop === 'tool_use' ? 'end_turn' : 'tool_use';
        return c;
      }),
    })),
  };
}

function before(log: Decision[], t: number): string[] {
  return log.filter((d) => d.t < t).map((d) => `${d.t.toFixed(9)} ${d.what}`);
}

const workload = generateWorkload('mixed', { tasks: 24, ratePerS: 0.5, seed: 11 });
// Two small engines: KV runs short, so eviction, preemption and stealing all happen before t.
const spec = resolveClusterSpec({ gpus: 2, capacityBlocks: 12000, maxNumSeqs: 16 });

/** Runs `name` on `w`, then on `w` perturbed after the median arrival t; asserts the decisions before t are the same. Returns t. */
function checkCausal(name: string, w: Workload, clusterSpec: ClusterSpec): number {
  const log: Decision[] = [];
  const arrivals = new Map<string, number>();
  const ends = new Map<string, number>();
  const base = createPolicy(name, { workload: w });
  const observed: PolicyBundle = {
    ...recording(base, log),
    observe: (event: PolicyEvent) => {
      const key = `${event.call.taskIndex}.${event.call.callIndex}`;
      if (event.type === 'call-arrive') arrivals.set(key, event.nowS);
      if (event.type === 'call-finish') ends.set(key, event.nowS);
      base.observe?.(event);
    },
  };
  simulate(w, clusterSpec, observed);
  const times = [...arrivals.values()].sort((a, b) => a - b);
  const t = (times[Math.floor(times.length / 2)] + times[Math.floor(times.length / 2) + 1]) / 2;
  const perturbed = perturbAfter(w, t, arrivals, ends);
  const log2: Decision[] = [];
  simulate(perturbed, clusterSpec, recording(createPolicy(name, { workload: perturbed }), log2));
  const a = before(log, t);
  expect(a.length).toBeGreaterThan(50);
  expect(before(log2, t)).toEqual(a);
  // The perturbation is real: the runs differ after t.
  expect(log2.map((d) => d.what)).not.toEqual(log.map((d) => d.what));
  return t;
}

/** A light tenant beside one opening sessions ten times as fast, on four small engines: saga's placement forms. */
const floodWorkload = generateWorkload('mixed', {
  tasks: 60,
  ratePerS: 1,
  seed: 3,
  tenants: [
    { name: 'light', kind: 'swebench', share: 1 },
    { name: 'flood', kind: 'swebench', share: 10 },
  ],
});
const floodSpec = resolveClusterSpec({ gpus: 4, capacityBlocks: 12000, maxNumSeqs: 16 });

describe('online policies are causal (decisions before t do not change when the future does)', () => {
  const online = policyNames().filter((name) => !isOraclePolicy(name));
  it('covers every online bundle', () => {
    expect(online).toEqual(expect.arrayContaining(['vllm', 'saga', 'saga-eviction', 'saga-routing', 'afs', 'autellix', 'continuum', 'kvflow']));
  });

  for (const name of online) it(`saga simulate: ${name}`, () => checkCausal(name, workload, spec), 60_000);

  it('saga simulate: saga while a tenant floods (fair-share placement formed before t)', () => {
    const formedAt: number[] = [];
    const update = FairSharePlacement.prototype.update;
    const spy = vi.spyOn(FairSharePlacement.prototype, 'update').mockImplementation(function (this: FairSharePlacement, engines, nowS) {
      update.call(this, engines, nowS);
      if (this.current() !== undefined) formedAt.push(nowS);
    });
    try {
      const t = checkCausal('saga', floodWorkload, floodSpec);
      expect(formedAt.filter((s) => s < t).length).toBeGreaterThan(0);
    } finally {
      spy.mockRestore();
    }
  }, 120_000);

  const replayOnline = evictionPolicyNames().filter((name) => !isOracleEviction(name));
  for (const name of replayOnline) {
    it(`saga replay: ${name}`, () => {
      const w = generateWorkload('mixed', { tasks: 30, ratePerS: 0.5, seed: 5, blockSize: 64 });
      const stream = new ReplayStream(w);
      const arrivals = new Map<string, number>();
      for (let i = 0; i < stream.requests; i++) arrivals.set(`${stream.taskOf[i]}.${stream.callOf[i]}`, stream.timeS[i]);
      const times = [...stream.timeS].sort((x, y) => x - y);
      const t = (times[times.length >> 1] + times[(times.length >> 1) + 1]) / 2;
      const run = (wl: Workload) => {
        const log: Decision[] = [];
        const s = new ReplayStream(wl);
        replayPolicy(s, recordingEviction(createReplayPolicy(name, s), log), Math.max(1, Math.round(s.uniqueBlocks * 0.05)));
        return log;
      };
      const log = run(w);
      // In a replay a call "ends" when it is served: its arrival.
      const log2 = run(perturbAfter(w, t, arrivals, arrivals));
      expect(before(log, t).length).toBeGreaterThan(20);
      expect(before(log2, t)).toEqual(before(log, t));
    }, 60_000);
  }
});
