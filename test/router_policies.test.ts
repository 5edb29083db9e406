/** What each `saga serve` policy is made of (lib/router/policies.ts): saga, the baselines, and the ablation. */
import { describe, expect, it } from 'vitest';
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
  'saga-routing': { routing: AffinityStealingRouting, queue: FcfsQueue, learns: false },
  afs: { routing: SessionAffinityRouting, queue: AfsQueue, learns: true },
};

describe('gateway policies', () => {
  it.each([...GATEWAY_POLICIES])('%s has its routing, its queue order and (with AFS) the AEG', (name) => {
    const p = createGatewayPolicies(name, [{ name: 'a', weight: 2, slo: { slowdown: 3 } }]);
    expect(p.name).toBe(name);
    expect(p.routing).toBeInstanceOf(PARTS[name].routing);
    expect(p.queue).toBeInstanceOf(PARTS[name].queue);
    expect(p.graph !== undefined).toBe(PARTS[name].learns);
  });
});
