/** What each `saga serve` policy is made of (lib/router/policies.ts): saga, the baselines, and the ablation. */
import { describe, expect, it } from 'vitest';
import type { CallInfo, EngineView } from '../lib/policy/types';
import { AfsQueue } from '../lib/policy/afs';
import { LeastLoadedRouting, RoundRobinRouting } from '../lib/policy/load_balancing';
import { AffinityStealingRouting } from '../lib/policy/saga_routing';
import { FcfsQueue, SessionAffinityRouting } from '../lib/policy/vllm';
import { GATEWAY_POLICIES, type GatewayPolicyName } from '../lib/router/config';
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

  /** A call of `session` (tenant a, kind k) with a prompt of 4 + callIndex blocks of its own. */
  function call(session: number, callIndex: number, nowS: number): CallInfo {
    const blockHashes = BigUint64Array.from({ length: 4 + callIndex }, (_, i) => BigInt(session * 1_000 + i + 1));
    return { taskIndex: session, callIndex, session, tenant: 'a', kind: 'k', arrivalS: nowS, promptTokens: blockHashes.length * 16, outputTokens: 8, blockHashes };
  }

  /** An idle engine caching nothing. */
  function engine(id: number): EngineView {
    return {
      id,
      blockSize: 16,
      outstandingCalls: () => 0,
      queuedTokens: () => 0,
      cachedPrefixBlocks: () => 0,
      waitingCalls: () => [],
      freeBlocks: () => 1_000,
      prefillEstimateS: () => 0,
    };
  }

  it.each([
    ['saga', 1, 0],
    ['saga-routing', 1, 0],
    ['affinity', 1, 0], // late: 2 sessions against 2 (4 went to engine 1), the lower id
  ] as const)(
    '%s: a session in a tool call counts whole until it has been away longer than any gap its step has shown (new session: engine %i, then %i)',
    (name, soon, late) => {
      const p = createGatewayPolicies(name, [{ name: 'a', weight: 1, slo: { slowdown: 3 } }]);
      const engines = [engine(0), engine(1)];
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
      // Sessions 1 and 3 on engine 0 go into a tool call; session 2 on engine 1 is running.
      for (const s of [1, 2, 3]) {
        const info = call(s, 0, t);
        expect(p.routing.route(info, engines, t)).toBe(s === 2 ? 1 : 0);
        p.observe({ type: 'call-arrive', call: info, engineId: s === 2 ? 1 : 0, nowS: t });
        if (s !== 2) p.observe({ type: 'call-finish', call: info, engineId: 0, nowS: t + 1, lastCall: false, stop: 'tool_calls' });
      }
      // 15 s into their tool calls each has a small chance of calling again, but some: both count, 2 against 1.
      expect(p.routing.route(call(4, 0, t + 16), engines, t + 16)).toBe(soon);
      // A thousand seconds on, past every gap seen: for saga engine 0's two count as ended, engine 1's two are live.
      expect(p.routing.route(call(5, 0, t + 1_000), engines, t + 1_000)).toBe(late);
    },
  );
});
