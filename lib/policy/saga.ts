/**
 * SAGA's bundles: the three mechanisms together (`saga`) and each alone on top of the vllm baseline,
 * for the ablation. This file grows as the mechanisms land.
 */
import { composeBundle } from './bundle';
import { SagaEviction } from './saga_eviction';
import type { PolicyBundle } from './types';
import { FcfsQueue, SessionAffinityRouting } from './vllm';

/** vllm with SAGA's eviction alone: AEG-predicted next use instead of LRU. */
export function createSagaEvictionBundle(): PolicyBundle {
  return composeBundle({ name: 'saga-eviction', routing: new SessionAffinityRouting(), queue: new FcfsQueue(), eviction: new SagaEviction() });
}
