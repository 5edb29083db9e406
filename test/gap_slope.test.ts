/**
 * The gap-per-output-token fit (lib/graph/gap_slope.ts) and what the Agent Execution Graph does with it:
 * a gap that grows with the call's output is predicted from the output, and a session is not counted
 * overdue while the output's part of its gap has not yet passed.
 */
import { describe, expect, it } from 'vitest';
import { AEG } from '../lib/constants';
import { AgentExecutionGraph, GapDistribution } from '../lib/graph';
import { GapSlope } from '../lib/graph/gap_slope';
import { SagaEviction } from '../lib/policy/saga_eviction';
import type { CallInfo, ReleaseInfo } from '../lib/policy/types';
import { Random } from '../lib/util/random';

describe('GapSlope', () => {
  it('is zero until it has evidence, then finds the slope through heavy-tailed noise', () => {
    const fit = new GapSlope();
    const random = new Random(7);
    for (let i = 0; i < AEG.minEvidence - 1; i++) fit.add(100 * (i + 1), 10 + 0.05 * 100 * (i + 1));
    expect(fit.secondsPerToken).toBe(0);
    for (let i = 0; i < 4 * AEG.slopeWindow; i++) {
      const out = random.uniform(50, 2000);
      // One gap in five is a long user pause: least squares would follow them, the median of slopes does not.
      const tail = random.uniform(0, 1) < 0.2 ? random.uniform(100, 600) : random.uniform(0, 4);
      fit.add(out, 8 + 0.02 * out + tail);
    }
    expect(fit.secondsPerToken).toBeGreaterThan(0.016);
    expect(fit.secondsPerToken).toBeLessThan(0.024);
  });

  it('follows a change within its window, and is never negative', () => {
    const fit = new GapSlope();
    for (let i = 0; i < 2 * AEG.slopeWindow; i++) fit.add(10 * (i % 50), 5 + 0.01 * 10 * (i % 50));
    expect(fit.secondsPerToken).toBeCloseTo(0.01, 6);
    for (let i = 0; i < 2 * AEG.slopeWindow; i++) fit.add(10 * (i % 50), 5 + 0.04 * 10 * (i % 50));
    expect(fit.secondsPerToken).toBeCloseTo(0.04, 6);
    for (let i = 0; i < 2 * AEG.slopeWindow; i++) fit.add(10 * (i % 50), 100 - 0.1 * (i % 50));
    expect(fit.secondsPerToken).toBe(0);
  });

  it('ignores pairs it cannot use: non-finite or negative outputs and gaps', () => {
    const fit = new GapSlope();
    for (let i = 0; i < AEG.slopeWindow; i++) fit.add(10 * (i + 1), 2 + 0.03 * 10 * (i + 1));
    const before = fit.secondsPerToken;
    expect(before).toBeCloseTo(0.03, 6);
    for (const [out, gap] of [[NaN, 5], [Infinity, 5], [-3, 5], [100, NaN], [100, -1], [100, Infinity]]) fit.add(out, gap);
    expect(fit.observations).toBe(AEG.slopeWindow);
    for (let i = 0; i < 2 * AEG.slopeRefitEvery; i++) fit.add(10 * (i + 1), 2 + 0.03 * 10 * (i + 1));
    expect(fit.secondsPerToken).toBeCloseTo(0.03, 6);
  });

  it('leaves a gap sketch unharmed by an unknown (NaN) gap', () => {
    const gaps = new GapDistribution();
    for (let i = 1; i <= 20; i++) gaps.add(i);
    gaps.add(NaN);
    expect(gaps.count).toBe(20);
    expect(gaps.quantile(1)).toBeCloseTo(20, -1);
  });

  it('ignores pairs of equal outputs (no slope between them)', () => {
    const fit = new GapSlope();
    for (let i = 0; i < AEG.slopeWindow; i++) fit.add(300, i);
    expect(fit.secondsPerToken).toBe(0);
    expect(fit.observations).toBe(AEG.slopeWindow);
  });
});

function call(session: number, callIndex: number, outputTokens: number): CallInfo {
  const hashes = Array.from({ length: 4 + callIndex }, (_, i) => session * 100 + i + 1);
  return {
    taskIndex: session,
    callIndex,
    session,
    tenant: 't',
    kind: 'agent',
    arrivalS: 0,
    promptTokens: hashes.length * 16,
    outputTokens,
    blockHashes: BigUint64Array.from(hashes.map(BigInt)),
  };
}

/** Sessions whose gap after each tool call is 10 s plus 0.05 s per output token (outputs of 100-1,000). */
function teach(graph: { observe: AgentExecutionGraph['observe'] }, sessions: number, calls: number): number {
  let t = 0;
  for (let s = 0; s < sessions; s++) {
    for (let c = 0; c < calls; c++) {
      const info = call(1000 + s, c, 100 * (1 + ((s + 3 * c) % 10)));
      graph.observe({ type: 'call-arrive', call: info, nowS: t });
      t += 1;
      const last = c === calls - 1;
      graph.observe({ type: 'call-finish', call: info, nowS: t, lastCall: last, stop: last ? 'end_turn' : 'tool_use' });
      t += 10 + 0.05 * info.outputTokens;
    }
  }
  return t;
}

describe('the Agent Execution Graph with outputs that lengthen gaps', () => {
  it('predicts a longer gap after a longer output', () => {
    const g = new AgentExecutionGraph();
    teach(g, 20, 6);
    const short = g.predict(g.stepOf(call(1, 2, 100), 'tool_use', undefined), 0, 100).remainingGapS ?? NaN;
    const long = g.predict(g.stepOf(call(1, 2, 1000), 'tool_use', undefined), 0, 1000).remainingGapS ?? NaN;
    expect(short).toBeGreaterThan(15 * (1 - AEG.sketchRelativeAccuracy) - 0.5);
    expect(short).toBeLessThan(15 * (1 + AEG.sketchRelativeAccuracy) + 0.5);
    expect(long).toBeGreaterThan(60 * (1 - AEG.sketchRelativeAccuracy) - 0.5);
    expect(long).toBeLessThan(60 * (1 + AEG.sketchRelativeAccuracy) + 0.5);
  });

  it('does not count a session overdue, or less likely back, while its output part of the gap runs', () => {
    const g = new AgentExecutionGraph();
    const t = teach(g, 20, 6) + 100;
    const info = call(7, 1, 1000);
    g.observe({ type: 'call-arrive', call: info, nowS: t });
    g.observe({ type: 'call-finish', call: info, nowS: t + 1, lastCall: false, stop: 'tool_use' });
    const atEnd = g.predictSession(7, t + 1);
    // 30 s away: past every residual gap seen (10 s), but not past 10 + 0.05 x 1,000 = 60 s.
    const away = g.predictSession(7, t + 31);
    expect(away?.nextCallProbability).toBe(atEnd?.nextCallProbability);
    expect(away?.remainingGapS).toBeGreaterThan(25);
    expect(away?.remainingGapS).toBeLessThan(35);
    expect(g.predictSession(7, t + 1 + 600)?.nextCallProbability).toBe(0);
  });

  it('treats an unknown output (NaN) as none: predictions stay finite and the sketches unharmed', () => {
    const g = new AgentExecutionGraph();
    const t = teach(g, 20, 6) + 100;
    const info = { ...call(8, 1, 0), outputTokens: NaN };
    g.observe({ type: 'call-arrive', call: info, nowS: t });
    g.observe({ type: 'call-finish', call: info, nowS: t + 1, lastCall: false, stop: 'tool_use' });
    const away = g.predictSession(8, t + 6);
    expect(Number.isFinite(away?.remainingGapS)).toBe(true);
    expect(Number.isFinite(g.predict(g.stepOf(info, 'tool_use', undefined), 0, NaN).remainingGapS)).toBe(true);
    // Its next call teaches a gap of 10 s to the nodes it left (those of a session's first gap, as session
    // 9's next step is): the prediction there for an output of 100 is still 10 + 0.05 x 100.
    g.observe({ type: 'call-arrive', call: call(8, 2, 100), nowS: t + 11 });
    const after = g.predict(g.stepOf(call(9, 1, 100), 'tool_use', undefined), 0, 100).remainingGapS ?? NaN;
    expect(after).toBeGreaterThan(15 * (1 - AEG.sketchRelativeAccuracy) - 0.5);
    expect(after).toBeLessThan(15 * (1 + AEG.sketchRelativeAccuracy) + 0.5);
  });

  it('adds the output part to a program\'s remaining work', () => {
    const g = new AgentExecutionGraph();
    let t = 0;
    for (let s = 0; s < 20; s++) {
      for (let c = 0; c < 5; c++) {
        const info = call(100 + s, c, 100 * (1 + ((s + c) % 10)));
        g.observe({ type: 'call-arrive', call: info, nowS: t });
        g.observe({ type: 'call-admit', call: info, nowS: t });
        t += 2;
        g.observe({ type: 'call-finish', call: info, nowS: t, lastCall: c === 4, stop: c === 4 ? 'end_turn' : 'tool_use' });
        t += 10 + 0.05 * info.outputTokens;
      }
    }
    // Four further calls a program; each a 2 s call and a gap of 10 s + 0.05 s x the mean output (550).
    const work = g.remainingWorkS(call(1, 0, 550)) ?? NaN;
    const expected = 2 + ((1 - 0.2) / 0.2) * (10 + 0.05 * 550 + 2);
    expect(work).toBeGreaterThan(0.9 * expected);
    expect(work).toBeLessThan(1.1 * expected);
  });
});

describe('saga eviction with outputs that lengthen gaps', () => {
  it('keys the blocks of a session that wrote a long output below those of one that wrote a short one', () => {
    const policy = new SagaEviction();
    const t = teach(policy, 20, 6);
    const out = new Float64Array(4);
    const releaseOf = (c: CallInfo, ids: number[]): ReleaseInfo => ({
      call: c,
      engineId: 0,
      nowS: t,
      sequence: 0,
      reason: 'finish',
      stop: 'tool_use',
      count: 4,
      positions: Int32Array.from([3, 2, 1, 0]),
      ids: Int32Array.from(ids),
      committed: () => true,
      blockHash: (p: number) => c.blockHashes[p],
    });
    policy.releaseKeys(releaseOf(call(1, 2, 100), [3, 2, 1, 0]), out);
    const shortKey = out[0];
    policy.releaseKeys(releaseOf(call(2, 2, 1000), [7, 6, 5, 4]), out);
    const longKey = out[0];
    expect(longKey).toBeLessThan(shortKey);
    expect(-shortKey - t).toBeLessThan(20); // ~15 s: 10 + 0.05 x 100, over a next-call probability near 1
    expect(-longKey - t).toBeGreaterThan(50); // ~60 s
  });
});
