/**
 * The eviction policies `saga replay` runs: lib/policy's eviction registry (the same policies the
 * simulator runs), except that the replay's oracle is exact. A replay has no timing model, so the
 * future is the stream itself, and Bélády's MIN over it (./belady.ts) is the true optimum; the
 * simulator's `belady` estimates next uses in a closed loop instead.
 */
import { createEvictionPolicy } from '../policy/index';
import type { EvictionPolicy } from '../policy/types';
import { ReplayBeladyEviction } from './belady';
import type { ReplayStream } from './stream';

export { evictionPolicyDescription, evictionPolicyNames, isOracleEviction, parseEvictionPolicyList } from '../policy/index';

/** Builds a policy for a replay of `stream`: online policies never see it, only the oracle does. */
export function createReplayPolicy(name: string, stream: ReplayStream): EvictionPolicy {
  if (name === 'belady') return new ReplayBeladyEviction(stream);
  return createEvictionPolicy(name, { workload: stream.workload });
}
