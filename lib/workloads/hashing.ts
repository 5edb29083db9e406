/**
 * Trace block ids -> the Workload's block hashes.
 *
 * Traces name each block of a prompt by an integer id, prefix-chained by the source (equal id at a
 * position = equal prompt up to the end of that block). SAGA's block core wants unique, nonzero 64-bit
 * hashes, and ids from different sources (or, for Claude Code, from different session files: their
 * ids are local to one file) must not meet. So each id is chained, like vLLM's block hashes:
 *
 *   h[-1] = root(scope),   h[j] = fmix64(h[j-1] XOR fmix64(id[j] + 1)),   0 replaced by 1
 *
 * with murmur3's 64-bit finaliser `fmix64` (a bijection on 64-bit words). `scope` separates id spaces:
 * 0 for traces whose ids are global (Mooncake, SAGA JSONL), the session's number for Claude Code files.
 * Chaining keeps the source's meaning (equal chained hash = equal ids all the way from the first block)
 * even where a user's ids are per-block content hashes rather than prefix-chained ones; two different
 * chains meet with probability ~2^-64 per pair, as with any 64-bit block hash.
 *
 * Re-blocking: a trace with blocks of S tokens can be replayed with blocks of B = k x S tokens. Because
 * ids are prefix-chained, the id of the last S-block inside a B-block names the whole prefix up to the
 * B-block's end, so block j of size B takes id[(j+1)k - 1] (every k-th id, starting at the k-th).
 * Source blocks left over past the last full B-block form a partial block: it is hashed only when the
 * source hashed its own partial tail (Mooncake gives one id per started block), and then it takes the
 * last id; otherwise (Claude Code hashes full 64-token blocks only) it is left unhashed, as an engine
 * leaves a partial block uncached.
 */

/** 64-bit words wrap here. */
export const MASK64 = (1n << 64n) - 1n;
/** 2^64 / the golden ratio (splitmix64's increment): multiplied by small integers, it spreads them over 64 bits. */
export const GOLDEN_GAMMA = 0x9e3779b97f4a7c15n;

/** murmur3's 64-bit finaliser (a bijection on [0, 2^64)). */
export function fmix64(value: bigint): bigint {
  let k = value & MASK64;
  k ^= k >> 33n;
  k = (k * 0xff51afd7ed558ccdn) & MASK64;
  k ^= k >> 33n;
  k = (k * 0xc4ceb9fe1a85ec53n) & MASK64;
  k ^= k >> 33n;
  return k;
}

/** The parent hash of the first block of every prompt in `scope` (0: global ids). */
export function scopeRoot(scope: number): bigint {
  const root = fmix64(0xcbf29ce484222325n ^ BigInt(scope));
  return root === 0n ? 1n : root;
}

/** The hash of the block with trace id `id` after a block hashed `parent`. Never 0n. */
export function chainHash(parent: bigint, id: number): bigint {
  const h = fmix64(parent ^ fmix64(BigInt(id) + 1n));
  return h === 0n ? 1n : h;
}

/** How a call's ids become blocks. */
export interface BlockIdLayout {
  /** Tokens per id in the source. */
  sourceBlockSize: number;
  /** Tokens per block wanted (a positive multiple of sourceBlockSize). */
  blockSize: number;
}

/**
 * k = blockSize / sourceBlockSize, or a message saying why `blockSize` cannot be made of the source's
 * blocks (it must be a positive multiple of them).
 */
export function reblockFactor(sourceBlockSize: number, blockSize: number): number | string {
  if (!Number.isInteger(blockSize) || blockSize < 1) return `block size must be a positive integer, got ${String(blockSize)}`;
  if (blockSize % sourceBlockSize !== 0) {
    return `block size ${blockSize} is not a multiple of the trace's ${sourceBlockSize}-token blocks`;
  }
  return blockSize / sourceBlockSize;
}

/**
 * Why `idCount` ids cannot describe a prompt of `promptTokens` tokens in blocks of `sourceBlockSize`
 * (more ids than started blocks), or undefined when they can.
 */
export function idCountProblem(idCount: number, promptTokens: number, sourceBlockSize: number): string | undefined {
  const started = Math.ceil(promptTokens / sourceBlockSize);
  if (idCount > started) {
    return `${idCount} hash ids for ${promptTokens} input tokens: at most ${started} blocks of ${sourceBlockSize} tokens`;
  }
  return undefined;
}

/** Where one call's hashes ended up in a HashBuffer. */
export interface HashedCall {
  offset: number;
  count: number;
  partialBlockHash?: bigint;
}

/**
 * A growable buffer of chained block hashes: the loaders append every call's hashes, then hand out
 * views (`subarray`) of the one finished buffer as the calls' blockHashes.
 */
export class HashBuffer {
  private buf = new BigUint64Array(4096);
  private used = 0;
  // The previous call's ids (after re-blocking) and where its hashes are: a call that starts with the
  // same ids in the same scope (the next turn of a conversation) copies those hashes instead of
  // recomputing them. Exact: a hash depends only on the scope and the ids up to it.
  private lastIds: ArrayLike<number> = [];
  private lastK = 0;
  private lastCount = 0;
  private lastScope = -1;
  private lastOffset = 0;

  get length(): number {
    return this.used;
  }

  /**
   * Appends the full blocks of one call (ids in prompt order, `promptTokens` tokens; the caller has
   * checked idCountProblem) re-blocked per `layout` and chained from `scope`'s root.
   */
  addCall(ids: ArrayLike<number>, promptTokens: number, scope: number, layout: BlockIdLayout): HashedCall {
    const { sourceBlockSize, blockSize } = layout;
    const k = blockSize / sourceBlockSize;
    const fullSource = Math.min(ids.length, Math.floor(promptTokens / sourceBlockSize));
    const sourceHashedTail = ids.length > fullSource;
    const full = Math.floor(fullSource / k);
    this.reserve(full);
    const offset = this.used;
    let same = 0;
    if (scope === this.lastScope && k === this.lastK) {
      const last = this.lastIds;
      const limit = Math.min(full, this.lastCount);
      while (same < limit && ids[(same + 1) * k - 1] === last[(same + 1) * k - 1]) same++;
      this.buf.copyWithin(offset, this.lastOffset, this.lastOffset + same);
    }
    this.used += same;
    let h = same > 0 ? this.buf[offset + same - 1] : scopeRoot(scope);
    for (let j = same; j < full; j++) {
      h = chainHash(h, ids[(j + 1) * k - 1]);
      this.buf[this.used++] = h;
    }
    this.lastIds = ids;
    this.lastK = k;
    this.lastCount = full;
    this.lastScope = scope;
    this.lastOffset = offset;
    const call: HashedCall = { offset, count: full };
    if (sourceHashedTail) call.partialBlockHash = chainHash(h, ids[ids.length - 1]);
    return call;
  }

  /** The hashes appended so far, in a buffer of exactly that length. */
  finish(): BigUint64Array {
    return this.buf.slice(0, this.used);
  }

  private reserve(extra: number): void {
    if (this.used + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.used + extra) size *= 2;
    const next = new BigUint64Array(size);
    next.set(this.buf.subarray(0, this.used));
    this.buf = next;
  }
}
