// The package's public surface: the KV block core, workloads, the simulator and the replay.
export * from './kv';
export { SagaError, type SagaErrorCode } from './errors';
export { nativeBackend, type BackendName, type NativeBackend, type CudaProbe } from './native';
export type { Call, Task, Workload } from './workloads/types';
export { generateWorkload } from './workloads/generators';
export { loadTrace, type TraceLoadOptions } from './workloads/loaders';
export { simulate, resolveClusterSpec, resolveWorkload, isolatedTaskTimes, type ClusterSpec, type ClusterSpecInput, type SimulationResult } from './sim/simulate';
export { computeMetrics, type PolicyMetrics } from './metrics/metrics';
export { runReplay, type ReplayOptions, type ReplayReport } from './replay';
