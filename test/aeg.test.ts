/**
 * The Agent Execution Graph (lib/graph) and the saga eviction built on it: what is learned from events,
 * the cold-start prior and its replacement by evidence, backoff, conditional remaining gaps, shared
 * prefixes, and the keys saga gives (dead blocks below live ones, sooner returns above later ones,
 * overdue sessions re-keyed).
 */
import { describe, expect, it } from 'vitest';
import { AEG } from '../lib/constants';
import { AgentExecutionGraph, GapDistribution, callIndexBucket, commonPrefixBlocks } from '../lib/graph';
import { KvCache, Tier } from '../lib/kv/kv_cache';
import { SagaEviction } from '../lib/policy/saga_eviction';
import type { CallInfo, ReleaseInfo } from '../lib/policy/types';

function call(session: number, callIndex: number, hashes: number[], kind = 'agent', tenant = 't'): CallInfo {
  return {
    taskIndex: session,
    callIndex,
    session,
    tenant,
    kind,
    arrivalS: 0,
    promptTokens: hashes.length * 16,
    outputTokens: 10,
    blockHashes: BigUint64Array.from(hashes.map(BigInt)),
  };
}

/** Sessions that each make `calls` calls ending in tool_use with `gap` seconds between, then end. */
function teach(graph: { observe: AgentExecutionGraph['observe'] }, sessions: number, calls: number, gapS: number, stop = 'tool_use', start = 0): number {
  let t = start;
  for (let s = 0; s < sessions; s++) {
    const session = 1000 + s + start;
    for (let c = 0; c < calls; c++) {
      const hashes = Array.from({ length: 4 + c }, (_, i) => session * 100 + i + 1);
      const info = call(session, c, hashes);
      graph.observe({ type: 'call-arrive', call: info, nowS: t });
      t += 1;
      graph.observe({ type: 'call-finish', call: info, nowS: t, lastCall: c === calls - 1, stop: c === calls - 1 ? 'end_turn' : stop });
      t += gapS;
    }
  }
  return t;
}

describe('the Agent Execution Graph', () => {
  it('predicts from the prior before any evidence', () => {
    const g = new AgentExecutionGraph();
    const p = g.predict(g.stepOf(call(1, 0, [1, 2]), 'tool_use', undefined));
    expect(p.nextCallProbability).toBe(AEG.priorNextCallProbability);
    expect(p.remainingGapS).toBe(AEG.priorGapS);
    expect(p.reuseRatio).toBe(AEG.priorReuseRatio);
  });

  it('replaces the prior with evidence: gaps, next-call probability, program ends', () => {
    const g = new AgentExecutionGraph();
    teach(g, 20, 5, 30);
    const tool = g.predict(g.stepOf(call(1, 2, [1]), 'tool_use', undefined));
    expect(tool.remainingGapS).toBeGreaterThan(29 * (1 - AEG.sketchRelativeAccuracy));
    expect(tool.remainingGapS).toBeLessThan(31 * (1 + AEG.sketchRelativeAccuracy));
    expect(tool.nextCallProbability).toBeGreaterThan(0.95);
    expect(tool.reuseRatio).toBe(1);
    const end = g.predict(g.stepOf(call(1, 4, [1]), 'end_turn', undefined));
    expect(end.nextCallProbability).toBeLessThan(0.1);
  });

  it('backs off to coarser states: a new tenant starts from what its kind taught', () => {
    const g = new AgentExecutionGraph();
    teach(g, 20, 5, 30);
    const other = g.predict(g.stepOf(call(1, 2, [1], 'agent', 'new-tenant'), 'tool_use', undefined));
    expect(other.remainingGapS).toBeGreaterThan(25);
  });

  it('a session away longer than its predicted gap becomes less likely to return, and later', () => {
    const g = new AgentExecutionGraph();
    const gaps = new GapDistribution();
    for (let i = 1; i <= 100; i++) gaps.add(i);
    expect(gaps.remainingMedian(0)).toBeCloseTo(50, -1);
    expect(gaps.remainingMedian(80)).toBeLessThan(20);
    expect(gaps.remainingMedian(200)).toBeUndefined();
    expect(gaps.cdf(50)).toBeGreaterThan(0.4);
    expect(gaps.cdf(50)).toBeLessThan(0.6);
    teach(g, 20, 5, 30);
    const info = call(7, 0, [1, 2, 3]);
    g.observe({ type: 'call-arrive', call: info, nowS: 10_000 });
    g.observe({ type: 'call-finish', call: info, nowS: 10_001, lastCall: false, stop: 'tool_use' });
    const fresh = g.predictSession(7, 10_001);
    const late = g.predictSession(7, 10_001 + 31);
    expect(fresh?.nextCallProbability).toBeGreaterThan(late?.nextCallProbability ?? 1);
    expect(g.predictSession(7, 10_001 + 1e6)?.nextCallProbability).toBe(0);
  });

  it("counts a gap from the call's end where the driver knows it later than the event (a replay's endS)", () => {
    // A replay serves each call at its start: the finish event comes at the start, with the end 20 s later.
    const g = new AgentExecutionGraph();
    let t = 0;
    for (let s = 0; s < 20; s++) {
      for (let c = 0; c < 5; c++) {
        const info = call(200 + s, c, [s * 10 + c + 1]);
        g.observe({ type: 'call-arrive', call: info, nowS: t });
        g.observe({ type: 'call-admit', call: info, nowS: t });
        g.observe({ type: 'call-finish', call: info, nowS: t, endS: t + 20, lastCall: c === 4, stop: c === 4 ? 'end_turn' : 'tool_use' });
        t += 20 + 10; // 20 s of call, 10 s of tool
      }
    }
    const step = g.stepOf(call(1, 2, [1]), 'tool_use', undefined);
    // The nodes learned the tool's 10 s, not the 30 s between the events.
    const atEnd = g.predict(step, 0);
    expect(atEnd.remainingGapS).toBeGreaterThan(10 * (1 - AEG.sketchRelativeAccuracy));
    expect(atEnd.remainingGapS).toBeLessThan(10 * (1 + AEG.sketchRelativeAccuracy));
    // At the call's start, 20 s before its end: the rest of the call, then the tool.
    expect(g.predict(step, -20).remainingGapS).toBeCloseTo((atEnd.remainingGapS as number) + 20, 9);
    const info = call(7, 1, [1, 2]);
    g.observe({ type: 'call-arrive', call: info, nowS: 5000 });
    g.observe({ type: 'call-finish', call: info, nowS: 5000, endS: 5020, lastCall: false, stop: 'tool_use' });
    expect(g.predictSession(7, 5000)?.remainingGapS).toBeCloseTo((atEnd.remainingGapS as number) + 20, 9);
    // Service counts to the end too (AFS's remaining work): 20 s a call, then ~3.9 more calls of 10 + 20 s
    // (counted from the event, service would be 0 and the work ~39 s).
    expect(g.remainingWorkS(call(1, 0, [1]))).toBeGreaterThan(20 + 3.5 * 30);
    // An end before the event (or NaN) is not a later end: the event's time stands.
    const other = call(8, 1, [3]);
    g.observe({ type: 'call-arrive', call: other, nowS: 6000 });
    g.observe({ type: 'call-finish', call: other, nowS: 6000, endS: Number.NaN, lastCall: false, stop: 'tool_use' });
    expect(g.predictSession(8, 6000)?.remainingGapS).toBeCloseTo(atEnd.remainingGapS as number, 9);
    const early = call(9, 1, [4]);
    g.observe({ type: 'call-arrive', call: early, nowS: 7000 });
    g.observe({ type: 'call-finish', call: early, nowS: 7000, endS: 6990, lastCall: false, stop: 'tool_use' });
    expect(g.predictSession(9, 7000)?.remainingGapS).toBeCloseTo(atEnd.remainingGapS as number, 9);
  });

  it("judges a session's pace by a running geometric mean of its gaps, not its last gap alone", () => {
    const g = new AgentExecutionGraph();
    /** A session whose calls come `gaps` seconds after the previous one's end; returns its next call. */
    const session = (id: number, gaps: number[]): CallInfo => {
      let t = id * 10_000;
      for (let c = 0; c <= gaps.length; c++) {
        const info = call(id, c, [id * 100 + c + 1]);
        g.observe({ type: 'call-arrive', call: info, nowS: t });
        g.observe({ type: 'call-finish', call: info, nowS: t, lastCall: false, stop: 'tool_use' });
        t += gaps[c] ?? 0;
      }
      return call(id, gaps.length + 1, [1]);
    };
    const finestOf = (c: CallInfo) => g.stepOf(c, 'tool_use', undefined).nodes[0];
    const slowThenFast = session(1, [100, 1]); // pace sqrt(101 x 2) - 1 = 13.2 s
    const fast = session(2, [1, 1]); // 1 s
    const steady = session(3, [12, 12]); // 12 s
    expect(finestOf(slowThenFast)).not.toBe(finestOf(fast)); // the same last gap, another pace
    expect(finestOf(slowThenFast)).toBe(finestOf(steady)); // the same order of magnitude (8-15 s)
  });

  it('learns reuse depth from how much of the previous prompt the next call reads', () => {
    const g = new AgentExecutionGraph();
    let t = 0;
    for (let s = 0; s < 20; s++) {
      // Browser-like: every next call keeps the first 2 of 8 blocks and replaces the rest.
      for (let c = 0; c < 3; c++) {
        const hashes = [1, 2, ...Array.from({ length: 6 }, (_, i) => s * 1000 + c * 10 + i + 3)];
        const info = call(s, c, hashes);
        g.observe({ type: 'call-arrive', call: info, nowS: t++ });
        g.observe({ type: 'call-finish', call: info, nowS: t++, lastCall: c === 2, stop: 'tool_use' });
      }
    }
    const p = g.predict(g.stepOf(call(99, 1, [1]), 'tool_use', undefined));
    expect(p.reuseRatio).toBeCloseTo(2 / 8, 5);
    // Shared prefix of first prompts across sessions: the two leading blocks.
    expect(g.sharedPrefixBlocks('t', 'agent')).toBe(2);
  });

  it('predicts a program\'s remaining work from call service times, gaps and the chance it ends', () => {
    const g = new AgentExecutionGraph();
    expect(g.remainingWorkS(call(1, 0, [1]))).toBeUndefined(); // nothing finished yet
    let t = 0;
    for (let s = 0; s < 20; s++) {
      for (let c = 0; c < 5; c++) {
        const info = { ...call(100 + s, c, [s * 10 + c + 1]), outputTokens: 50 };
        g.observe({ type: 'call-arrive', call: info, nowS: t });
        g.observe({ type: 'call-admit', call: info, nowS: t });
        t += 2; // 2 s of service
        g.observe({ type: 'call-finish', call: info, nowS: t, lastCall: c === 4, stop: c === 4 ? 'end_turn' : 'tool_use' });
        t += 30;
      }
    }
    // One program in five ends after a call (20 of 100, with the prior's weight): ~4 more calls of 30 + 2 s.
    const left = g.remainingWorkS(call(1, 0, [1])) as number;
    expect(left).toBeGreaterThan(2 + 3.5 * 32);
    expect(left).toBeLessThan(2 + 4.5 * 32 * (1 + AEG.sketchRelativeAccuracy));
    expect(g.expectedOutputTokens(call(1, 0, [1]))).toBe(50);
  });

  it('buckets call indices and measures common prefixes', () => {
    expect([0, 1, 2, 3, 4, 7, 8, 100].map(callIndexBucket)).toEqual([0, 1, 2, 2, 3, 3, 4, 5]);
    expect(commonPrefixBlocks(BigUint64Array.from([1n, 2n, 3n]), BigUint64Array.from([1n, 2n, 4n]))).toBe(2);
  });
});

function release(c: CallInfo, nowS: number, stop: string, ids: Int32Array): ReleaseInfo {
  const n = ids.length;
  const positions = Int32Array.from({ length: n }, (_, i) => n - 1 - i);
  return {
    call: c,
    engineId: 0,
    nowS,
    sequence: 0,
    reason: 'finish',
    stop,
    count: n,
    positions,
    ids,
    committed: () => true,
    blockHash: (p: number) => c.blockHashes[p],
  };
}

describe('saga eviction', () => {
  it('keys a soon-returning session above a late one, and an ended program below both', () => {
    const policy = new SagaEviction();
    const t = teach(policy, 20, 6, 30);
    const out = new Float64Array(4);
    const soon = release(call(1, 3, [11, 12, 13, 14]), t, 'tool_use', Int32Array.from([3, 2, 1, 0]));
    policy.releaseKeys(soon, out);
    const soonKey = out[0];
    const ended = release(call(2, 5, [21, 22, 23, 24]), t, 'end_turn', Int32Array.from([7, 6, 5, 4]));
    policy.releaseKeys(ended, out);
    const endedKey = out[0];
    expect(endedKey).toBeLessThan(soonKey);
    expect(soonKey).toBeLessThan(-t); // -(now + a gap): a use predicted in the future
    expect(soonKey).toBeGreaterThan(-(t + 60));
    // A session paused 100 s later returns ~100 s later: it goes first (Bélády's order, not LRU's).
    policy.releaseKeys(release(call(3, 3, [31, 32, 33, 34]), t + 100, 'tool_use', Int32Array.from([11, 10, 9, 8])), out);
    expect(out[0]).toBeLessThan(soonKey);
    expect(out[0]).toBeGreaterThan(endedKey);
  });

  it("keys from the call's end: a release at a replay call's start with its end 50 s away is kept for 50 s more", () => {
    const policy = new SagaEviction();
    const t = teach(policy, 20, 6, 30);
    const out = new Float64Array(4);
    policy.releaseKeys(release(call(1, 3, [11, 12, 13, 14]), t, 'tool_use', Int32Array.from([3, 2, 1, 0])), out);
    const atEnd = out[0];
    policy.releaseKeys({ ...release(call(2, 3, [21, 22, 23, 24]), t, 'tool_use', Int32Array.from([7, 6, 5, 4])), endS: t + 50 }, out);
    // Its predicted use is 50 s later, divided like the rest by P(next call) (> 0.9 here).
    expect(atEnd - out[0]).toBeGreaterThanOrEqual(50);
    expect(atEnd - out[0]).toBeLessThan(50 / 0.9);
  });

  it('re-keys a program at once when it ends, and an overdue session as it ages (batched setSessionKeys)', () => {
    const policy = new SagaEviction();
    const t0 = teach(policy, 20, 6, 30);
    const cache = new KvCache({ deviceCapacity: 64, backend: 'cpu' });
    policy.attach(0, cache);
    const sessions = [1, 2];
    const ids = new Int32Array(8);
    cache.allocate(BigUint64Array.from([11n, 12n, 13n, 14n, 21n, 22n, 23n, 24n]), Int32Array.from([1, 1, 1, 1, 2, 2, 2, 2]), Int32Array.from([0, 1, 2, 3, 0, 1, 2, 3]), ids);
    const out = new Float64Array(4);
    for (const s of sessions) {
      const c = call(s, 3, [s * 10 + 1, s * 10 + 2, s * 10 + 3, s * 10 + 4]);
      const own = Int32Array.from(ids.subarray((s - 1) * 4, s * 4)).reverse();
      policy.releaseKeys(release(c, t0, 'tool_use', own), out);
      cache.release(own, out);
      policy.observe({ type: 'call-finish', call: c, engineId: 0, nowS: t0, lastCall: false, stop: 'tool_use' });
    }
    // Session 2's program ends (its session closes): all its blocks go to the front of the eviction order.
    // Its last call re-reads its blocks and ends in a tool call (a truncated program): keys are live at
    // release, and the session's close re-keys them dead.
    const c2 = call(2, 4, [21, 22, 23, 24]);
    const own2 = Int32Array.from(ids.subarray(4, 8)).reverse();
    policy.observe({ type: 'call-arrive', call: c2, engineId: 0, nowS: t0 + 5 });
    cache.acquire(own2);
    policy.releaseKeys(release(c2, t0 + 6, 'tool_use', own2), out);
    cache.release(own2, out);
    expect(out[0]).toBeGreaterThan(-1e9);
    policy.observe({ type: 'call-finish', call: c2, engineId: 0, nowS: t0 + 6, lastCall: true, stop: 'tool_use' });
    const victims = new Int32Array(8);
    expect(cache.victims(Tier.Device, victims)).toBe(8);
    const keyOf = (id: number) => cache.snapshot().key[id];
    expect(keyOf(ids[4])).toBeLessThan(keyOf(ids[0]));
    // Session 1 overdue: after far more than any gap seen, an event re-predicts it dead.
    policy.observe({ type: 'call-arrive', call: call(50, 0, [99]), engineId: 0, nowS: t0 + 1e7 });
    expect(keyOf(ids[0])).toBeLessThan(-1e9);
  });

  it("keys a returning call's blocks 'next use now' at its arrival, above every paused session", () => {
    const policy = new SagaEviction();
    const t0 = teach(policy, 20, 6, 30);
    const cache = new KvCache({ deviceCapacity: 64, backend: 'cpu' });
    policy.attach(0, cache);
    const ids = new Int32Array(8);
    cache.allocate(BigUint64Array.from([11n, 12n, 13n, 14n, 21n, 22n, 23n, 24n]), Int32Array.from([1, 1, 1, 1, 2, 2, 2, 2]), Int32Array.from([0, 1, 2, 3, 0, 1, 2, 3]), ids);
    const out = new Float64Array(4);
    for (const s of [1, 2]) {
      const c = call(s, 3, [s * 10 + 1, s * 10 + 2, s * 10 + 3, s * 10 + 4]);
      const own = Int32Array.from(ids.subarray((s - 1) * 4, s * 4)).reverse();
      // Session 1 paused first: under saga's keys it returns sooner, so it starts above session 2.
      policy.releaseKeys(release(c, t0 + (s - 1) * 10, 'tool_use', own), out);
      cache.release(own, out);
      policy.observe({ type: 'call-finish', call: c, engineId: 0, nowS: t0 + (s - 1) * 10, lastCall: false, stop: 'tool_use' });
    }
    const keyOf = (id: number) => cache.snapshot().key[id];
    expect(keyOf(ids[4])).toBeLessThan(keyOf(ids[0]));
    // Session 2's next call arrives (it waits for admission): its blocks are wanted now, above session 1's.
    policy.observe({ type: 'call-arrive', call: call(2, 4, [21, 22, 23, 24, 25]), engineId: 0, nowS: t0 + 12 });
    expect(keyOf(ids[4])).toBe(-(t0 + 12));
    expect(keyOf(ids[4])).toBeGreaterThan(keyOf(ids[0]));
  });

  it('holds an idle session on a whole-session engine only when it is expected back within a recompute', () => {
    const policy = new SagaEviction();
    const nowS = 100;
    const query = (nextUseS: number, recomputeS: number) => ({ session: 1, tokens: 1000, key: -nextUseS, nowS, restoreS: 0.01, recomputeS });
    expect(policy.holdUntilS(query(101, 2))).toBe(103); // back in 1 s, recompute 2 s: held until 1 recompute past it
    expect(policy.holdUntilS(query(110, 2))).toBe(0); // back in 10 s: recomputing is cheaper than the wait
    expect(policy.holdUntilS(query(99, 2))).toBe(101); // due (its call has arrived): held a recompute past it
    expect(policy.holdUntilS(query(90, 2))).toBeLessThanOrEqual(nowS); // long overdue: the hold has lapsed
    expect(policy.holdUntilS({ ...query(101, 2), key: nowS - 1e12 })).toBe(0); // dead: never held
  });
});

describe('forgetting a session', () => {
  it('drops its per-session state without recording an end: predictions are unchanged, the session is unknown', () => {
    const g = new AgentExecutionGraph();
    teach(g, 20, 5, 30);
    const step = g.stepOf(call(1, 2, [1]), 'tool_use', undefined);
    const before = g.predict(step);
    const c = call(7, 1, [1, 2, 3]);
    g.observe({ type: 'call-arrive', call: c, nowS: 5000 });
    g.observe({ type: 'call-finish', call: c, nowS: 5001, lastCall: false, stop: 'tool_use' });
    expect(g.predictSession(7, 5002)).toBeDefined();
    g.forgetSession(7);
    expect(g.predictSession(7, 5002)).toBeUndefined();
    expect(g.predict(step)).toEqual(before);
  });
});
