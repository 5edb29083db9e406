/**
 * Fair-share placement: a tenant over its max-min share that opens sessions far faster than the others is
 * kept off their engines; a tenant that is merely the largest is not; the groups dissolve when the flood's
 * demand is back within its share; routing and stealing respect them. Engines are small fakes.
 */
import { describe, expect, it } from 'vitest';
import { FAIR_PLACEMENT } from '../lib/constants';
import { FairSharePlacement, waterLevel } from '../lib/policy/fair_share_placement';
import { AffinityStealingRouting } from '../lib/policy/saga_routing';
import { fakeEngine, type FakeEngine } from './helpers/fake_engine';
import { FLOOD_ENGINE_BLOCKS, FLOOD_ENGINE_TOKENS, routeFlood, sessionCall } from './helpers/flood_routing';

const ENGINE_TOKENS = FLOOD_ENGINE_TOKENS;
const call = sessionCall;
const flood = routeFlood;

/** `capacityBlocks`: null for an engine that does not report it (test/helpers/fake_engine.ts). */
const engine = (id: number, capacityBlocks: number | null): FakeEngine => fakeEngine(id, capacityBlocks === null ? {} : { capacityBlocks });

const fleet = (n: number, capacityBlocks: number | null = FLOOD_ENGINE_BLOCKS) => Array.from({ length: n }, (_, i) => engine(i, capacityBlocks));

describe('waterLevel (max-min fair share)', () => {
  it('is the level that shares the capacity, and Infinity when the demands fit', () => {
    expect(waterLevel([1, 1, 10], 8)).toBe(6);
    expect(waterLevel([5, 5], 8)).toBe(4);
    expect(waterLevel([3, 6, 0.5], 8)).toBe(4.5);
    expect(waterLevel([1, 2], 8)).toBe(Infinity);
    expect(waterLevel([4, 4], 8)).toBe(Infinity);
    expect(waterLevel([], 8)).toBe(Infinity);
  });
});

describe('fair-share placement', () => {
  it('keeps a flooding tenant off the engine of the tenant within its share, and homes that tenant there', () => {
    const engines = fleet(4);
    const routing = new AffinityStealingRouting(undefined, { fairPlacement: true });
    // 20 flood sessions: 10 engines of demand against 4; the light tenant's half engine is within its share.
    const { lightHome, floodHomes } = flood(routing, engines, 20);
    // Before the fleet is oversubscribed (demand 0.5 + 0.5 x sessions <= 4), the flood spreads everywhere,
    // including the light tenant's engine; after, never there.
    expect(floodHomes.slice(0, 6)).toContain(lightHome);
    const late = floodHomes.slice(10);
    expect(late).not.toContain(lightHome);
    expect(new Set(late).size).toBe(3);
    // A new light session goes to the light engine, though it homes more sessions than the flood's least loaded.
    expect(routing.route(call(1, 'light', 100, 12), engines, 12)).toBe(lightHome);
    // A flood session homed on the light engine before the groups formed moves off it at its next call.
    const early = floodHomes.findIndex((h) => h === lightHome);
    const moved = routing.route(call(100 + early, 'flood', ENGINE_TOKENS / 2, 13, 1), engines, 13);
    expect(moved).not.toBe(lightHome);
    // And its later calls follow the new home.
    expect(routing.route(call(100 + early, 'flood', ENGINE_TOKENS / 2, 14, 2), engines, 14)).toBe(moved);
  });

  it('without the option, the flood is homed on the light engine too (the test above can fail)', () => {
    const engines = fleet(4);
    const { lightHome, floodHomes } = flood(new AffinityStealingRouting(), engines, 20);
    expect(floodHomes.slice(10)).toContain(lightHome);
  });

  it.each([
    ['none', [null, null, null, null]],
    ['one', [100, 100, 100, null]],
  ] as const)('does nothing where %s of the engines does not report its capacity (a gateway without kvTokens)', (_, capacities) => {
    const engines = capacities.map((c, i) => engine(i, c));
    const { lightHome, floodHomes } = flood(new AffinityStealingRouting(undefined, { fairPlacement: true }), engines, 20);
    expect(floodHomes.slice(10)).toContain(lightHome);
  });

  it('leaves a tenant that is over its share but opens sessions within floodFactor of the others sharing the fleet', () => {
    const placement = new FairSharePlacement(() => 0);
    const engines = fleet(4);
    // big opens 4 sessions for each of small's: over its share (demand 8 against 4 engines), not flooding.
    let session = 0;
    for (let i = 0; i < 4; i++) {
      const t = i * 10;
      placement.arrive(call(session++, 'small', ENGINE_TOKENS / 4, t), t);
      for (let j = 0; j < 4; j++) placement.arrive(call(session++, 'big', ENGINE_TOKENS / 2, t + j), t + j);
    }
    placement.update(engines, 40);
    expect(4).toBeLessThan(FAIR_PLACEMENT.floodFactor);
    expect(placement.current()).toBeUndefined();
    // The same demand opened ten times as fast as small's sessions floods.
    for (let j = 0; j < 40; j++) placement.arrive(call(session++, 'big', 1, 40 + j * 0.1), 40 + j * 0.1);
    placement.update(engines, 44);
    expect(placement.current()?.protectedTenants).toEqual(new Set(['small']));
    expect(placement.allows('small', 0)).toBe(true);
    expect(placement.allows('big', 0)).toBe(false);
  });

  it('counts a new session at what ended sessions of its kind came to hold, and dissolves the groups when the flood is within its share', () => {
    const placement = new FairSharePlacement((s) => (s === 0 ? 0 : 1));
    const engines = fleet(4);
    // Another tenant's coding session ended with two engines of context: a new coding session counts two
    // engines from its first call.
    placement.arrive(call(900, 'other', 100, 0), 0);
    placement.observe({ type: 'call-finish', call: { ...call(900, 'other', 2 * ENGINE_TOKENS - 10, 0), outputTokens: 10 }, engineId: 0, nowS: 1, lastCall: true });
    placement.arrive(call(0, 'light', 10, 2), 2);
    const floodSessions = [1, 2, 3, 4, 5, 6].map((i) => 100 + i);
    for (const [i, s] of floodSessions.entries()) placement.arrive(call(s, 'flood', 10, 2 + i * 0.1), 2 + i * 0.1);
    // Demands: light 2 engines, flood 6 x 2 = 12, against 4: the flood's share is 2, and it opens sessions
    // six times as fast as light.
    placement.update(engines, 3);
    // Light gets two engines: its own (engine 0), then of the rest one homing none of the flood's context.
    expect(placement.current()).toEqual({ protectedEngines: new Set([0, 2]), protectedTenants: new Set(['light']) });
    // Five flood sessions end: its demand (2) is within its share again, and every engine is open.
    for (const s of floodSessions.slice(0, 5)) placement.observe({ type: 'call-finish', call: call(s, 'flood', 10, 3), engineId: 1, nowS: 4, lastCall: true });
    placement.update(engines, 5);
    expect(placement.current()).toBeUndefined();
    expect(placement.allows('flood', 0)).toBe(true);
  });

  it('stops keeping a tenant apart once its demand is within its share, though the fleet stays oversubscribed', () => {
    const placement = new FairSharePlacement(() => undefined);
    const engines = fleet(4);
    // Coding sessions come to hold one engine each (an ended one says so).
    placement.arrive(call(900, 'other', 100, 0), 0);
    placement.observe({ type: 'call-finish', call: { ...call(900, 'other', ENGINE_TOKENS - 10, 0), outputTokens: 10 }, engineId: 0, nowS: 1, lastCall: true });
    placement.arrive(call(0, 'light', 10, 1), 1);
    for (let i = 0; i < 3; i++) placement.arrive(call(10 + i, 'mid', 10, 1), 1);
    const floodSessions = Array.from({ length: 12 }, (_, i) => 100 + i);
    for (const s of floodSessions) placement.arrive(call(s, 'flood', 10, 2), 2);
    // Demands 1, 3 and 12 against 4 engines: level 1.5. mid is over it but opens sessions slowly; flood floods.
    placement.update(engines, 3);
    expect(placement.current()?.protectedTenants).toEqual(new Set(['light', 'mid']));
    // Eleven flood sessions end: demands 1, 3, 1, level 2. The fleet is still oversubscribed (mid), flood is within its share.
    for (const s of floodSessions.slice(0, 11)) placement.observe({ type: 'call-finish', call: call(s, 'flood', ENGINE_TOKENS - 10, 3), engineId: 1, nowS: 4, lastCall: true });
    placement.update(engines, 5);
    expect(placement.current()).toBeUndefined();
  });

  it('reads a call\'s output only once the call has finished', () => {
    const placement = new FairSharePlacement(() => undefined);
    const engines = fleet(4);
    placement.arrive(call(0, 'light', ENGINE_TOKENS, 0), 0);
    // Twenty flood calls with tiny prompts and long outputs: at arrival their sessions hold their prompts.
    const long = (s: number) => ({ ...call(s, 'flood', 16, 1), outputTokens: ENGINE_TOKENS });
    for (let s = 100; s < 120; s++) placement.arrive(long(s), 1);
    placement.update(engines, 2);
    expect(placement.current()).toBeUndefined();
    // Finished, the outputs are the engine's to know: 20 engines of flood context against 4.
    for (let s = 100; s < 120; s++) placement.observe({ type: 'call-finish', call: long(s), engineId: 1, nowS: 3, lastCall: false });
    placement.update(engines, 4);
    expect(placement.current()?.protectedTenants).toEqual(new Set(['light']));
  });

  it('gives the protected tenants no more engines than their equal shares of the fleet', () => {
    const placement = new FairSharePlacement(() => undefined);
    const engines = fleet(4);
    // light wants 3 engines; flood floods: light gets floor(4 x 1/2) = 2 engines.
    for (let i = 0; i < 3; i++) placement.arrive(call(i, 'light', ENGINE_TOKENS, 0), 0);
    for (let i = 0; i < 30; i++) placement.arrive(call(100 + i, 'flood', ENGINE_TOKENS, i * 0.1), i * 0.1);
    placement.update(engines, 3);
    expect(placement.current()?.protectedEngines.size).toBe(2);
  });

  it('sizes the protected group with headroom: a demand of one engine gets more than one', () => {
    const placement = new FairSharePlacement(() => undefined);
    const engines = fleet(8);
    // light holds exactly one engine of context; flood floods. Equal shares would allow light 4 engines.
    placement.arrive(call(0, 'light', ENGINE_TOKENS, 0), 0);
    for (let i = 0; i < 40; i++) placement.arrive(call(100 + i, 'flood', ENGINE_TOKENS, i * 0.1), i * 0.1);
    placement.update(engines, 4);
    const expected = Math.ceil(1 / FAIR_PLACEMENT.protectedFill);
    expect(expected).toBeGreaterThan(1);
    expect(placement.current()?.protectedEngines.size).toBe(expected);
  });

  it("weighs sessions by the routing's liveness: those judged ended (a gateway's long-away sessions) do not count", () => {
    const ended = new Set<number>();
    const placement = new FairSharePlacement(() => undefined, (session) => (ended.has(session) ? 0 : 1));
    const engines = fleet(4);
    placement.arrive(call(0, 'light', ENGINE_TOKENS, 0), 0);
    for (let i = 0; i < 30; i++) placement.arrive(call(100 + i, 'flood', ENGINE_TOKENS, i * 0.1), i * 0.1);
    placement.update(engines, 3);
    expect(placement.current()?.protectedTenants).toEqual(new Set(['light']));
    // 28 of the flood's sessions judged ended: it holds 2 engines' worth, the fleet 4, and the groups go.
    for (let i = 0; i < 28; i++) ended.add(100 + i);
    placement.update(engines, 4);
    expect(placement.current()).toBeUndefined();
  });

  it('never steals a call across the groups', () => {
    const engines = fleet(4);
    const routing = new AffinityStealingRouting(undefined, { fairPlacement: true });
    const { lightHome, floodHomes } = flood(routing, engines, 20);
    const victim = floodHomes[19];
    // A flood call has waited 100 s on its engine; the light engine is idle.
    engines[victim].waiting = [{ call: call(119, 'flood', ENGINE_TOKENS / 2, 11, 1), enqueuedS: 11 }];
    expect(routing.steal(engines[lightHome], engines, 111)).toBeUndefined();
    // Another flood engine with an empty queue takes it.
    const thief = engines.find((e) => e.id !== lightHome && e.id !== victim);
    expect(routing.steal(thief as FakeEngine, engines, 111)?.call.session).toBe(119);
  });
});
