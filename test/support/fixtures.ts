/** Small builders for the unit tests: a CPU cache and one-line allocate / release helpers. */
import { KvCache, type KvCacheOptions } from '../../lib/kv/kv_cache';
import { hashes, ids, keys } from './pool_assertions';

export function cpuCache(options: Omit<KvCacheOptions, 'backend'>): KvCache {
  return new KvCache({ ...options, backend: 'cpu' });
}

/**
 * Allocates one block per hash (0 for a block not yet full) for `session`, at chain positions
 * firstPosition, firstPosition + 1, ...; returns the ids.
 */
export function allocate(cache: KvCache, blockHashes: (bigint | number)[], session = 0, firstPosition = 0): number[] {
  const out = new Int32Array(blockHashes.length);
  cache.allocate(
    hashes(...blockHashes),
    new Int32Array(blockHashes.length).fill(session),
    Int32Array.from(blockHashes, (_, i) => firstPosition + i),
    out,
  );
  return Array.from(out);
}

/** Releases each id once with the same key. */
export function release(cache: KvCache, blockIds: number[], key = 0): void {
  cache.release(ids(...blockIds), new Float64Array(blockIds.length).fill(key));
}

export function lookupAll(cache: KvCache, blockHashes: (bigint | number)[]): number[] {
  const out = new Int32Array(blockHashes.length);
  const k = cache.lookup(hashes(...blockHashes), out);
  return Array.from(out.subarray(0, k));
}

export function victimsOf(cache: KvCache, tier: 0 | 1, k = cache.deviceCapacity + cache.hostCapacity): number[] {
  const out = new Int32Array(k);
  const n = cache.victims(tier, out);
  return Array.from(out.subarray(0, n));
}

export { hashes, ids, keys };
