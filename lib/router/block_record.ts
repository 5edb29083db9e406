/**
 * Which prompt blocks the gateway has sent to one engine, most recent last: a bounded LRU set of block
 * hashes, the gateway's stand-in for the engine's prefix cache (it cannot see the engine's own). Sending a
 * call refreshes its blocks; past the bound, the least recently sent leave first, as an LRU cache would.
 */
export class BlockRecord {
  /** Insertion order is recency order: a refreshed hash is deleted and set again. */
  private readonly hashes = new Set<bigint>();

  constructor(readonly limit: number) {}

  get size(): number {
    return this.hashes.size;
  }

  /** Leading blocks of `hashes` held. */
  prefixBlocks(hashes: BigUint64Array): number {
    let n = 0;
    while (n < hashes.length && this.hashes.has(hashes[n])) n++;
    return n;
  }

  /**
   * Records a call's blocks as sent now, tail first, so that its head is the freshest and leaves last: a
   * prefix outlives its extensions, as in vLLM, which frees a request's blocks tail first.
   */
  sent(hashes: BigUint64Array): void {
    for (let i = hashes.length - 1; i >= 0; i--) {
      this.hashes.delete(hashes[i]);
      this.hashes.add(hashes[i]);
    }
    let excess = this.hashes.size - this.limit;
    if (excess <= 0) return;
    for (const hash of this.hashes) {
      if (excess-- <= 0) break;
      this.hashes.delete(hash);
    }
  }

  clear(): void {
    this.hashes.clear();
  }
}
