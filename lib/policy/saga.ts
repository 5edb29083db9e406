/**
 * SAGA's bundles: the three mechanisms together (`saga`) and each of the first two alone on top of the
 * vllm baseline, for the ablation (the third alone is `afs`, lib/policy/afs.ts).
 * - eviction: AEG-predicted next use (./saga_eviction.ts);
 * - routing: session affinity with work stealing (./saga_routing.ts), and in `saga` the fair-share placement
 *   that keeps a flooding tenant off the other tenants' engines (./fair_share_placement.ts): Agent Fair Share's
 *   part in routing, which needs both mechanisms, so neither ablation bundle has it;
 * - queue: Agent Fair Share (./afs.ts), which charges decode at the call's finish, so nothing reads an
 *   output length before the output exists.
 */
import { AgentExecutionGraph } from '../graph/aeg';
import { AfsQueue } from './afs';
import { composeBundle } from './bundle';
import { SagaEviction } from './saga_eviction';
import { AffinityStealingRouting } from './saga_routing';
import type { PolicyBundle } from './types';
import { FcfsQueue, LruEviction, SessionAffinityRouting } from './vllm';

/** vllm with SAGA's eviction alone. */
export function createSagaEvictionBundle(): PolicyBundle {
  return composeBundle({ name: 'saga-eviction', routing: new SessionAffinityRouting(), queue: new FcfsQueue(), eviction: new SagaEviction() });
}

/** vllm with SAGA's routing alone. */
export function createSagaRoutingBundle(): PolicyBundle {
  return composeBundle({ name: 'saga-routing', routing: new AffinityStealingRouting(), queue: new FcfsQueue(), eviction: new LruEviction() });
}

/**
 * All three mechanisms, sharing one Agent Execution Graph: eviction keys from its next-use predictions;
 * the queue admits with room for the output it expects of each call (growth-aware admission) and lets
 * programs near their SLO ahead by the remaining work it predicts (AFS's SLO-aware admission).
 */
export function createSagaBundle(): PolicyBundle {
  const graph = new AgentExecutionGraph();
  return composeBundle({
    name: 'saga',
    routing: new AffinityStealingRouting(undefined, { fairPlacement: true }),
    queue: new AfsQueue({ expectedOutputTokens: (call) => graph.expectedOutputTokens(call), remainingWorkS: (call) => graph.remainingWorkS(call) }),
    eviction: new SagaEviction(graph),
  });
}
