/**
 * Scenarios for test/kv_cache.index_capacity.test.ts, run in a child process (node --import tsx) so
 * that a call that never returns can be stopped by a time limit. Prints one JSON line.
 */
import { SagaError } from '../../lib/errors';
import { KvCache } from '../../lib/kv/kv_cache';

function allocateHashed(cache: KvCache, first: number, n: number): Int32Array {
  const out = new Int32Array(n);
  cache.allocate(
    BigUint64Array.from({ length: n }, (_, i) => BigInt(first + i)),
    new Int32Array(n),
    Int32Array.from({ length: n }, (_, i) => i),
    out,
  );
  return out;
}

const scenarios: Record<string, () => unknown> = {
  /** More hashed blocks than the pool holds. */
  oversized(): unknown {
    const cache = new KvCache({ deviceCapacity: Number(process.argv[3]), backend: 'cpu' });
    allocateHashed(cache, 1, Number(process.argv[4]));
    return 'allocated';
  },
  /**
   * The index as full as it gets: every device block hashed and cached, moved to the host tier (as
   * many as fit), the device tier filled again with hashed referenced blocks; then an oversized batch.
   */
  fullThenOversized(): unknown {
    const D = Number(process.argv[3]);
    const H = Number(process.argv[4]);
    const cache = new KvCache({ deviceCapacity: D, hostCapacity: H, backend: 'cpu' });
    const first = allocateHashed(cache, 1, D);
    cache.release(first, new Float64Array(D));
    const moved = first.subarray(0, Math.min(D, H));
    cache.offload(moved, new Int32Array(moved.length));
    allocateHashed(cache, 10_000, D); // evicts what stayed on device, then all D are referenced
    allocateHashed(cache, 20_000, Number(process.argv[5]));
    return 'allocated';
  },
  /** Every device block cached, then as many new hashed blocks as the pool holds: all are evicted. */
  replaceAll(): unknown {
    const D = Number(process.argv[3]);
    const cache = new KvCache({ deviceCapacity: D, backend: 'cpu' });
    const first = allocateHashed(cache, 1, D);
    cache.release(first, new Float64Array(D));
    const second = allocateHashed(cache, 1000, D);
    const out = new Int32Array(D);
    const oldFound = cache.lookup(BigUint64Array.from({ length: D }, (_, i) => BigInt(1 + i)), out);
    return { ids: Array.from(second), oldFound, counts: cache.counts() };
  },
};

try {
  console.log(JSON.stringify({ ok: true, value: scenarios[process.argv[2]]() }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, code: err instanceof SagaError ? err.code : String(err) }));
}
