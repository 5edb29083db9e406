/**
 * saga routing: affinity, the move-home test at arrival, work stealing by delay saved minus recompute
 * cost, and the load bound on new sessions. Engines are small fakes: the policy sees only EngineView.
 */
import { describe, expect, it } from 'vitest';
import { ROUTING } from '../lib/constants';
import { AffinityStealingRouting } from '../lib/policy/saga_routing';
import type { CallInfo, EngineView, WaitingInfo } from '../lib/policy/types';

interface FakeEngine extends EngineView {
  waiting: WaitingInfo[];
  cached: Set<bigint>;
  free: number;
  outstanding: number;
}

/** An engine that prefills at 10k tokens/s (uncached tokens only). */
function engine(id: number, free = 10_000): FakeEngine {
  const e: FakeEngine = {
    id,
    blockSize: 16,
    waiting: [],
    cached: new Set(),
    free,
    outstanding: 0,
    outstandingCalls: () => e.outstanding + e.waiting.length,
    queuedTokens: () => e.waiting.reduce((n, w) => n + w.call.promptTokens, 0),
    cachedPrefixBlocks: (hashes) => {
      let i = 0;
      while (i < hashes.length && e.cached.has(hashes[i])) i++;
      return i;
    },
    waitingCalls: () => e.waiting,
    freeBlocks: () => e.free,
    prefillEstimateS: (prompt, cached) => (prompt - cached) / 10_000,
  };
  return e;
}

function call(session: number, callIndex: number, blocks: number, arrivalS = 0): CallInfo {
  return {
    taskIndex: session,
    callIndex,
    session,
    tenant: 't',
    kind: 'k',
    arrivalS,
    promptTokens: blocks * 16,
    outputTokens: 10,
    blockHashes: BigUint64Array.from({ length: blocks }, (_, i) => BigInt(session * 10_000 + i + 1)),
  };
}

describe('saga routing', () => {
  it('sends a returning call home while its home has no queue', () => {
    const engines = [engine(0), engine(1)];
    const r = new AffinityStealingRouting();
    const home = r.route(call(1, 0, 100), engines, 0);
    expect(r.route(call(1, 1, 120), engines, 5)).toBe(home);
  });

  it('moves a returning call when the wait at home exceeds the recompute elsewhere, and not otherwise', () => {
    const engines = [engine(0), engine(1)];
    const r = new AffinityStealingRouting();
    expect(r.route(call(1, 0, 1000), engines, 0)).toBe(0);
    const home = engines[0];
    for (const b of call(1, 0, 1000).blockHashes) home.cached.add(b);
    // 16k tokens to recompute elsewhere: 1.6 s. A queue that has waited 1 s at home: stay.
    home.waiting = [{ call: call(9, 0, 10, 0), enqueuedS: 9 }];
    expect(r.route(call(1, 1, 1000, 10), engines, 10)).toBe(0);
    // Waited 5 s: move, and the session's home moves with it.
    home.waiting = [{ call: call(9, 0, 10, 0), enqueuedS: 5 }];
    expect(r.route(call(1, 2, 1000, 10), engines, 10)).toBe(1);
    home.waiting = [];
    expect(r.route(call(1, 3, 1000, 20), engines, 20)).toBe(1);
  });

  it('steals the waiting call that gains most, only when the delay saved exceeds the recompute cost', () => {
    const engines = [engine(0), engine(1), engine(2)];
    const r = new AffinityStealingRouting();
    const a = call(1, 0, 1000); // 1.6 s to recompute
    const b = call(2, 0, 100); // 0.16 s
    r.route(a, engines, 0);
    r.route(b, engines, 0);
    for (const h of a.blockHashes) engines[0].cached.add(h);
    for (const h of b.blockHashes) engines[1].cached.add(h);
    engines[0].waiting = [{ call: a, enqueuedS: 9 }];
    engines[1].waiting = [{ call: b, enqueuedS: 9.5 }];
    // A thief with 5 calls running: the recompute delays them too (0.16 s x 6 > 0.5 s waited): nothing.
    engines[2].outstanding = 5;
    expect(r.steal(engines[2], engines, 10)).toBeUndefined();
    engines[2].outstanding = 0;
    // At 10 s: a has waited 1 s (gain 1 - 1.6 < 0), b 0.5 s (gain 0.5 - 0.16 > 0): b.
    expect(r.steal(engines[2], engines, 10)).toEqual({ from: 1, call: b });
    engines[1].waiting = [];
    expect(r.steal(engines[2], engines, 10)).toBeUndefined();
    // Later a has waited long enough.
    expect(r.steal(engines[2], engines, 12)).toEqual({ from: 0, call: a });
    // No room on the thief: nothing.
    engines[2].free = 10;
    expect(r.steal(engines[2], engines, 20)).toBeUndefined();
  });

  it('never homes a new session on an engine more than the slack above the least loaded', () => {
    const engines = [engine(0), engine(1), engine(2)];
    // Engine 0 caches every session's prefix, so prefix affinity alone would pile sessions there.
    const shared = call(0, 0, 8);
    for (const h of shared.blockHashes) engines[0].cached.add(h);
    const r = new AffinityStealingRouting();
    const homes = [0, 0, 0];
    for (let s = 1; s <= 30; s++) {
      const c = { ...call(s, 0, 8), blockHashes: shared.blockHashes };
      const e = r.route(c, engines, s);
      homes[e]++;
      expect(Math.max(...homes) - Math.min(...homes)).toBeLessThanOrEqual(ROUTING.newSessionSlack + 1);
    }
  });
});
