/** Block-level replay of traces under eviction policies (`saga replay`). */
export { ReplayStream } from './stream';
export { HashInterner } from './intern';
export { ReplayBeladyEviction, nextReads } from './belady';
export { createReplayPolicy, evictionPolicyDescription, evictionPolicyNames, isOracleEviction, parseEvictionPolicyList } from './policies';
export { parseCapacity, resolveCapacity, describeCapacity, type CapacitySpec } from './capacity';
export { replayPolicy, type PolicyOutcome, type EngineOptions } from './engine';
export { runReplay, formatReplayTable, BOUND_NOTE, ORACLE, type ReplayReport, type PolicyResult, type ReplayOptions } from './run';
