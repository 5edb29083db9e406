/** What each `saga serve` policy is made of (lib/router/policies.ts): saga, the baselines, and the ablation. */
import { describe, expect, it } from 'vitest';
import type { CallInfo } from '../lib/policy/types';
import { fakeEngine } from './helpers/fake_engine';
import { FLOOD_ENGINE_BLOCKS, routeFlood } from './helpers/flood_routing';
import { AfsQueue } from '../lib/policy/afs';
import { LeastLoadedRouting, RoundRobinRouting } from '../lib/policy/load_balancing';
import { AffinityStealingRouting } from '../lib/policy/saga_routing';
import { FcfsQueue, SessionAffinityRouting } from '../lib/policy/vllm';
import { GATEWAY_POLICIES, parseGatewayConfig, type GatewayPolicyName } from '../lib/router/config';
import { EngineState } from '../lib/router/engine_state';
import { createGatewayPolicies } from '../lib/router/policies';

const PARTS: Record<GatewayPolicyName, { routing: new (...a: never[]) => unknown; queue: new (...a: never[]) => unknown; learns: boolean }> = {
  saga: { routing: AffinityStealingRouting, queue: AfsQueue, learns: true },
  affinity: { routing: SessionAffinityRouting, queue: FcfsQueue, learns: false },
  'round-robin': { routing: RoundRobinRouting, queue: FcfsQueue, learns: false },
  'least-loaded': { routing: LeastLoadedRouting, queue: FcfsQueue, learns: false },
  'saga-routing': { routing: AffinityStealingRouting, queue: FcfsQueue, learns: true },
  afs: { routing: SessionAffinityRouting, queue: AfsQueue, learns: true },
};

describe('gateway policies', () => {
  it.each([...GATEWAY_POLICIES])('%s has its routing, its queue order and (with AFS or stealing) the AEG', (name) => {
    const p = createGatewayPolicies(name, [{ name: 'a', weight: 2, slo: { slowdown: 3 } }]);
    expect(p.name).toBe(name);
    expect(p.routing).toBeInstanceOf(PARTS[name].routing);
    expect(p.queue).toBeInstanceOf(PARTS[name].queue);
    expect(p.graph !== undefined).toBe(PARTS[name].learns);
  });

  it.each(['saga', 'afs'] as const)("%s charges fair share in the engines' prices when the gateway gives them", (name) => {
    const prices = [1, 30];
    const p = createGatewayPolicies(name, [{ name: 'a', weight: 1, slo: { slowdown: 3 } }], { decodePrice: (engineId) => prices[engineId] });
    const queue = p.queue as AfsQueue;
    for (const engineId of [0, 1]) {
      const info = call(engineId, 0, 0);
      p.observe({ type: 'call-arrive', call: info, engineId, nowS: 0 });
      p.observe({ type: 'call-admit', call: { ...info, outputTokens: 0 }, engineId, cachedTokens: 0, nowS: 0 });
      p.observe({ type: 'call-finish', call: info, engineId, nowS: 1, lastCall: false });
    }
    const prompt = call(0, 0, 0).promptTokens;
    expect(queue.counter(0, 'a')).toBe(prompt + 8);
    expect(queue.counter(1, 'a')).toBe(prompt + 8 * 30);
  });

  /** A call of `session` (tenant a, kind k unless named) with a prompt of 4 + callIndex blocks of its own. */
  function call(session: number, callIndex: number, nowS: number, kind = 'k'): CallInfo {
    const blockHashes = BigUint64Array.from({ length: 4 + callIndex }, (_, i) => BigInt(session * 1_000 + i + 1));
    return { taskIndex: session, callIndex, session, tenant: 'a', kind, arrivalS: nowS, promptTokens: blockHashes.length * 16, outputTokens: 8, blockHashes };
  }

  it.each([
    ['saga', 0],
    ['saga-routing', 0],
    ['affinity', 1],
    ['afs', 1],
  ] as const)('%s: a new session goes among its own workflow kind where the load bound allows (engine %i)', (name, expected) => {
    const p = createGatewayPolicies(name, [{ name: 'a', weight: 1, slo: { slowdown: 3 } }]);
    const engines = [fakeEngine(0, { free: 1_000 }), fakeEngine(1, { free: 1_000 })];
    // Two coding sessions on engine 0, then a browsing one on engine 1 (the fewer sessions), all running.
    for (const [session, kind] of [[1, 'coding'], [2, 'coding'], [3, 'browsing']] as const) {
      const info = call(session, 0, 0, kind);
      const engineId = session === 3 ? 1 : 0;
      p.routing.route(info, engines, 0);
      p.routing.moveHome?.(session, engineId);
      p.observe({ type: 'call-arrive', call: info, engineId, nowS: 0 });
    }
    expect(p.routing.route(call(4, 0, 1, 'coding'), engines, 1)).toBe(expected);
  });

  it.each([
    ['saga', 1, 0],
    ['saga-routing', 1, 0],
    ['affinity', 1, 1],
  ] as const)(
    '%s: a session in a tool call counts whole until it has been away longer than any gap its step has shown (new session: engine %i, then %i)',
    (name, soon, late) => {
      const p = createGatewayPolicies(name, [{ name: 'a', weight: 1, slo: { slowdown: 3 } }]);
      const engines = [fakeEngine(0, { free: 1_000 }), fakeEngine(1, { free: 1_000 })];
      let t = 0;
      const run = (session: number, calls: number, gapS: number) => {
        for (let c = 0; c < calls; c++) {
          const info = call(session, c, t);
          p.observe({ type: 'call-arrive', call: info, engineId: 0, nowS: t });
          t += 1;
          const last = c === calls - 1;
          p.observe({ type: 'call-finish', call: info, engineId: 0, nowS: t, lastCall: last, stop: last && calls > 1 ? 'stop' : 'tool_calls' });
          t += gapS;
        }
      };
      // The AEG learns that after a first call half the programs end, and the others come back within 1-20 s.
      for (let k = 0; k < 20; k++) {
        run(100 + k, 5, 1 + k);
        run(200 + k, 1, 1);
      }
      /** Session `session`'s first call arrives at `nowS` on engine `expected`; unless `running`, it ends 1 s later in a tool call. */
      const start = (session: number, nowS: number, expected: number, running = false) => {
        const info = call(session, 0, nowS);
        expect(p.routing.route(info, engines, nowS)).toBe(expected);
        p.observe({ type: 'call-arrive', call: info, engineId: expected, nowS });
        if (!running) p.observe({ type: 'call-finish', call: info, engineId: expected, nowS: nowS + 1, lastCall: false, stop: 'tool_calls' });
      };
      // Sessions 1 and 3 on engine 0 go into a tool call; session 2 on engine 1 is running.
      start(1, t, 0);
      start(2, t, 1, true);
      start(3, t, 0);
      // 15 s into their tool calls each has a small chance of calling again, but some: both count, 2 against 1.
      expect(p.routing.route(call(4, 0, t + 16), engines, t + 16)).toBe(soon);
      // Session 6: 2 against 2, the lower id; it goes into a tool call too.
      start(6, t + 16, 0);
      // A thousand seconds on, past every gap seen: for saga engine 0's three count as ended, engine 1's two
      // (2 running, 4 never seen arriving) are live; counted, 3 against 2.
      expect(p.routing.route(call(5, 0, t + 1_000), engines, t + 1_000)).toBe(late);
    },
  );

  it.each([
    ['saga', true, FLOOD_ENGINE_BLOCKS, true],
    ['saga', false, undefined, false],
    ['saga', false, FLOOD_ENGINE_BLOCKS, false],
    ['saga-routing', false, FLOOD_ENGINE_BLOCKS, true],
  ] as const)('%s keeps a flooding tenant off the light tenant\'s engine: %s (engines reporting %s KV blocks; sized in the config: %s)', (name, apart, capacityBlocks, enginesSized) => {
    const p = createGatewayPolicies(name, [], { enginesSized });
    // After a few flood sessions the flood is over its share, opening sessions far faster than the light tenant.
    const engines = [0, 1, 2, 3].map((id) => fakeEngine(id, capacityBlocks === undefined ? {} : { capacityBlocks }));
    const { lightHome, floodHomes } = routeFlood(p.routing, engines, 24);
    expect(floodHomes.slice(-12).includes(lightHome)).toBe(!apart);
  });

  it("reports a configured engine's KV in blocks of the gateway's token estimates", () => {
    const config = parseGatewayConfig({ engines: [{ name: 'e0', url: 'http://127.0.0.1:9', kind: 'vllm', capacity: 4, kvTokens: 64_000 }] });
    const sized = new EngineState(0, config.engines[0]);
    // Before any answer the engine's characters per token are the gateway's own: tokens map one to one.
    expect(sized.capacityBlocks).toBeCloseTo(64_000 / sized.blockSize, 6);
    const unsized = new EngineState(0, parseGatewayConfig({ engines: [{ name: 'e0', url: 'http://127.0.0.1:9', kind: 'vllm', capacity: 4 }] }).engines[0]);
    expect(unsized.capacityBlocks).toBeUndefined();
  });
});
