/**
 * What an eviction policy is to the replay: a function from the request just served to the eviction
 * keys its blocks are released with (ascending key = evicted first; ties: deeper chain position first,
 * then lower block id; docs/block-core.md).
 *
 * Causality: the engine hands a policy the request stream one request at a time, in order, after the
 * request's reads, and nothing else of the trace: the request's own hashes arrive in a buffer the
 * engine owns (not a view of the workload), and no Call object (its gapAfterS would tell the future)
 * is passed. An online policy (lru, and later saga, which learns as it goes) therefore decides from
 * the past alone. Only a policy registered as an oracle (`bound: true`, see ./policies.ts) is built
 * with the whole stream, and every output labels its numbers as a bound.
 */

/** One request as a policy sees it, once it has been served. Valid only during the call. */
export interface PolicyRequest {
  /** Sequence number in the stream (0, 1, 2, ...). */
  readonly index: number;
  /** Seconds from the workload's start at which it was issued. */
  readonly timeS: number;
  /** Task (session) number, the `session` of its blocks in the cache, and the task's id, tenant, kind. */
  readonly session: number;
  readonly taskId: string;
  readonly tenant: string;
  readonly kind: string;
  /** Which call of its task it is (0 = the first). */
  readonly callIndex: number;
  readonly promptTokens: number;
  readonly outputTokens: number;
  /** Why the call stopped, where the trace says. */
  readonly stop?: string;
  /** Its blocks' hashes, head first (block p sits at chain position p). */
  readonly hashes: BigUint64Array;
  /** hits[p] = 1 when block p's read found it cached. */
  readonly hits: Uint8Array;
  /** The cache's block id now holding block p (for KeyControl.setKeys). */
  readonly blockIds: Int32Array;
}

/**
 * Re-keying of blocks already cached, for policies whose view of other blocks changes as they learn
 * (e.g. a session's predicted next use). Key changes take effect at the next eviction.
 */
export interface KeyControl {
  /** Every cached block of sessions[i] at position >= minPositions[i] takes keys[i]; returns the updates. */
  setSessionKeys(sessions: Int32Array, keys: Float64Array, minPositions: Int32Array): number;
  /** Block ids[i] takes keys[i] (ids of blocks still cached: from a PolicyRequest.blockIds). */
  setKeys(ids: Int32Array, keys: Float64Array): void;
}

export interface EvictionPolicy {
  readonly name: string;
  /** True for an offline oracle: its numbers are a bound, not a policy anyone can run. */
  readonly bound: boolean;
  /**
   * Called once per request, in stream order, after its reads: writes the key of each of its blocks
   * (out[p] for block p, out.length = hashes.length). NaN is not a key.
   */
  keys(request: PolicyRequest, out: Float64Array, control: KeyControl): void;
}

/** What every policy is built with. */
export interface PolicyContext {
  /** Blocks the cache keeps between requests. */
  capacityBlocks: number;
  /** Tokens per block. */
  blockSize: number;
}
