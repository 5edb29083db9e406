export * from './kv';
export { SagaError, type SagaErrorCode } from './errors';
export { nativeBackend, type BackendName, type NativeBackend, type CudaProbe } from './native';
