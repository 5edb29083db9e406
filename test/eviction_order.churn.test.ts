/**
 * Eviction-order churn: many re-keys, acquires and releases of cached blocks, as a next-use policy
 * does every scheduling step. Each re-key of an evictable block leaves a stale entry behind in a lazy
 * heap, so this drives whatever clean-up the order does (compaction, lazy deletion), and each round
 * checks the victims, the keys and an eviction against the reference model.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvCache } from '../lib/kv/kv_cache';
import { diffSnapshots } from './support/pool_assertions';
import { ReferencePool } from './support/reference_pool';

type Pool = KvCache | ReferencePool;

function victims(pool: Pool, tier: 0 | 1, k: number): number[] {
  const out = new Int32Array(k);
  return Array.from(out.subarray(0, pool.victims(tier, out)));
}

describe('eviction order under churn', () => {
  it('matches the reference through thousands of re-keys, acquires and releases', () => {
    const D = 256;
    const H = 64;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (seed) => {
        let state = seed;
        const rand = (n: number) => {
          state = (Math.imul(state, 1103515245) + 12345) >>> 1;
          return state % n;
        };
        const keyOf = () => [0, 1, 2, 5, 5, 7, -0, Infinity][rand(8)] + (rand(4) === 0 ? rand(1000) : 0);
        const cache = new KvCache({ deviceCapacity: D, hostCapacity: H, backend: 'cpu' });
        const model = new ReferencePool({ deviceCapacity: D, hostCapacity: H });
        const pools: Pool[] = [cache, model];
        // every device block cached, with chain positions 0..7 in 4 sessions
        for (const pool of pools) {
          const out = new Int32Array(D);
          pool.allocate(
            BigUint64Array.from({ length: D }, (_, i) => BigInt(i + 1)),
            Int32Array.from({ length: D }, (_, i) => i % 4),
            Int32Array.from({ length: D }, (_, i) => (i >> 2) % 8),
            out,
          );
          pool.release(out, Float64Array.from({ length: D }, (_, i) => i % 3));
        }
        for (let round = 0; round < 150; round++) {
          const n = 1 + rand(40);
          const ids = Int32Array.from({ length: n }, () => rand(D));
          const keys = Float64Array.from({ length: n }, keyOf);
          const kind = rand(10);
          const cached = victims(model, 0, D);
          const sessionCall = [Int32Array.of(rand(4)), Float64Array.of(keyOf()), Int32Array.of(rand(8))] as const;
          const updates: number[] = [];
          for (const pool of pools) {
            if (kind < 6) pool.setKeys(ids, keys);
            else if (kind < 7) updates.push(pool.setSessionKeys(...sessionCall));
            else if (kind < 9 && cached.length > 0) {
              // acquire a few cached blocks and release them again at new keys
              const some = Int32Array.from({ length: Math.min(8, cached.length) }, (_, i) => cached[(i * 7 + round) % cached.length]);
              const distinct = Int32Array.from(new Set(some));
              pool.acquire(distinct);
              pool.release(distinct, Float64Array.from(distinct, () => keys[0]));
            } else if (cached.length > 0) {
              // offload the first victims and bring them straight back (evicting host victims as needed)
              const moved = Int32Array.from(cached.slice(0, Math.min(H, 1 + (round % 5))));
              const host = new Int32Array(moved.length);
              pool.offload(moved, host);
              pool.restore(host, new Int32Array(host.length));
            }
          }
          if (updates.length > 0) expect(updates[0], `round ${round}: setSessionKeys updates`).toBe(updates[1]);
          expect(victims(cache, 0, D), `round ${round}`).toEqual(victims(model, 0, D));
          expect(victims(cache, 1, H), `round ${round}`).toEqual(victims(model, 1, H));
          expect(victims(cache, 0, 5)).toEqual(victims(model, 0, 5));
          expect(diffSnapshots(model.snapshot(), cache.snapshot()), `round ${round}`).toEqual([]);
        }
      }),
      { seed: 99, numRuns: 12 },
    );
  });
});
