/**
 * Every error SAGA raises on purpose carries a stable `code`: callers branch on the code, never on the
 * message. The native core throws instances of this same class (the addon is handed it at load time),
 * so errors from C++ and from TypeScript argument checks look alike.
 */
export type SagaErrorCode =
  | 'ERR_SAGA_BAD_ARGUMENT'
  | 'ERR_SAGA_UNKNOWN_BLOCK'
  | 'ERR_SAGA_BLOCK_STATE'
  | 'ERR_SAGA_DOUBLE_RELEASE'
  | 'ERR_SAGA_OUT_OF_BLOCKS'
  | 'ERR_SAGA_DUPLICATE_HASH'
  | 'ERR_SAGA_BAD_KEY'
  | 'ERR_SAGA_TABLE_ROW'
  | 'ERR_SAGA_TABLE_FULL'
  | 'ERR_SAGA_BACKEND_UNAVAILABLE'
  | 'ERR_SAGA_INTERNAL'
  // Traces and replay: a trace file that cannot be read, one that is malformed (the message names the
  // file and line), a policy name nobody registered.
  | 'ERR_SAGA_TRACE_NOT_FOUND'
  | 'ERR_SAGA_BAD_TRACE'
  | 'ERR_SAGA_UNKNOWN_POLICY'
  // `saga engine`: a model file llama.cpp cannot load (checked in a child process first), a prompt longer
  // than the context, llama.cpp itself unusable here (the message says why), an engine shutting down.
  | 'ERR_SAGA_BAD_MODEL'
  | 'ERR_SAGA_CONTEXT_LENGTH'
  | 'ERR_SAGA_ENGINE_UNAVAILABLE'
  | 'ERR_SAGA_ENGINE_CLOSED'
  // `saga serve`: a gateway config file that cannot be read or is wrong (the message names the field).
  | 'ERR_SAGA_BAD_CONFIG';

export class SagaError extends Error {
  readonly code: SagaErrorCode;

  constructor(message: string, code: SagaErrorCode) {
    super(message);
    this.name = 'SagaError';
    this.code = code;
  }
}

export function badArgument(message: string): SagaError {
  return new SagaError(message, 'ERR_SAGA_BAD_ARGUMENT');
}
