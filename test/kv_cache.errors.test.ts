/**
 * Every error of the block core. Each bad call is made on a cache holding blocks in every state (and
 * on the reference model built the same way); it must throw a SagaError with exactly the expected
 * code and leave the snapshot and counts exactly as they were. Each call has a single fault, often
 * behind valid entries earlier in the batch, so a half-applied batch would show.
 */
import { describe, expect, it } from 'vitest';
import type { SagaErrorCode } from '../lib/errors';
import { KvCache } from '../lib/kv/kv_cache';
import { cpuCache, hashes, ids, keys } from './support/fixtures';
import { diffSnapshots, expectRejected } from './support/pool_assertions';
import { ReferencePool } from './support/reference_pool';

type Pool = KvCache | ReferencePool;

const OPTIONS = { deviceCapacity: 6, hostCapacity: 3, payloadBytes: 4, tableRows: 2, tableCols: 2 };

/**
 * Blocks in every state (D = 6, H = 3, ids 0..8):
 *   0 ref       referenced once, hash 1, session 1 position 0
 *   1 refNoHash referenced once, no hash yet, session 1 position 1
 *   2 cached    cached on device, hash 2, key 1
 *   6 host      cached on host, hash 3 (offloaded from device block 3)
 *   3, 4, 5     free device blocks (queue [4, 5, 3]); 7, 8 free host blocks
 * Table row 0 holds [ref], row 1 is empty.
 */
function build(pool: Pool) {
  const out = new Int32Array(4);
  pool.allocate(hashes(1, 0, 2, 3), ids(1, 1, 2, 2), ids(0, 1, 0, 1), out);
  pool.release(ids(2, 3), keys(1, 2));
  const host = new Int32Array(1);
  pool.offload(ids(3), host);
  pool.tableAppend(ids(0), ids(0));
  return { ref: 0, refNoHash: 1, cached: 2, host: host[0], freeDevice: 3, freeHost: 7, outOfRange: 9 };
}

function world() {
  const cache = cpuCache(OPTIONS);
  const model = new ReferencePool(OPTIONS);
  const b = build(cache);
  build(model);
  expect(b.host).toBe(6);
  expect(Array.from(cache.snapshot().deviceFreeQueue)).toEqual([4, 5, 3]);
  expect(diffSnapshots(model.snapshot(), cache.snapshot())).toEqual([]);
  return { cache, model, ...b };
}

type World = ReturnType<typeof world>;

/**
 * The call must be rejected with `code`, changing nothing, by the cache and by the model alike.
 * `setup` (valid calls, made on both first) may return ids the bad call needs.
 */
function rejects<T = undefined>(
  code: SagaErrorCode,
  call: (pool: Pool, w: World, extra: T) => unknown,
  setup?: (pool: Pool, w: World) => T,
): void {
  const w = world();
  for (const pool of [w.cache, w.model] as Pool[]) {
    const extra = setup ? setup(pool, w) : (undefined as T);
    expectRejected(pool, code, () => call(pool, w, extra));
  }
  expect(diffSnapshots(w.model.snapshot(), w.cache.snapshot())).toEqual([]);
}

/** Setup: one more referenced block without a hash; returns its id. */
function anotherUnhashed(pool: Pool): number {
  const o = new Int32Array(1);
  pool.allocate(hashes(0), ids(0), ids(0), o);
  return o[0];
}

const out = (n: number) => new Int32Array(n);
const P = OPTIONS.payloadBytes;

describe('wrong array types (ERR_SAGA_BAD_ARGUMENT)', () => {
  const plain = [0] as unknown as Int32Array;
  const cases: [string, (p: Pool) => unknown][] = [
    ['lookup hashes as a plain Array', (p) => p.lookup([1n] as unknown as BigUint64Array, out(1))],
    ['lookup hashes as a BigInt64Array', (p) => p.lookup(BigInt64Array.of(1n) as unknown as BigUint64Array, out(1))],
    ['lookup outIds as a Uint32Array', (p) => p.lookup(hashes(1), new Uint32Array(1) as unknown as Int32Array)],
    ['allocate sessions as a Float32Array', (p) => p.allocate(hashes(9), new Float32Array(1) as unknown as Int32Array, ids(0), out(1))],
    ['allocate positions as a plain Array', (p) => p.allocate(hashes(9), ids(0), plain, out(1))],
    ['allocate hashes as a Float64Array', (p) => p.allocate(new Float64Array(1) as unknown as BigUint64Array, ids(0), ids(0), out(1))],
    ['commit ids as a plain Array', (p) => p.commit(plain, hashes(9))],
    ['commit hashes as a plain Array', (p) => p.commit(ids(1), [9n] as unknown as BigUint64Array)],
    ['acquire ids as a plain Array', (p) => p.acquire(plain)],
    ['acquire ids as a Float32Array', (p) => p.acquire(new Float32Array([0]) as unknown as Int32Array)],
    ['release keys as a Float32Array', (p) => p.release(ids(0), new Float32Array(1) as unknown as Float64Array)],
    ['release ids as a Uint8Array', (p) => p.release(new Uint8Array(1) as unknown as Int32Array, keys(0))],
    ['setKeys ids as a plain Array', (p) => p.setKeys(plain, keys(0))],
    ['setSessionKeys minPositions as a Float64Array', (p) => p.setSessionKeys(ids(1), keys(0), new Float64Array(1) as unknown as Int32Array)],
    ['victims outIds as a plain Array', (p) => p.victims(0, plain)],
    ['evict ids as a plain Array', (p) => p.evict([2] as unknown as Int32Array)],
    ['offload deviceIds as a Uint32Array', (p) => p.offload(Uint32Array.of(2) as unknown as Int32Array, out(1))],
    ['restore hostIds as a plain Array', (p) => p.restore([6] as unknown as Int32Array, out(1))],
    ['tableAppend rows as a plain Array', (p) => p.tableAppend([1] as unknown as Int32Array, ids(0))],
    ['tableTruncate lengths as a Float64Array', (p) => p.tableTruncate(ids(0), new Float64Array(1) as unknown as Int32Array)],
    ['tableFree rows as a plain Array', (p) => p.tableFree([0] as unknown as Int32Array)],
    ['tableRead outLengths as a plain Array', (p) => p.tableRead(ids(0), out(2), [0] as unknown as Int32Array)],
    ['writePayload data as a plain Array', (p) => p.writePayload(ids(0), [1, 2, 3, 4] as unknown as Uint8Array)],
    ['readPayload out as an Int8Array', (p) => p.readPayload(ids(0), new Int8Array(P) as unknown as Uint8Array)],
    ['lookup hashes as null', (p) => p.lookup(null as unknown as BigUint64Array, out(1))],
  ];
  it.each(cases)('%s', (_, call) => rejects('ERR_SAGA_BAD_ARGUMENT', call));
});

describe('wrong lengths (ERR_SAGA_BAD_ARGUMENT)', () => {
  const cases: [string, (p: Pool) => unknown][] = [
    ['lookup outIds shorter than hashes', (p) => p.lookup(hashes(1, 2), out(1))],
    ['allocate sessions shorter', (p) => p.allocate(hashes(9, 10), ids(0), ids(0, 1), out(2))],
    ['allocate positions longer', (p) => p.allocate(hashes(9), ids(0), ids(0, 1), out(2))],
    ['allocate outIds shorter', (p) => p.allocate(hashes(9, 10), ids(0, 0), ids(0, 1), out(1))],
    ['commit hashes longer than ids', (p) => p.commit(ids(1), hashes(9, 10))],
    ['release keys shorter than ids', (p) => p.release(ids(0, 1), keys(0))],
    ['setKeys keys longer than ids', (p) => p.setKeys(ids(0), keys(0, 1))],
    ['setSessionKeys keys shorter', (p) => p.setSessionKeys(ids(1, 2), keys(0), ids(0, 0))],
    ['setSessionKeys minPositions shorter', (p) => p.setSessionKeys(ids(1, 2), keys(0, 0), ids(0))],
    ['offload outHostIds shorter', (p) => p.offload(ids(2), out(0))],
    ['restore outDeviceIds shorter', (p) => p.restore(ids(6), out(0))],
    ['tableAppend ids longer than rows', (p) => p.tableAppend(ids(1), ids(0, 1))],
    ['tableTruncate lengths shorter than rows', (p) => p.tableTruncate(ids(0, 1), ids(0))],
    ['tableRead outIds shorter than rows x cols', (p) => p.tableRead(ids(0, 1), out(3), out(2))],
    ['tableRead outLengths shorter than rows', (p) => p.tableRead(ids(0, 1), out(4), out(1))],
    ['writePayload data shorter than ids x payloadBytes', (p) => p.writePayload(ids(0, 1), new Uint8Array(2 * P - 1))],
    ['writePayload data longer than ids x payloadBytes', (p) => p.writePayload(ids(0), new Uint8Array(P + 1))],
    ['readPayload out of the wrong size', (p) => p.readPayload(ids(0, 1), new Uint8Array(P))],
  ];
  it.each(cases)('%s', (_, call) => rejects('ERR_SAGA_BAD_ARGUMENT', call));
});

describe('other bad arguments (ERR_SAGA_BAD_ARGUMENT)', () => {
  const cases: [string, (p: Pool, w: World) => unknown][] = [
    ['victims of tier 2', (p) => p.victims(2 as 0, out(1))],
    ['victims of tier -1', (p) => p.victims(-1 as 0, out(1))],
    ['victims of tier "0"', (p) => p.victims('0' as unknown as 0, out(1))],
    ['allocate with a negative position', (p) => p.allocate(hashes(9, 10), ids(0, 0), ids(0, -1), out(2))],
    ['allocate with session -2', (p) => p.allocate(hashes(9, 10), ids(-1, -2), ids(0, 1), out(2))],
    ['commit hash 0', (p, w) => p.commit(ids(w.refNoHash), hashes(0))],
    ['setSessionKeys with a negative session', (p) => p.setSessionKeys(ids(1, -1), keys(0, 0), ids(0, 0))],
    ['setSessionKeys with a negative minPosition', (p) => p.setSessionKeys(ids(1, 1), keys(0, 0), ids(0, -1))],
    ['evict the same id twice', (p, w) => p.evict(ids(w.cached, w.host, w.cached))],
    ['offload the same id twice', (p, w) => p.offload(ids(w.cached, w.cached), out(2))],
    ['restore the same id twice', (p, w) => p.restore(ids(w.host, w.host), out(2))],
    ['tableTruncate to more than the row length', (p) => p.tableTruncate(ids(1, 0), ids(0, 2))],
    ['tableTruncate to a negative length', (p) => p.tableTruncate(ids(0), ids(-1))],
  ];
  it.each(cases)('%s', (_, call) => rejects('ERR_SAGA_BAD_ARGUMENT', call));

  it('commit of the same id twice', () =>
    rejects('ERR_SAGA_BAD_ARGUMENT', (p, w, other) => p.commit(ids(w.refNoHash, other, w.refNoHash), hashes(21, 22, 23)), anotherUnhashed));

  it('payload calls on a cache without payload', () => {
    const cache = cpuCache({ deviceCapacity: 2 });
    const o = out(1);
    cache.allocate(hashes(1), ids(0), ids(0), o);
    expectRejected(cache, 'ERR_SAGA_BAD_ARGUMENT', () => cache.writePayload(o, new Uint8Array(0)));
    expectRejected(cache, 'ERR_SAGA_BAD_ARGUMENT', () => cache.readPayload(o, new Uint8Array(0)));
  });
});

describe('unknown or freed ids (ERR_SAGA_UNKNOWN_BLOCK)', () => {
  const bad: [string, (w: World) => number][] = [
    ['-1', () => -1],
    ['id = blockCount', (w) => w.outOfRange],
    ['a huge id', () => 0x7fffffff],
    ['a free device block', (w) => w.freeDevice],
    ['a free host block', (w) => w.freeHost],
  ];
  const ops: [string, (p: Pool, w: World, id: number) => unknown][] = [
    ['commit', (p, w, id) => p.commit(ids(w.refNoHash, id), hashes(30, 31))],
    ['acquire', (p, w, id) => p.acquire(ids(w.ref, w.cached, id))],
    ['release', (p, w, id) => p.release(ids(w.ref, id), keys(0, 0))],
    ['setKeys', (p, w, id) => p.setKeys(ids(w.ref, w.host, id), keys(5, 5, 5))],
    ['evict', (p, w, id) => p.evict(ids(w.cached, id))],
    ['writePayload', (p, w, id) => p.writePayload(ids(w.ref, id), new Uint8Array(2 * P).fill(1))],
    ['readPayload', (p, w, id) => p.readPayload(ids(w.ref, id), new Uint8Array(2 * P))],
    ['tableAppend', (p, w, id) => p.tableAppend(ids(1, 1), ids(w.cached, id))],
  ];
  for (const [opName, op] of ops) {
    it.each(bad)(`${opName} of %s`, (_, pick) => rejects('ERR_SAGA_UNKNOWN_BLOCK', (p, w) => op(p, w, pick(w))));
  }
  it.each(bad.filter(([name]) => name !== 'a free host block'))('offload of %s', (_, pick) =>
    rejects('ERR_SAGA_UNKNOWN_BLOCK', (p, w) => p.offload(ids(w.cached, pick(w)), out(2))),
  );
  it.each(bad.filter(([name]) => name !== 'a free device block'))('restore of %s', (_, pick) =>
    rejects('ERR_SAGA_UNKNOWN_BLOCK', (p, w) => p.restore(ids(w.host, pick(w)), out(2))),
  );

  it('an id freed by release', () => {
    const cache = cpuCache({ deviceCapacity: 2 });
    const o = out(1);
    cache.allocate(hashes(0), ids(0), ids(0), o);
    cache.release(o, keys(0)); // no hash: the block is free again
    expectRejected(cache, 'ERR_SAGA_UNKNOWN_BLOCK', () => cache.acquire(o));
    expectRejected(cache, 'ERR_SAGA_UNKNOWN_BLOCK', () => cache.release(o, keys(0)));
    expectRejected(cache, 'ERR_SAGA_UNKNOWN_BLOCK', () => cache.setKeys(o, keys(0)));
  });

  it('an id freed by eviction', () => {
    const cache = cpuCache({ deviceCapacity: 2 });
    const o = out(1);
    cache.allocate(hashes(5), ids(0), ids(0), o);
    cache.release(o, keys(0));
    cache.evict(o);
    expectRejected(cache, 'ERR_SAGA_UNKNOWN_BLOCK', () => cache.acquire(o));
    expectRejected(cache, 'ERR_SAGA_UNKNOWN_BLOCK', () => cache.evict(o));
  });
});

describe('wrong block state (ERR_SAGA_BLOCK_STATE)', () => {
  const cases: [string, (p: Pool, w: World) => unknown][] = [
    ['commit of a cached block', (p, w) => p.commit(ids(w.refNoHash, w.cached), hashes(40, 41))],
    ['commit of a block that already has a hash', (p, w) => p.commit(ids(w.refNoHash, w.ref), hashes(40, 41))],
    ['commit of a host block', (p, w) => p.commit(ids(w.host), hashes(40))],
    ['acquire of a host block (restore it first)', (p, w) => p.acquire(ids(w.cached, w.host))],
    ['release of a host block', (p, w) => p.release(ids(w.ref, w.host), keys(0, 0))],
    ['evict of a referenced block', (p, w) => p.evict(ids(w.cached, w.ref))],
    ['evict of a referenced block without hash', (p, w) => p.evict(ids(w.refNoHash))],
    ['offload of a referenced block', (p, w) => p.offload(ids(w.cached, w.ref), out(2))],
    ['offload of a host block', (p, w) => p.offload(ids(w.host), out(1))],
    ['restore of a cached device block', (p, w) => p.restore(ids(w.host, w.cached), out(2))],
    ['restore of a referenced device block', (p, w) => p.restore(ids(w.ref), out(1))],
    ['tableAppend of a host block', (p, w) => p.tableAppend(ids(1, 1), ids(w.ref, w.host))],
  ];
  it.each(cases)('%s', (_, call) => rejects('ERR_SAGA_BLOCK_STATE', call));
});

describe('double release (ERR_SAGA_DOUBLE_RELEASE)', () => {
  const cases: [string, (p: Pool, w: World) => unknown][] = [
    ['a cached block (refcount 0)', (p, w) => p.release(ids(w.ref, w.cached), keys(0, 0))],
    ['the same id twice with refcount 1', (p, w) => p.release(ids(w.refNoHash, w.ref, w.ref), keys(0, 0, 0))],
  ];
  it.each(cases)('%s', (_, call) => rejects('ERR_SAGA_DOUBLE_RELEASE', call));

  it('more releases than references after an acquire (refcount 2, released 3 times)', () => {
    rejects('ERR_SAGA_DOUBLE_RELEASE', (p, w) => p.release(ids(w.ref, w.ref, w.ref), keys(0, 0, 0)), (p, w) => p.acquire(ids(w.ref)));
    const w = world();
    w.cache.acquire(ids(w.ref));
    w.cache.release(ids(w.ref, w.ref), keys(0, 0)); // exactly as many releases as references: fine
    expect(w.cache.snapshot().state[w.ref]).toBe(1);
  });

  it('a block released to zero and then released again', () => {
    const cache = cpuCache({ deviceCapacity: 2 });
    const o = out(1);
    cache.allocate(hashes(3), ids(0), ids(0), o);
    cache.release(o, keys(0));
    expectRejected(cache, 'ERR_SAGA_DOUBLE_RELEASE', () => cache.release(o, keys(0)));
  });
});

describe('full pool (ERR_SAGA_OUT_OF_BLOCKS)', () => {
  // world: 3 free + 1 cached device blocks = 4 available; 3 host slots.
  it('allocate of more than free + cached device blocks', () =>
    rejects('ERR_SAGA_OUT_OF_BLOCKS', (p) => p.allocate(hashes(0, 0, 0, 0, 0), ids(0, 0, 0, 0, 0), ids(0, 0, 0, 0, 0), out(5))));

  it('allocate of exactly free + cached device blocks succeeds (the cached one is evicted)', () => {
    const w = world();
    for (const pool of [w.cache, w.model] as Pool[]) pool.allocate(hashes(0, 0, 0, 0), ids(0, 0, 0, 0), ids(0, 0, 0, 0), out(4));
    expect(w.cache.counts()).toEqual({ deviceFree: 0, deviceCached: 0, deviceReferenced: 6, hostFree: 2, hostCached: 1 });
    expect(diffSnapshots(w.model.snapshot(), w.cache.snapshot())).toEqual([]);
  });

  it('allocate when every device block is referenced', () => {
    const cache = cpuCache({ deviceCapacity: 2 });
    cache.allocate(hashes(1, 2), ids(0, 0), ids(0, 1), out(2));
    expectRejected(cache, 'ERR_SAGA_OUT_OF_BLOCKS', () => cache.allocate(hashes(3), ids(0), ids(0), out(1)));
  });

  it('offload of more blocks than the host capacity', () => {
    const cache = cpuCache({ deviceCapacity: 4, hostCapacity: 1 });
    const o = out(2);
    cache.allocate(hashes(1, 2), ids(0, 0), ids(0, 1), o);
    cache.release(o, keys(0, 0));
    expectRejected(cache, 'ERR_SAGA_OUT_OF_BLOCKS', () => cache.offload(o, out(2)));
  });

  it('offload to a cache without a host tier', () => {
    const cache = cpuCache({ deviceCapacity: 2 });
    const o = out(1);
    cache.allocate(hashes(1), ids(0), ids(0), o);
    cache.release(o, keys(0));
    expectRejected(cache, 'ERR_SAGA_OUT_OF_BLOCKS', () => cache.offload(o, out(1)));
  });

  it('restore of more blocks than free + cached device blocks', () => {
    const cache = cpuCache({ deviceCapacity: 2, hostCapacity: 2 });
    const o = out(2);
    cache.allocate(hashes(1, 2), ids(0, 0), ids(0, 1), o);
    cache.release(o, keys(0, 0));
    const host = out(2);
    cache.offload(o, host);
    cache.allocate(hashes(0), ids(0), ids(0), out(1)); // one device block referenced, one free
    expectRejected(cache, 'ERR_SAGA_OUT_OF_BLOCKS', () => cache.restore(host, out(2)));
  });
});

describe('duplicate hash (ERR_SAGA_DUPLICATE_HASH)', () => {
  const cases: [string, (p: Pool, w: World) => unknown][] = [
    ['allocate of a hash already cached on device', (p) => p.allocate(hashes(9, 2), ids(0, 0), ids(0, 1), out(2))],
    ['allocate of a hash held by a referenced block', (p) => p.allocate(hashes(1), ids(0), ids(0), out(1))],
    ['allocate of a hash cached on host', (p) => p.allocate(hashes(3), ids(0), ids(0), out(1))],
    ['allocate repeating a hash within the batch', (p) => p.allocate(hashes(9, 0, 9), ids(0, 0, 0), ids(0, 1, 2), out(3))],
    ['commit of a hash already cached', (p, w) => p.commit(ids(w.refNoHash), hashes(2))],
    ['commit of a hash cached on host', (p, w) => p.commit(ids(w.refNoHash), hashes(3))],
  ];
  it.each(cases)('%s', (_, call) => rejects('ERR_SAGA_DUPLICATE_HASH', call));

  it('commit repeating a hash within the batch', () =>
    rejects('ERR_SAGA_DUPLICATE_HASH', (p, w, other) => p.commit(ids(w.refNoHash, other), hashes(50, 50)), anotherUnhashed));

  it('allows several blocks without a hash in one batch', () => {
    const w = world();
    w.cache.allocate(hashes(0, 0, 0), ids(0, 0, 0), ids(0, 1, 2), out(3));
    expect(w.cache.counts().deviceReferenced).toBe(5);
  });
});

describe('NaN keys (ERR_SAGA_BAD_KEY)', () => {
  const cases: [string, (p: Pool, w: World) => unknown][] = [
    ['release', (p, w) => p.release(ids(w.refNoHash, w.ref), keys(1, NaN))],
    ['setKeys', (p, w) => p.setKeys(ids(w.cached, w.host), keys(2, NaN))],
    ['setSessionKeys', (p) => p.setSessionKeys(ids(1, 2), keys(3, NaN), ids(0, 0))],
  ];
  it.each(cases)('%s', (_, call) => rejects('ERR_SAGA_BAD_KEY', call));
});

describe('block table errors', () => {
  const rowCases: [string, (p: Pool, w: World) => unknown][] = [
    ['tableAppend to row -1', (p, w) => p.tableAppend(ids(1, -1), ids(w.ref, w.ref))],
    ['tableAppend to row = tableRows', (p, w) => p.tableAppend(ids(1, 2), ids(w.ref, w.ref))],
    ['tableTruncate of row 2', (p) => p.tableTruncate(ids(0, 2), ids(0, 0))],
    ['tableFree of row -1', (p) => p.tableFree(ids(0, -1))],
    ['tableRead of row 2', (p) => p.tableRead(ids(0, 2), out(4), out(2))],
  ];
  it.each(rowCases)('ERR_SAGA_TABLE_ROW: %s', (_, call) => rejects('ERR_SAGA_TABLE_ROW', call));

  it('ERR_SAGA_TABLE_ROW: any row of a cache without a table', () => {
    const cache = cpuCache({ deviceCapacity: 2 });
    const o = out(1);
    cache.allocate(hashes(0), ids(0), ids(0), o);
    expectRejected(cache, 'ERR_SAGA_TABLE_ROW', () => cache.tableAppend(ids(0), o));
    expectRejected(cache, 'ERR_SAGA_TABLE_ROW', () => cache.tableRead(ids(0), out(0), out(1)));
  });

  const fullCases: [string, (p: Pool, w: World) => unknown][] = [
    // row 0 holds 1 of 2 columns
    ['appending 2 to a row with 1 free column', (p, w) => p.tableAppend(ids(0, 0), ids(w.refNoHash, w.cached))],
    ['filling a row, then one more in the same batch', (p, w) => p.tableAppend(ids(1, 0, 1, 1), ids(w.ref, w.ref, w.ref, w.ref))],
  ];
  it.each(fullCases)('ERR_SAGA_TABLE_FULL: %s', (_, call) => rejects('ERR_SAGA_TABLE_FULL', call));

  it('ERR_SAGA_TABLE_FULL: any append to a table of width 0', () => {
    const cache = cpuCache({ deviceCapacity: 2, tableRows: 1, tableCols: 0 });
    const o = out(1);
    cache.allocate(hashes(0), ids(0), ids(0), o);
    expectRejected(cache, 'ERR_SAGA_TABLE_FULL', () => cache.tableAppend(ids(0), o));
  });
});
