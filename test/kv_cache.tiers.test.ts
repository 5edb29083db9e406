/**
 * The host tier: offload and restore (metadata and payload bytes move together, victims make room),
 * and writePayload / readPayload.
 */
import { describe, expect, it } from 'vitest';
import { BlockState, Tier } from '../lib/kv/kv_cache';
import { allocate, cpuCache, ids, keys, lookupAll, release, victimsOf } from './support/fixtures';
import { checkInvariants, diffSnapshots } from './support/pool_assertions';
import { ReferencePool } from './support/reference_pool';

const { Free, Cached, Referenced } = BlockState;

/** Distinct recognisable bytes for block `tag`: tag, tag+1, ... (mod 256). */
function bytesFor(tag: number, payloadBytes: number): Uint8Array {
  return Uint8Array.from({ length: payloadBytes }, (_, i) => (tag * 31 + i) & 0xff);
}

function readOne(cache: { readPayload(ids: Int32Array, out: Uint8Array): void; payloadBytes: number }, id: number): Uint8Array {
  const out = new Uint8Array(cache.payloadBytes);
  cache.readPayload(ids(id), out);
  return out;
}

describe('writePayload / readPayload', () => {
  it('round-trips payloadBytes per id, in order, for device and host blocks', () => {
    const P = 8;
    const cache = cpuCache({ deviceCapacity: 4, hostCapacity: 2, payloadBytes: P });
    const [a, b, c] = allocate(cache, [1, 2, 3]);
    const data = new Uint8Array(3 * P);
    data.set(bytesFor(1, P), 0);
    data.set(bytesFor(2, P), P);
    data.set(bytesFor(3, P), 2 * P);
    cache.writePayload(ids(a, b, c), data);
    const out = new Uint8Array(3 * P);
    cache.readPayload(ids(c, a, b), out);
    expect(Array.from(out.subarray(0, P))).toEqual(Array.from(bytesFor(3, P)));
    expect(Array.from(out.subarray(P, 2 * P))).toEqual(Array.from(bytesFor(1, P)));
    expect(Array.from(out.subarray(2 * P))).toEqual(Array.from(bytesFor(2, P)));
  });

  it('applies a repeated id in order (the last write wins) and changes no metadata', () => {
    const P = 4;
    const cache = cpuCache({ deviceCapacity: 2, payloadBytes: P });
    const [a] = allocate(cache, [1]);
    const before = cache.snapshot();
    const data = new Uint8Array(2 * P);
    data.set(bytesFor(5, P), 0);
    data.set(bytesFor(6, P), P);
    cache.writePayload(ids(a, a), data);
    expect(Array.from(readOne(cache, a))).toEqual(Array.from(bytesFor(6, P)));
    expect(diffSnapshots(before, cache.snapshot())).toEqual([]);
  });

  it('accepts Buffers (Uint8Array subclasses) and empty batches', () => {
    const cache = cpuCache({ deviceCapacity: 2, payloadBytes: 3 });
    const [a] = allocate(cache, [1]);
    cache.writePayload(ids(a), Buffer.from([7, 8, 9]));
    const out = Buffer.alloc(3);
    cache.readPayload(ids(a), out);
    expect(Array.from(out)).toEqual([7, 8, 9]);
    cache.writePayload(ids(), new Uint8Array(0));
    cache.readPayload(ids(), new Uint8Array(0));
  });
});

describe('offload', () => {
  it('moves cached device blocks to host slots from the host free head, keeping hash, session, position, key and bytes', () => {
    const P = 16;
    const cache = cpuCache({ deviceCapacity: 4, hostCapacity: 3, payloadBytes: P });
    const [a, b] = allocate(cache, [11, 12], 5, 3); // session 5, positions 3 and 4
    cache.writePayload(ids(a), bytesFor(11, P));
    cache.writePayload(ids(b), bytesFor(12, P));
    cache.release(ids(a, b), keys(1.5, 2.5));
    const out = new Int32Array(2);
    cache.offload(ids(b, a), out);
    expect(Array.from(out)).toEqual([4, 5]); // host free queue was [4, 5, 6]
    const s = cache.snapshot();
    for (const [from, to, hash, position, key] of [
      [b, 4, 12n, 4, 2.5],
      [a, 5, 11n, 3, 1.5],
    ] as const) {
      expect([s.state[to], s.refcount[to], s.hash[to], s.session[to], s.position[to], s.key[to]]).toEqual([Cached, 0, hash, 5, position, key]);
      expect([s.state[from], s.hash[from], s.session[from], s.position[from], s.key[from]]).toEqual([Free, 0n, -1, 0, 0]);
    }
    expect(Array.from(s.deviceFreeQueue)).toEqual([2, 3, b, a]); // device blocks join the tail in order
    expect(Array.from(s.hostFreeQueue)).toEqual([6]);
    expect(lookupAll(cache, [11, 12])).toEqual([5, 4]);
    expect(Array.from(readOne(cache, 4))).toEqual(Array.from(bytesFor(12, P)));
    expect(Array.from(readOne(cache, 5))).toEqual(Array.from(bytesFor(11, P)));
    checkInvariants(cache, [11n, 12n]);
  });

  it('evicts host victims (in eviction order) when the host tier is full', () => {
    const cache = cpuCache({ deviceCapacity: 4, hostCapacity: 2 });
    const [a, b, c, d] = allocate(cache, [1, 2, 3, 4]);
    cache.release(ids(a, b, c, d), keys(5, 1, 7, 8));
    const first = new Int32Array(2);
    cache.offload(ids(a, b), first); // host: a's copy (key 5) at 4, b's copy (key 1) at 5
    expect(Array.from(first)).toEqual([4, 5]);
    expect(victimsOf(cache, Tier.Host)).toEqual([5, 4]);
    const second = new Int32Array(1);
    cache.offload(ids(c), second); // needs 1 slot: evicts b's copy (key 1) first, and takes its slot
    expect(second[0]).toBe(5);
    expect(lookupAll(cache, [2])).toEqual([]);
    expect(lookupAll(cache, [1, 3])).toEqual([4, 5]);
    expect(cache.snapshot().key[5]).toBe(7);
    checkInvariants(cache, [1n, 2n, 3n, 4n]);
  });

  it('evicts only as many host victims as missing, and the model agrees', () => {
    const options = { deviceCapacity: 6, hostCapacity: 3 };
    const cache = cpuCache(options);
    const model = new ReferencePool(options);
    for (const pool of [cache, model]) {
      const out = new Int32Array(6);
      pool.allocate(BigUint64Array.of(1n, 2n, 3n, 4n, 5n, 6n), new Int32Array(6), Int32Array.of(0, 1, 2, 3, 4, 5), out);
      pool.release(out, keys(6, 5, 4, 3, 2, 1));
      pool.offload(ids(0, 1), new Int32Array(2)); // host has 1 free slot left
      const hostOut = new Int32Array(3);
      pool.offload(ids(2, 3, 4), hostOut); // 2 host victims evicted
    }
    expect(diffSnapshots(model.snapshot(), cache.snapshot())).toEqual([]);
    expect(cache.counts()).toEqual({ deviceFree: 5, deviceCached: 1, deviceReferenced: 0, hostFree: 0, hostCached: 3 });
  });
});

describe('restore', () => {
  it('moves cached host blocks back to device slots as Cached (not referenced), bytes and key included', () => {
    const P = 8;
    const cache = cpuCache({ deviceCapacity: 3, hostCapacity: 2, payloadBytes: P });
    const [a] = allocate(cache, [9], 2, 6);
    cache.writePayload(ids(a), bytesFor(9, P));
    cache.release(ids(a), keys(3.25));
    const host = new Int32Array(1);
    cache.offload(ids(a), host);
    // device free queue is now [1, 2, a]: restore takes the head, block 1
    const back = new Int32Array(1);
    cache.restore(host, back);
    expect(back[0]).toBe(1);
    const s = cache.snapshot();
    expect([s.state[1], s.refcount[1], s.hash[1], s.session[1], s.position[1], s.key[1]]).toEqual([Cached, 0, 9n, 2, 6, 3.25]);
    expect(s.state[host[0]]).toBe(Free);
    expect(Array.from(s.hostFreeQueue)).toEqual([4, host[0]]);
    expect(Array.from(readOne(cache, 1))).toEqual(Array.from(bytesFor(9, P)));
    expect(lookupAll(cache, [9])).toEqual([1]);
    cache.acquire(back);
    expect(cache.snapshot().state[1]).toBe(Referenced);
    checkInvariants(cache, [9n]);
  });

  it('evicts device victims when no device block is free', () => {
    const cache = cpuCache({ deviceCapacity: 2, hostCapacity: 1 });
    const [a, b] = allocate(cache, [1, 2]);
    cache.release(ids(a, b), keys(4, 3));
    const host = new Int32Array(1);
    cache.offload(ids(a), host); // device: a free, b cached (key 3)
    allocate(cache, [0]); // takes a's slot: no free device block left
    const back = new Int32Array(1);
    cache.restore(host, back); // evicts b, the only device victim
    expect(back[0]).toBe(b);
    expect(lookupAll(cache, [2])).toEqual([]);
    expect(lookupAll(cache, [1])).toEqual([b]);
    expect(cache.snapshot().key[b]).toBe(4);
    checkInvariants(cache, [1n, 2n]);
  });

  it('preserves payload bytes across a full offload / restore round trip of many blocks', () => {
    const P = 32;
    const n = 6;
    const cache = cpuCache({ deviceCapacity: n, hostCapacity: n, payloadBytes: P });
    const dev = allocate(cache, [1, 2, 3, 4, 5, 6]);
    const data = new Uint8Array(n * P);
    dev.forEach((_, i) => data.set(bytesFor(100 + i, P), i * P));
    cache.writePayload(Int32Array.from(dev), data);
    release(cache, dev);
    const host = new Int32Array(n);
    cache.offload(Int32Array.from(dev), host);
    // scribble over the device slots, so a restore that copied nothing would be caught
    const scratch = allocate(cache, [0, 0, 0, 0, 0, 0]);
    cache.writePayload(Int32Array.from(scratch), new Uint8Array(n * P).fill(0xee));
    release(cache, scratch);
    const back = new Int32Array(n);
    cache.restore(host, back);
    const out = new Uint8Array(n * P);
    cache.readPayload(back, out);
    expect(Array.from(out)).toEqual(Array.from(data));
    expect(lookupAll(cache, [1, 2, 3, 4, 5, 6])).toEqual(Array.from(back));
  });
});
