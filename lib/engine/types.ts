/**
 * What `saga engine`'s HTTP server (lib/engine/server.ts) asks of an inference engine, and nothing more:
 * the server parses and checks OpenAI requests, the engine runs them. `LlamaEngine` (lib/engine/llama_engine.ts)
 * is the real one on node-llama-cpp; tests may drive the server with a fake that keeps this contract.
 */

/** The agent program a call belongs to (from `x-saga-session` / `x-saga-tenant` / `x-saga-kind`, or `user`). */
export interface ProgramIdentity {
  /** Session id; calls of one session share their context. */
  readonly session: string;
  readonly tenant: string;
  /** Workflow kind (`swebench`, `webarena`, ...): what the AEG learns per. */
  readonly kind: string;
}

export interface CompletionRequest extends ProgramIdentity {
  /** The whole prompt as text (chat messages already rendered by lib/engine/chat_prompt.ts). */
  readonly prompt: string;
  /** Tokens to generate at most (>= 1). */
  readonly maxTokens: number;
  /** 0 = greedy (deterministic). */
  readonly temperature: number;
  /** Sampling seed for temperature > 0. */
  readonly seed?: number;
  /** Generation stops before any of these strings. */
  readonly stop?: readonly string[];
  /** Keep generating past end-of-sequence until maxTokens (benchmarks replaying fixed output lengths). */
  readonly ignoreEos?: boolean;
  /** Aborted when the client goes away: the engine stops generating and frees the sequence. */
  readonly signal?: AbortSignal;
}

export type FinishReason = 'stop' | 'length';

export interface CompletionUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Prompt tokens whose KV was already resident or restored from the host tier (not recomputed). */
  readonly cachedTokens: number;
}

export interface CompletionResult {
  readonly text: string;
  readonly finishReason: FinishReason;
  readonly usage: CompletionUsage;
}

/** Counters and gauges the server exports on /metrics (Prometheus), read at scrape time. */
export interface EngineStats {
  readonly requestsTotal: number;
  readonly requestsRunning: number;
  readonly requestsWaiting: number;
  readonly promptTokensTotal: number;
  readonly cachedTokensTotal: number;
  readonly completionTokensTotal: number;
  /** Sessions whose KV is resident in a sequence / held in the host tier. */
  readonly residentSessions: number;
  readonly hostTierSessions: number;
  /** Sessions moved out of a sequence: to the host tier, dropped (KV discarded), restored back. */
  readonly offloadsTotal: number;
  readonly dropsTotal: number;
  readonly restoresTotal: number;
}

export interface InferenceEngine {
  /** The model id `/v1/models` lists and requests name. */
  readonly modelId: string;
  /** Most tokens (prompt + output) one request may use. */
  readonly contextSize: number;
  /** The eviction/queue policy bundle in charge (`vllm`, `saga`, ...). */
  readonly policyName: string;
  /** Prompt length in tokens, as the engine will count it (for the server's too-long check). */
  countTokens(prompt: string): number;
  /**
   * Runs one request: waits for admission (queue policy), restores or reuses the session's KV, prefills
   * the rest, generates. `onText` receives the output as it is produced (for streaming). Rejects with a
   * SagaError whose code says what went wrong (ERR_SAGA_BAD_ARGUMENT for the caller's fault).
   */
  complete(request: CompletionRequest, onText?: (delta: string) => void): Promise<CompletionResult>;
  stats(): EngineStats;
  /** Stops admitting, waits for running requests, frees the model. */
  close(): Promise<void>;
}
