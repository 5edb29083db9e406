/**
 * saga routing: affinity, the move-home test at arrival, work stealing by delay saved minus recompute
 * cost, and the load bound on new sessions. Engines are small fakes: the policy sees only EngineView.
 */
import { describe, expect, it } from 'vitest';
import { ROUTING } from '../lib/constants';
import { AffinityStealingRouting } from '../lib/policy/saga_routing';
import type { CallInfo } from '../lib/policy/types';
import { fakeEngine, type FakeEngine } from './helpers/fake_engine';

/** An engine with `free` KV blocks (test/helpers/fake_engine.ts). */
const engine = (id: number, free = 10_000): FakeEngine => fakeEngine(id, { free });

function call(session: number, callIndex: number, blocks: number, arrivalS = 0, kind = 'k'): CallInfo {
  return {
    taskIndex: session,
    callIndex,
    session,
    tenant: 't',
    kind,
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

describe('saga routing with engines that predict waits (the gateway)', () => {
  /** A fake engine whose predicted wait and displacement cost are set by the test. */
  function predicting(id: number, waitS: (c: CallInfo | undefined) => number, displacementS = 0): FakeEngine {
    const e = engine(id);
    e.admissionWaitS = (c) => waitS(c);
    e.displacementS = () => displacementS;
    return e;
  }

  it("steals by the predicted wait, not the wait so far: a call that waited long behind a call about to end stays", () => {
    const a = call(1, 0, 100); // 0.16 s to recompute on the thief
    let predicted = 0.05;
    const victim = predicting(0, () => predicted);
    const thief = predicting(1, () => 0);
    const engines = [victim, thief];
    const r = new AffinityStealingRouting();
    r.route(a, engines, 0);
    for (const h of a.blockHashes) victim.cached.add(h);
    victim.waiting = [{ call: a, enqueuedS: 0 }];
    // Waited 10 s (the guess without a prediction would steal), but the home frees in 0.05 s: stay.
    expect(r.steal(thief, engines, 10)).toBeUndefined();
    // Just arrived, but predicted to wait 2 s: steal.
    victim.waiting = [{ call: a, enqueuedS: 10 }];
    predicted = 2;
    expect(r.steal(thief, engines, 10)).toEqual({ from: 0, call: a });
  });

  it('picks the waiting call with the largest predicted saving, not the oldest', () => {
    const early = call(1, 0, 100);
    const late = call(2, 0, 100);
    const victim = predicting(0, (c) => (c === late ? 3 : 0.5));
    const thief = predicting(1, () => 0);
    const engines = [victim, thief];
    const r = new AffinityStealingRouting();
    r.route(early, engines, 0);
    r.route(late, engines, 0);
    victim.waiting = [
      { call: early, enqueuedS: 1 },
      { call: late, enqueuedS: 5 },
    ];
    expect(r.steal(thief, engines, 6)).toEqual({ from: 0, call: late });
  });

  it('counts the session a move would push out of the thief', () => {
    const a = call(1, 0, 100); // 0.16 s to recompute
    const victim = predicting(0, () => 1);
    const engines = [victim, predicting(1, () => 0, 0.9)];
    const r = new AffinityStealingRouting();
    r.route(a, engines, 0);
    for (const h of a.blockHashes) victim.cached.add(h);
    victim.waiting = [{ call: a, enqueuedS: 0 }];
    // Saves 1 s, costs 0.16 s of recompute plus 0.9 s of another session's: no.
    expect(r.steal(engines[1], engines, 1)).toBeUndefined();
    // Nobody pushed out: yes.
    engines[1].displacementS = () => 0;
    expect(r.steal(engines[1], engines, 1)).toEqual({ from: 0, call: a });
  });

  it("credits the session staying would push out at home (the call's own session lost its place there)", () => {
    const a = call(1, 0, 100); // 0.16 s to recompute
    const victim = predicting(0, () => 0.3, 0.5);
    const thief = predicting(1, () => 0, 0.5);
    const engines = [victim, thief];
    const r = new AffinityStealingRouting();
    r.route(a, engines, 0);
    for (const h of a.blockHashes) victim.cached.add(h);
    victim.waiting = [{ call: a, enqueuedS: 0 }];
    // Saves 0.3 s; costs 0.16 s of recompute and 0.5 s pushed out on the thief, 0.5 s pushed out at home as well: go.
    expect(r.steal(thief, engines, 1)).toEqual({ from: 0, call: a });
    // Nobody to push out at home: 0.3 - 0.16 - 0.5 < 0, stay.
    victim.displacementS = () => 0;
    expect(r.steal(thief, engines, 1)).toBeUndefined();
  });

  /** Routing whose session `a` is homed on `home`, cached there, and waiting in its queue. */
  function waitingAtHome(a: CallInfo, home: FakeEngine, engines: FakeEngine[]): AffinityStealingRouting {
    const r = new AffinityStealingRouting();
    r.route(a, engines, 0);
    for (const h of a.blockHashes) home.cached.add(h);
    home.waiting = [{ call: a, enqueuedS: 0 }];
    return r;
  }

  it('counts the calls expected to arrive on the thief during the recompute', () => {
    const a = call(1, 0, 1000); // 1.6 s to recompute on the thief
    const victim = predicting(0, () => 2);
    const thief = predicting(1, () => 0);
    const engines = [victim, thief];
    const r = waitingAtHome(a, victim, engines);
    // Saves 2 s; costs 1.6 s plus, at 0.5 arrivals/s, 0.8 calls arriving during it, each delayed 0.8 s: stay.
    thief.arrivalsPerS = () => 0.5;
    expect(r.steal(thief, engines, 1)).toBeUndefined();
    // A thief nobody sends calls to: 2 > 1.6, go.
    thief.arrivalsPerS = () => 0;
    expect(r.steal(thief, engines, 1)).toEqual({ from: 0, call: a });
  });

  it('charges no arrivals for a move that recomputes nothing (the thief caches the prompt too)', () => {
    const a = call(1, 0, 1000);
    const victim = predicting(0, () => 0.5);
    const thief = predicting(1, () => 0);
    thief.arrivalsPerS = () => 100;
    const engines = [victim, thief];
    const r = waitingAtHome(a, victim, engines);
    for (const h of a.blockHashes) thief.cached.add(h);
    expect(r.steal(thief, engines, 1)).toEqual({ from: 0, call: a });
  });

  it('counts what the place the moved call holds on the thief makes its arrivals wait', () => {
    const a = call(1, 0, 100); // 0.16 s to recompute on the thief
    const victim = predicting(0, () => 1);
    const thief = predicting(1, () => 0);
    const engines = [victim, thief];
    const r = waitingAtHome(a, victim, engines);
    // Saves 1 s; costs 0.16 s of recompute and 0.9 s of waits for the place on the thief: stay.
    thief.heldPlaceDelayS = () => 0.9;
    expect(r.steal(thief, engines, 1)).toBeUndefined();
    thief.heldPlaceDelayS = () => 0.5;
    expect(r.steal(thief, engines, 1)).toEqual({ from: 0, call: a });
  });

  it('credits what the calls queued behind the moved call at home gain', () => {
    const a = call(1, 0, 1000); // 1.6 s to recompute on the thief
    const victim = predicting(0, () => 1);
    const thief = predicting(1, () => 0);
    const engines = [victim, thief];
    const r = waitingAtHome(a, victim, engines);
    // Saves 1 s against 1.6 s of recompute: stay, unless the calls behind it at home gain 0.8 s.
    expect(r.steal(thief, engines, 1)).toBeUndefined();
    victim.departureGainS = (c) => (c === a ? 0.8 : 0);
    expect(r.steal(thief, engines, 1)).toEqual({ from: 0, call: a });
  });

  it('moves a session onto an engine with fewer places than its sessions only when that balances them', () => {
    const a = call(1, 0, 100); // 0.16 s to recompute: the move pays, whatever the engines' sessions
    const victim = predicting(0, () => 5);
    const thief = predicting(1, () => 0);
    const engines = [victim, thief];
    const r = waitingAtHome(a, victim, engines);
    /** Homes `n` more live sessions (numbered from 1,000) on engine `id`. */
    let next = 1_000;
    const crowd = (id: number, n: number) => {
      for (let k = 0; k < n; k++, next++) {
        r.route(call(next, 0, 1), engines, 0);
        r.moveHome(next, id);
      }
    };
    crowd(1, 2);
    crowd(0, 2);
    // Thief: 2 sessions, and 2 places. With the moved one it would home 3 > 2 places, and not fewer than the 3 at home: stay.
    thief.places = 2;
    expect(r.steal(thief, engines, 1)).toBeUndefined();
    // A batching engine (no count of places) shares iterations instead: the price decides, go.
    thief.places = undefined;
    expect(r.steal(thief, engines, 1)).toEqual({ from: 0, call: a });
    r.moveHome(1, 0);
    // Places for every session and the newcomer: go.
    thief.places = 3;
    expect(r.steal(thief, engines, 1)).toEqual({ from: 0, call: a });
    r.moveHome(1, 0);
    // Too few places, but the home has 4 sessions to the thief's 3 with it: it balances them, go.
    thief.places = 2;
    crowd(0, 1);
    expect(r.steal(thief, engines, 1)).toEqual({ from: 0, call: a });
    // The same test at arrival: a call of engine 0's session 1,002 stays (the thief would home 4, as many as the home).
    r.moveHome(1, 0);
    crowd(1, 1);
    expect(r.route(call(1_002, 1, 100, 2), engines, 2)).toBe(0);
    thief.places = undefined;
    expect(r.route(call(1_002, 2, 100, 3), engines, 3)).toBe(1);
  });

  it('with a liveness estimate, counts an engine\'s sessions by their chance of being still live', () => {
    const a = call(1, 0, 100);
    let homeWait = 0;
    const victim = predicting(0, () => homeWait);
    const thief = predicting(1, () => 0);
    thief.places = 2;
    const engines = [victim, thief];
    const ended = new Set<number>();
    const r = new AffinityStealingRouting((session) => (ended.has(session) ? 0 : 1));
    r.route(a, engines, 0);
    // Two more sessions on each engine (new sessions alternate: engine 0 has one already).
    for (let s = 1_000; s < 1_004; s++) r.route(call(s, 0, 1), engines, 0);
    for (const h of a.blockHashes) victim.cached.add(h);
    victim.waiting = [{ call: a, enqueuedS: 0 }];
    homeWait = 5;
    // Thief: 2 live sessions in 2 places; with the moved one 3, not fewer than the home's 3: stay.
    expect(r.steal(thief, engines, 1)).toBeUndefined();
    // The thief's two sessions have (most likely) ended: it has places for the moved one, go.
    ended.add(1_000).add(1_002);
    expect(r.steal(thief, engines, 1)).toEqual({ from: 0, call: a });
  });

  it('with a liveness estimate, homes a new session where the fewest sessions are expected live', () => {
    const engines = [engine(0), engine(1)];
    const ended = new Set<number>();
    const r = new AffinityStealingRouting((session) => (ended.has(session) ? 0 : 1));
    for (let s = 1; s <= 3; s++) r.route(call(s, 0, 1), engines, 0); // 1, 3 on engine 0; 2 on engine 1
    const counting = new AffinityStealingRouting();
    for (let s = 1; s <= 3; s++) counting.route(call(s, 0, 1), engines, 0);
    ended.add(1).add(3);
    // Engine 0's sessions have ended; engine 1's is live: 0 against 1.
    expect(r.route(call(5, 0, 1), engines, 2)).toBe(0);
    // Counting every session not known to have ended: 2 against 1.
    expect(counting.route(call(5, 0, 1), engines, 2)).toBe(1);
  });

  it('weighs a session taken as ended (liveness 0) no more until it calls again', () => {
    const engines = [engine(0), engine(1)];
    const p = new Map<number, number>([[1, 1], [2, 1]]);
    const asked: number[] = [];
    const r = new AffinityStealingRouting((session) => {
      asked.push(session);
      return p.get(session) ?? 1;
    });
    r.route(call(1, 0, 1), engines, 0); // engine 0
    r.route(call(2, 0, 1), engines, 0); // engine 1
    p.set(1, 0);
    asked.length = 0;
    // Session 3 weighs 1 (0) and 2 (1): engine 0.
    expect(r.route(call(3, 0, 1), engines, 1)).toBe(0);
    expect(asked).toEqual([1, 2]);
    asked.length = 0;
    // Session 4: engine 0 homes 3 (1), engine 1 homes 2 (1); session 1 is not asked again. A tie: engine 0.
    expect(r.route(call(4, 0, 1), engines, 2)).toBe(0);
    expect(asked.sort()).toEqual([2, 3]);
    // Session 1 calls: it counts on engine 0 again (1 + 3 + 4 against 2), so session 5 goes to engine 1.
    p.set(1, 1);
    expect(r.route(call(1, 1, 1), engines, 3)).toBe(0);
    asked.length = 0;
    expect(r.route(call(5, 0, 1), engines, 3)).toBe(1);
    expect(asked.sort()).toEqual([1, 2, 3, 4]);
  });

  it('counts a session taken as ended whole at its home when it calls again', () => {
    let homeWait = 0;
    const home = predicting(0, () => homeWait);
    const thief = predicting(1, () => 0);
    const engines = [home, thief];
    const ended = new Set<number>();
    const r = new AffinityStealingRouting((session) => (ended.has(session) ? 0 : 1));
    const a = call(1, 0, 100);
    expect(r.route(a, engines, 0)).toBe(0);
    for (const h of a.blockHashes) home.cached.add(h);
    for (const [session, id] of [[1_000, 0], [1_001, 0], [1_002, 1]]) {
      r.route(call(session, 0, 1), engines, 0);
      r.moveHome(session, id);
    }
    // Session 1 was away past every gap seen, and calls now, its home busy for 5 s. The thief has 1 place and
    // 1 live session: the move must balance them, 2 against the home's 3 with session 1 counted: go.
    thief.places = 1;
    ended.add(1);
    homeWait = 5;
    expect(r.route(call(1, 1, 100, 5), engines, 5)).toBe(1);
  });

  it('moves a returning call at arrival when its home is predicted busy for longer than the move costs', () => {
    let homeWait = 0;
    const home = predicting(0, () => homeWait);
    const engines = [home, predicting(1, () => 0)];
    const r = new AffinityStealingRouting();
    expect(r.route(call(1, 0, 100), engines, 0)).toBe(0);
    for (const h of call(1, 0, 100).blockHashes) home.cached.add(h);
    homeWait = 0.1;
    // Home busy 0.1 s, recompute elsewhere 0.16 s: stay, though nothing is queued yet.
    expect(r.route(call(1, 1, 100, 5), engines, 5)).toBe(0);
    homeWait = 1;
    expect(r.route(call(1, 2, 100, 6), engines, 6)).toBe(1);
  });
  describe('keeping workflow kinds apart (separateKinds)', () => {
    const coding = (session: number, callIndex = 0, blocks = 1, arrivalS = 0) => call(session, callIndex, blocks, arrivalS, 'coding');
    const browsing = (session: number, callIndex = 0, blocks = 1, arrivalS = 0) => call(session, callIndex, blocks, arrivalS, 'browsing');

    /** Homes each session on the engine named (routing it new, then moving it). */
    function home(r: AffinityStealingRouting, engines: FakeEngine[], placed: readonly [CallInfo, number][]): void {
      for (const [c, id] of placed) {
        r.route(c, engines, 0);
        r.moveHome(c.session, id);
      }
    }

    it('homes a new session among its own kind where the load bound allows, where plain affinity takes the fewest sessions', () => {
      const engines = [engine(0), engine(1), engine(2)];
      const placed: [CallInfo, number][] = [[coding(1), 0], [coding(2), 0], [browsing(3), 1], [browsing(4), 2]];
      const apart = new AffinityStealingRouting(undefined, { separateKinds: true });
      const plain = new AffinityStealingRouting();
      home(apart, engines, placed);
      home(plain, engines, placed);
      // Engine 0: two coding sessions, within the slack of the others' one each.
      expect(apart.route(coding(5), engines, 1)).toBe(0);
      expect(plain.route(coding(5), engines, 1)).toBe(1);
      // A browsing session: engines 1 and 2 are all browsing; the fewer sessions, then the lower id.
      expect(apart.route(browsing(6), engines, 1)).toBe(1);
    });

    it('still never homes a new session more than the slack above the least loaded', () => {
      const engines = [engine(0), engine(1), engine(2)];
      const r = new AffinityStealingRouting(undefined, { separateKinds: true });
      home(r, engines, [[coding(1), 0], [coding(2), 0], [coding(3), 0], [browsing(4), 1], [browsing(5), 2]]);
      // Engine 0 has 3 sessions, the others 1 (slack 1): the coding session goes among browsing ones.
      expect(r.route(coding(6), engines, 1)).toBe(1);
    });

    it('takes an empty engine over one of its own kind unless the prefix is cached there', () => {
      const engines = [engine(0), engine(1)];
      const r = new AffinityStealingRouting(undefined, { separateKinds: true });
      home(r, engines, [[coding(1), 0]]);
      expect(r.route(coding(2), engines, 1)).toBe(1);
      // Session 3 shares session 1's first block (a system prompt) cached on engine 0.
      const withPrompt = coding(3, 0, 2);
      withPrompt.blockHashes[0] = coding(1).blockHashes[0];
      engines[0].cached.add(withPrompt.blockHashes[0]);
      expect(r.route(withPrompt, engines, 1)).toBe(0);
    });

    it('counts by the liveness estimate: sessions taken as ended do not mix an engine', () => {
      const engines = [engine(0), engine(1)];
      const ended = new Set<number>();
      const r = new AffinityStealingRouting((session) => (ended.has(session) ? 0 : 1), { separateKinds: true });
      home(r, engines, [[browsing(1), 0], [coding(7), 0], [coding(2), 1], [coding(3), 1]]);
      // Engine 0's coding session has ended, its browsing one is live; engine 1 homes two live coding ones.
      ended.add(7);
      expect(r.route(coding(4), engines, 1)).toBe(1);
      // Engine 0's browsing session has ended too: engine 0 is empty (and has fewer sessions).
      ended.add(1);
      expect(r.route(coding(5), engines, 2)).toBe(0);
    });

    it('weighs each session of the kind by its liveness', () => {
      const engines = [engine(0), engine(1)];
      const r = new AffinityStealingRouting((session) => (session === 7 ? 0.5 : 1), { separateKinds: true });
      home(r, engines, [[browsing(1), 0], [coding(7), 0], [coding(2), 1], [browsing(8), 1]]);
      // Engine 0: 1.5 live, 0.5 of them coding (other kinds 2/3); engine 1: 2 live, 1 coding (1/2).
      expect(r.route(coding(4), engines, 1)).toBe(1);
    });

    it('moves no home among more sessions of other kinds than it leaves, by a steal or at arrival', () => {
      for (const apart of [true, false]) {
        const engines = [engine(0), engine(1)];
        const r = new AffinityStealingRouting(undefined, { separateKinds: apart });
        const a = coding(1, 0, 100);
        home(r, engines, [[a, 0], [coding(2), 0], [browsing(3), 1]]);
        engines[0].waiting = [{ call: a, enqueuedS: 0 }];
        // Waited 5 s against a 0.16 s recompute on engine 1, which homes a browsing session only.
        expect(r.steal(engines[1], engines, 5)).toEqual(apart ? undefined : { from: 0, call: a });
        engines[0].waiting = [{ call: coding(2, 1, 1, 5), enqueuedS: 0 }];
        expect(r.route(coding(1, 1, 100, 6), engines, 6)).toBe(apart ? 0 : 1);
      }
    });

    it('counts the moving session whole at its home, whatever its liveness estimate says', () => {
      const engines = [engine(0), engine(1)];
      // Session 1 was taken as ended (away past every gap seen) and calls now.
      const r = new AffinityStealingRouting((session) => (session === 1 ? 0 : 1), { separateKinds: true });
      home(r, engines, [[coding(1, 0, 100), 0], [browsing(2), 0], [browsing(3), 1], [browsing(5), 1], [coding(4), 1]]);
      // Its home has had a call waiting for 5 s, against a 0.16 s recompute on engine 1.
      engines[0].waiting = [{ call: browsing(2, 1, 1, 0), enqueuedS: 0 }];
      // Home: session 1 and a browsing session (other kinds 1/2); engine 1: other kinds 2/3. Stay.
      expect(r.route(coding(1, 1, 100, 5), engines, 5)).toBe(0);
    });

    it('lets a session move from a mixed engine to one of its own kind', () => {
      const engines = [engine(0), engine(1)];
      const r = new AffinityStealingRouting(undefined, { separateKinds: true });
      const a = browsing(1, 0, 100);
      home(r, engines, [[a, 0], [coding(2), 0], [browsing(3), 1]]);
      engines[0].waiting = [{ call: a, enqueuedS: 0 }];
      expect(r.steal(engines[1], engines, 5)).toEqual({ from: 0, call: a });
    });
  });
});
