/**
 * How arguments cross into the native core: TypedArray views (a byteOffset into a larger buffer, a
 * length shorter than the buffer) must be read and written exactly within the view, and extreme values
 * (hashes >= 2^63, int32 limits, huge and tiny keys) must round-trip. Each scenario also runs on the
 * reference model, which works on plain JS values.
 */
import { describe, expect, it } from 'vitest';
import { KvCache } from '../lib/kv/kv_cache';
import { hashTokenBlocks } from '../lib/kv/token_hash';
import { allocate, cpuCache, hashes, ids, keys, lookupAll } from './support/fixtures';
import { diffSnapshots } from './support/pool_assertions';
import { ReferencePool } from './support/reference_pool';

/** A view of `values` placed at element `offset` of a larger buffer filled with `fill`. */
function view<T extends Int32Array | Float64Array | BigUint64Array | Uint8Array>(
  Ctor: { new (buffer: ArrayBuffer, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number },
  values: ArrayLike<number | bigint>,
  offset: number,
  fill: number | bigint,
): { view: T; whole: T } {
  const total = values.length + offset + 3;
  const buffer = new ArrayBuffer(total * Ctor.BYTES_PER_ELEMENT);
  const whole = new Ctor(buffer, 0, total);
  (whole as unknown as { fill(v: unknown): void }).fill(fill);
  const v = new Ctor(buffer, offset * Ctor.BYTES_PER_ELEMENT, values.length);
  for (let i = 0; i < values.length; i++) (v as unknown as unknown[])[i] = values[i];
  return { view: v, whole };
}

describe('TypedArray views', () => {
  it('reads inputs and writes outputs only within the view', () => {
    const P = 4;
    const cache = cpuCache({ deviceCapacity: 6, hostCapacity: 2, payloadBytes: P, tableRows: 2, tableCols: 3 });
    // allocate from views: the elements around them would be caught if read (a hash repeated / bad session)
    const h = view(BigUint64Array, [11n, 12n, 13n], 2, 11n);
    const s = view(Int32Array, [1, 1, 1], 1, -5);
    const p = view(Int32Array, [0, 1, 2], 3, -5);
    const out = view(Int32Array, [0, 0, 0], 2, -9);
    cache.allocate(h.view, s.view, p.view, out.view);
    expect(Array.from(out.view)).toEqual([0, 1, 2]);
    expect(Array.from(out.whole)).toEqual([-9, -9, 0, 1, 2, -9, -9, -9]);
    expect(Array.from(cache.snapshot().session.subarray(0, 3))).toEqual([1, 1, 1]);

    // lookup into a view
    const found = view(Int32Array, [0, 0, 0], 1, -9);
    expect(cache.lookup(view(BigUint64Array, [11n, 12n, 13n], 4, 0n).view, found.view)).toBe(3);
    expect(Array.from(found.whole)).toEqual([-9, 0, 1, 2, -9, -9, -9]);

    // release with keys from a view (NaN around it would be rejected if read)
    cache.release(view(Int32Array, [0, 1, 2], 2, 99).view, view(Float64Array, [3, 2, 1], 1, NaN).view);
    expect(Array.from(cache.snapshot().key.subarray(0, 3))).toEqual([3, 2, 1]);

    // victims into a view shorter than the cached count
    const v = view(Int32Array, [0, 0], 3, -9);
    expect(cache.victims(0, v.view)).toBe(2);
    expect(Array.from(v.whole)).toEqual([-9, -9, -9, 2, 1, -9, -9, -9]);

    // offload / restore with views
    const host = view(Int32Array, [0], 1, -9);
    cache.offload(view(Int32Array, [2], 2, 0).view, host.view);
    expect(Array.from(host.whole)).toEqual([-9, 6, -9, -9, -9]);

    // table through views
    cache.tableAppend(view(Int32Array, [1, 1], 1, 7).view, view(Int32Array, [0, 1], 2, 5).view);
    const cells = view(Int32Array, [0, 0, 0], 2, -9);
    const lengths = view(Int32Array, [0], 1, -9);
    cache.tableRead(view(Int32Array, [1], 3, 9).view, cells.view, lengths.view);
    expect(Array.from(cells.whole)).toEqual([-9, -9, 0, 1, -1, -9, -9, -9]);
    expect(Array.from(lengths.whole)).toEqual([-9, 2, -9, -9, -9]);

    // payload through views
    const data = view(Uint8Array, [1, 2, 3, 4, 5, 6, 7, 8], 5, 0xee);
    cache.writePayload(ids(0, 1), data.view);
    const back = view(Uint8Array, new Array(8).fill(0), 3, 0xcc);
    cache.readPayload(ids(1, 0), back.view);
    expect(Array.from(back.whole)).toEqual([0xcc, 0xcc, 0xcc, 5, 6, 7, 8, 1, 2, 3, 4, 0xcc, 0xcc, 0xcc]);
  });

  it('hashes tokens from a view', () => {
    const whole = Uint32Array.from([9, 9, 1, 2, 3, 4, 9]);
    expect(Array.from(hashTokenBlocks(whole.subarray(2, 6), 2))).toEqual(Array.from(hashTokenBlocks(Uint32Array.from([1, 2, 3, 4]), 2)));
  });
});

describe('extreme values', () => {
  it('round-trip and order like the reference', () => {
    const options = { deviceCapacity: 6, hostCapacity: 2 };
    const cache = new KvCache({ ...options, backend: 'cpu' });
    const model = new ReferencePool(options);
    const MAX = 0x7fffffff;
    const bigHashes = hashes(2n ** 64n - 1n, 2n ** 63n, 2n ** 63n - 1n, 1n, 0xdeadbeefcafebaben, 2n ** 32n);
    for (const pool of [cache, model]) {
      const out = new Int32Array(6);
      pool.allocate(bigHashes, ids(MAX, 0, -1, MAX, 7, 7), ids(MAX, 0, 0, MAX - 1, 3, 3), out);
      pool.release(out, keys(-Number.MAX_VALUE, Number.MAX_VALUE, 5e-324, -5e-324, 1e308, -Infinity));
      pool.offload(ids(0), new Int32Array(1));
    }
    expect(diffSnapshots(model.snapshot(), cache.snapshot())).toEqual([]);
    const s = cache.snapshot();
    expect(s.hash[6]).toBe(2n ** 64n - 1n); // block 0's data, now on host
    expect(s.session[6]).toBe(MAX);
    expect(s.position[6]).toBe(MAX);
    expect(lookupAll(cache, [2n ** 64n - 1n, 2n ** 63n, 2n ** 63n - 1n])).toEqual([6, 1, 2]);
    // device victims: -Infinity (5), -5e-324 (3), 5e-324 (2), 1e308 (4), MAX_VALUE (1)
    const victims = new Int32Array(6);
    const n = cache.victims(0, victims);
    expect(Array.from(victims.subarray(0, n))).toEqual([5, 3, 2, 4, 1]);
    expect(setSessionKeysBoth(cache, model, MAX)).toBe(2); // blocks 3 and host 6 hold session MAX at positions >= MAX - 1
  });

  it('keeps ids usable at the edge of the id range', () => {
    const cache = cpuCache({ deviceCapacity: 3, hostCapacity: 1 });
    const [a, b, c] = allocate(cache, [1, 2, 3]);
    expect([a, b, c]).toEqual([0, 1, 2]);
    cache.release(ids(c), keys(0));
    const host = new Int32Array(1);
    cache.offload(ids(c), host);
    expect(host[0]).toBe(3); // the last id
    cache.setKeys(ids(3), keys(4));
    expect(cache.snapshot().key[3]).toBe(4);
  });
});

function setSessionKeysBoth(cache: KvCache, model: ReferencePool, session: number): number {
  const args = [ids(session), keys(1), ids(0x7fffffff - 1)] as const;
  const got = cache.setSessionKeys(...args);
  expect(got).toBe(model.setSessionKeys(...args));
  expect(diffSnapshots(model.snapshot(), cache.snapshot())).toEqual([]);
  return got;
}
