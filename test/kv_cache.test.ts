/**
 * KvCache block operations on the CPU backend, one describe per operation. Expected values come from
 * the contract (native/include/saga/block_pool.h) as reasoned in each test; the scenarios are also
 * replayed on the reference model and the snapshots compared.
 */
import { describe, expect, it } from 'vitest';
import { BlockState, KvCache, Tier } from '../lib/kv/kv_cache';
import { allocate, cpuCache, hashes, ids, keys, lookupAll, release, victimsOf } from './support/fixtures';
import { checkInvariants, diffSnapshots } from './support/pool_assertions';
import { ReferencePool } from './support/reference_pool';

const { Free, Cached, Referenced } = BlockState;

/** Runs the same calls on a cache and on the model and checks they end in the same state. */
function both(options: { deviceCapacity: number; hostCapacity?: number; payloadBytes?: number; tableRows?: number; tableCols?: number }, script: (pool: KvCache | ReferencePool) => void): KvCache {
  const cache = cpuCache(options);
  const model = new ReferencePool(options);
  script(cache);
  script(model);
  expect(diffSnapshots(model.snapshot(), cache.snapshot())).toEqual([]);
  checkInvariants(cache);
  return cache;
}

describe('a new cache', () => {
  it('has every block free, free queues in id order, an empty table', () => {
    const cache = cpuCache({ deviceCapacity: 3, hostCapacity: 2, tableRows: 2, tableCols: 2 });
    expect(cache.backend).toBe('cpu');
    expect(cache.counts()).toEqual({ deviceFree: 3, deviceCached: 0, deviceReferenced: 0, hostFree: 2, hostCached: 0 });
    const s = cache.snapshot();
    expect(Array.from(s.deviceFreeQueue)).toEqual([0, 1, 2]);
    expect(Array.from(s.hostFreeQueue)).toEqual([3, 4]);
    expect(Array.from(s.state)).toEqual([Free, Free, Free, Free, Free]);
    expect(Array.from(s.hash)).toEqual([0n, 0n, 0n, 0n, 0n]);
    expect(Array.from(s.refcount)).toEqual([0, 0, 0, 0, 0]);
    expect(Array.from(s.session)).toEqual([-1, -1, -1, -1, -1]);
    expect(Array.from(s.position)).toEqual([0, 0, 0, 0, 0]);
    expect(Array.from(s.key)).toEqual([0, 0, 0, 0, 0]);
    expect(Array.from(s.tableLengths)).toEqual([0, 0]);
    expect(Array.from(s.table)).toEqual([-1, -1, -1, -1]);
    expect(diffSnapshots(new ReferencePool({ deviceCapacity: 3, hostCapacity: 2, tableRows: 2, tableCols: 2 }).snapshot(), s)).toEqual([]);
  });

  it('derives the tier from the id', () => {
    const cache = cpuCache({ deviceCapacity: 3, hostCapacity: 2 });
    expect([0, 1, 2, 3, 4].map((id) => cache.tierOf(id))).toEqual([Tier.Device, Tier.Device, Tier.Device, Tier.Host, Tier.Host]);
  });

  it('hands out snapshots that are copies', () => {
    const cache = cpuCache({ deviceCapacity: 2 });
    const s = cache.snapshot();
    s.refcount[0] = 99;
    s.deviceFreeQueue[0] = 42;
    expect(cache.snapshot().refcount[0]).toBe(0);
    expect(cache.snapshot().deviceFreeQueue[0]).toBe(0);
  });
});

describe('allocate', () => {
  it('takes free blocks from the head of the free queue, referenced once, with hash, session and position', () => {
    const cache = cpuCache({ deviceCapacity: 4 });
    const out = new Int32Array(3);
    cache.allocate(hashes(11, 0, 13), ids(7, -1, 7), ids(0, 1, 5), out);
    expect(Array.from(out)).toEqual([0, 1, 2]);
    const s = cache.snapshot();
    expect(Array.from(s.state)).toEqual([Referenced, Referenced, Referenced, Free]);
    expect(Array.from(s.refcount)).toEqual([1, 1, 1, 0]);
    expect(Array.from(s.hash)).toEqual([11n, 0n, 13n, 0n]);
    expect(Array.from(s.session)).toEqual([7, -1, 7, -1]);
    expect(Array.from(s.position)).toEqual([0, 1, 5, 0]);
    expect(Array.from(s.key)).toEqual([0, 0, 0, 0]);
    expect(Array.from(s.deviceFreeQueue)).toEqual([3]);
    expect(cache.counts()).toEqual({ deviceFree: 1, deviceCached: 0, deviceReferenced: 3, hostFree: 0, hostCached: 0 });
    checkInvariants(cache, [11n, 13n]);
  });

  it('makes hashed blocks findable, blocks without a hash not', () => {
    const cache = cpuCache({ deviceCapacity: 4 });
    const [a] = allocate(cache, [21, 0]);
    expect(lookupAll(cache, [21])).toEqual([a]);
    expect(lookupAll(cache, [0])).toEqual([]);
  });

  it('with an empty batch changes nothing', () => {
    const cache = cpuCache({ deviceCapacity: 2 });
    const before = cache.snapshot();
    cache.allocate(hashes(), ids(), ids(), new Int32Array(0));
    expect(diffSnapshots(before, cache.snapshot())).toEqual([]);
  });

  it('uses every free block before evicting, then evicts device victims in eviction order', () => {
    // 5 device blocks: a..d cached with keys 3, 1, 2, 1 (b and d tie on key 1; d is deeper, so d goes
    // before b); block 4 stays free. Allocating 3 takes the free block 4 first, then the first two
    // victims d and b, in that order (each evicted block joins the free queue's tail, behind 4).
    const cache = cpuCache({ deviceCapacity: 5 });
    const [a, b, c, d] = allocate(cache, [1, 2, 3, 4], 0, 0);
    cache.release(ids(a, b, c, d), keys(3, 1, 2, 1));
    expect(victimsOf(cache, Tier.Device)).toEqual([d, b, c, a]);
    const out = new Int32Array(3);
    cache.allocate(hashes(31, 32, 33), ids(1, 1, 1), ids(0, 1, 2), out);
    expect(Array.from(out)).toEqual([4, d, b]);
    expect(lookupAll(cache, [4])).toEqual([]); // d's hash left the index
    expect(lookupAll(cache, [2])).toEqual([]); // b's too
    expect(lookupAll(cache, [1])).toEqual([a]);
    expect(lookupAll(cache, [3])).toEqual([c]);
    expect(victimsOf(cache, Tier.Device)).toEqual([c, a]);
    checkInvariants(cache, [1n, 2n, 3n, 4n, 31n, 32n, 33n]);
  });

  it('lets an evicted hash be allocated again', () => {
    const cache = cpuCache({ deviceCapacity: 1 });
    const [a] = allocate(cache, [5]);
    release(cache, [a]);
    const [b] = allocate(cache, [6]); // the only block is the victim: hash 5 leaves the index
    expect(b).toBe(a);
    expect(lookupAll(cache, [5])).toEqual([]);
    release(cache, [b]);
    const [c] = allocate(cache, [5]); // evicts hash 6, and 5 is no longer a duplicate
    expect(c).toBe(a);
    expect(lookupAll(cache, [5])).toEqual([c]);
    expect(lookupAll(cache, [6])).toEqual([]);
  });

  it('agrees with the reference model on a mixed scenario', () => {
    both({ deviceCapacity: 6 }, (pool) => {
      const out = new Int32Array(4);
      pool.allocate(hashes(1, 2, 0, 3), ids(0, 0, 1, 1), ids(0, 1, 2, 3), out);
      pool.release(ids(out[0], out[2], out[3]), keys(5, 6, 7));
      pool.allocate(hashes(9, 10, 11, 12), ids(2, 2, 2, 2), ids(0, 1, 2, 3), out);
    });
  });
});

describe('lookup', () => {
  it('returns the longest prefix of cached hashes and their ids, writing nothing past it', () => {
    const cache = cpuCache({ deviceCapacity: 4 });
    const [a, b, c] = allocate(cache, [101, 102, 103]);
    release(cache, [c]); // cached blocks are found as well as referenced ones
    const out = new Int32Array(5).fill(-9);
    expect(cache.lookup(hashes(101, 102, 103, 104, 101), out)).toBe(3);
    expect(Array.from(out)).toEqual([a, b, c, -9, -9]);
    out.fill(-9);
    expect(cache.lookup(hashes(101, 999, 103), out)).toBe(1);
    expect(Array.from(out)).toEqual([a, -9, -9, -9, -9]);
    expect(cache.lookup(hashes(102, 103), out)).toBe(2); // any hash, not only chain roots
  });

  it('stops at hash 0, finds nothing for an empty batch, and changes nothing', () => {
    const cache = cpuCache({ deviceCapacity: 4 });
    allocate(cache, [101, 0]);
    const before = cache.snapshot();
    const out = new Int32Array(2);
    expect(cache.lookup(hashes(0, 101), out)).toBe(0);
    expect(cache.lookup(hashes(), new Int32Array(0))).toBe(0);
    expect(diffSnapshots(before, cache.snapshot())).toEqual([]);
  });

  it('finds host blocks (which then need a restore)', () => {
    const cache = cpuCache({ deviceCapacity: 2, hostCapacity: 2 });
    const [a, b] = allocate(cache, [1, 2]);
    release(cache, [a, b]);
    const hostIds = new Int32Array(1);
    cache.offload(ids(b), hostIds);
    expect(lookupAll(cache, [1, 2])).toEqual([a, hostIds[0]]);
    expect(cache.tierOf(hostIds[0])).toBe(Tier.Host);
  });
});

describe('commit', () => {
  it('gives hashes to referenced blocks allocated without one, which then stay cached on release', () => {
    const cache = cpuCache({ deviceCapacity: 4 });
    const [a, b, c] = allocate(cache, [0, 0, 0]);
    cache.commit(ids(a, c), hashes(41, 43));
    expect(lookupAll(cache, [41])).toEqual([a]);
    expect(lookupAll(cache, [43])).toEqual([c]);
    const s = cache.snapshot();
    expect([s.hash[a], s.hash[b], s.hash[c]]).toEqual([41n, 0n, 43n]);
    release(cache, [a, b, c], 8);
    const t = cache.snapshot();
    expect([t.state[a], t.state[b], t.state[c]]).toEqual([Cached, Free, Cached]);
    expect(Array.from(t.deviceFreeQueue)).toEqual([3, b]); // b (no hash) went straight to the tail
    checkInvariants(cache, [41n, 43n]);
  });
});

describe('acquire', () => {
  it('takes a cached block out of the evictable set, keeping its key', () => {
    const cache = cpuCache({ deviceCapacity: 3 });
    const [a, b] = allocate(cache, [1, 2]);
    cache.release(ids(a, b), keys(4, 5));
    cache.acquire(ids(a));
    const s = cache.snapshot();
    expect(s.state[a]).toBe(Referenced);
    expect(s.refcount[a]).toBe(1);
    expect(s.key[a]).toBe(4);
    expect(victimsOf(cache, Tier.Device)).toEqual([b]);
    expect(cache.counts()).toEqual({ deviceFree: 1, deviceCached: 1, deviceReferenced: 1, hostFree: 0, hostCached: 0 });
  });

  it('counts a repeated id twice, and every reference needs its release', () => {
    const cache = cpuCache({ deviceCapacity: 2 });
    const [a] = allocate(cache, [1]);
    cache.acquire(ids(a, a));
    expect(cache.snapshot().refcount[a]).toBe(3);
    release(cache, [a, a]);
    expect(cache.snapshot().state[a]).toBe(Referenced);
    expect(cache.snapshot().refcount[a]).toBe(1);
    release(cache, [a], 9);
    expect(cache.snapshot().state[a]).toBe(Cached);
    expect(cache.snapshot().key[a]).toBe(9);
  });
});

describe('release', () => {
  it('makes a hashed block cached with its key, an unhashed one free at the tail of the free queue', () => {
    const cache = cpuCache({ deviceCapacity: 4 });
    const [a, b] = allocate(cache, [1, 0], 3, 0);
    cache.release(ids(a, b), keys(2.5, 7));
    const s = cache.snapshot();
    expect([s.state[a], s.refcount[a], s.key[a], s.hash[a], s.session[a], s.position[a]]).toEqual([Cached, 0, 2.5, 1n, 3, 0]);
    expect([s.state[b], s.refcount[b], s.key[b], s.hash[b], s.session[b], s.position[b]]).toEqual([Free, 0, 0, 0n, -1, 0]);
    expect(Array.from(s.deviceFreeQueue)).toEqual([2, 3, b]);
    expect(lookupAll(cache, [1])).toEqual([a]);
  });

  it('processes ids in order: the release that reaches zero sets the key', () => {
    const cache = cpuCache({ deviceCapacity: 2 });
    const [a] = allocate(cache, [1]);
    cache.acquire(ids(a));
    cache.release(ids(a, a), keys(5, 6));
    expect(cache.snapshot().key[a]).toBe(6);
  });

  it('leaves the key alone while references remain', () => {
    const cache = cpuCache({ deviceCapacity: 2 });
    const [a] = allocate(cache, [1]);
    cache.setKeys(ids(a), keys(3));
    cache.acquire(ids(a));
    cache.release(ids(a), keys(5));
    expect(cache.snapshot().key[a]).toBe(3);
    expect(cache.snapshot().state[a]).toBe(Referenced);
  });

  it('frees unhashed blocks in release order (each to the tail)', () => {
    const cache = cpuCache({ deviceCapacity: 4 });
    const [a, b, c, d] = allocate(cache, [0, 0, 0, 0]);
    release(cache, [c, a, d, b]);
    expect(Array.from(cache.snapshot().deviceFreeQueue)).toEqual([c, a, d, b]);
  });

  it('stores -0 as +0 and accepts infinite keys', () => {
    const cache = cpuCache({ deviceCapacity: 3 });
    const [a, b, c] = allocate(cache, [1, 2, 3]);
    cache.release(ids(a, b, c), keys(-0, Infinity, -Infinity));
    const k = cache.snapshot().key;
    expect(Object.is(k[a], 0)).toBe(true);
    expect([k[b], k[c]]).toEqual([Infinity, -Infinity]);
    expect(victimsOf(cache, Tier.Device)).toEqual([c, a, b]);
  });
});

describe('setKeys', () => {
  it('sets keys of referenced, cached and host blocks in order (a repeated id keeps its last key)', () => {
    const cache = cpuCache({ deviceCapacity: 3, hostCapacity: 1 });
    const [a, b, c] = allocate(cache, [1, 2, 3]);
    release(cache, [b, c]);
    const host = new Int32Array(1);
    cache.offload(ids(c), host);
    cache.setKeys(ids(a, b, host[0], b), keys(10, 20, 30, -0));
    const k = cache.snapshot().key;
    expect(k[a]).toBe(10);
    expect(Object.is(k[b], 0)).toBe(true);
    expect(k[host[0]]).toBe(30);
    expect(cache.snapshot().state[a]).toBe(Referenced); // setKeys never changes states
  });

  it('reorders the victims', () => {
    const cache = cpuCache({ deviceCapacity: 3 });
    const [a, b, c] = allocate(cache, [1, 2, 3]);
    cache.release(ids(a, b, c), keys(1, 2, 3));
    expect(victimsOf(cache, Tier.Device)).toEqual([a, b, c]);
    cache.setKeys(ids(a, c), keys(4, 0));
    expect(victimsOf(cache, Tier.Device)).toEqual([c, b, a]);
  });
});

describe('setSessionKeys', () => {
  it('re-keys the non-free blocks of a session from a position on and counts the updates', () => {
    const cache = cpuCache({ deviceCapacity: 8, hostCapacity: 2 });
    const s1 = allocate(cache, [1, 2, 3, 4], 1, 0); // session 1, positions 0..3
    const s2 = allocate(cache, [5, 6], 2, 0); // session 2
    const tmp = allocate(cache, [0], 1, 7); // session 1, position 7, freed below: must not count
    release(cache, tmp);
    release(cache, [s1[3]]);
    const host = new Int32Array(1);
    cache.offload(ids(s1[3]), host); // host blocks keep their session and position
    const updates = cache.setSessionKeys(ids(1), keys(50), ids(2));
    expect(updates).toBe(2); // s1[2] (position 2) and the host copy of s1[3] (position 3)
    const k = cache.snapshot().key;
    expect([k[s1[0]], k[s1[1]], k[s1[2]], k[host[0]], k[s2[0]], k[s2[1]]]).toEqual([0, 0, 50, 50, 0, 0]);
  });

  it('applies entries in order and counts every (block, entry) pair', () => {
    const cache = cpuCache({ deviceCapacity: 8 });
    const s1 = allocate(cache, [1, 2, 3], 1, 0);
    const s2 = allocate(cache, [4, 5], 2, 0);
    // entry 0 hits s1 positions 0..2 (3), entry 1 hits s1 position 2 (1), entry 2 hits s2 1 (1),
    // entry 3 (session 9) hits nothing.
    expect(cache.setSessionKeys(ids(1, 1, 2, 9), keys(7, -0, 3, 1), ids(0, 2, 1, 0))).toBe(5);
    const k = cache.snapshot().key;
    expect([k[s1[0]], k[s1[1]], k[s2[0]], k[s2[1]]]).toEqual([7, 7, 0, 3]);
    expect(Object.is(k[s1[2]], 0)).toBe(true);
    expect(cache.setSessionKeys(ids(), keys(), ids())).toBe(0);
  });
});

describe('victims', () => {
  it('orders cached blocks by key ascending, then deeper position first, then lower id', () => {
    const cache = cpuCache({ deviceCapacity: 6 });
    // ids 0..5; positions chosen so every tie-break is exercised:
    //   key 1: ids 0 (pos 2), 1 (pos 5), 2 (pos 5)  -> 1, 2 (pos 5, lower id first), then 0
    //   key 0: id 3 (pos 0)                           -> first of all
    //   key 2: ids 4 (pos 1), 5 (pos 9)               -> 5 then 4
    const out = new Int32Array(6);
    cache.allocate(hashes(1, 2, 3, 4, 5, 6), ids(0, 0, 0, 0, 0, 0), ids(2, 5, 5, 0, 1, 9), out);
    cache.release(ids(0, 1, 2, 3, 4, 5), keys(1, 1, 1, 0, 2, 2));
    expect(victimsOf(cache, Tier.Device)).toEqual([3, 1, 2, 0, 5, 4]);
  });

  it('writes the first min(k, cached) victims, returns how many, and changes nothing', () => {
    const cache = cpuCache({ deviceCapacity: 4 });
    const [a, b, c] = allocate(cache, [1, 2, 3]);
    cache.release(ids(a, b), keys(2, 1)); // c stays referenced: never a victim
    const before = cache.snapshot();
    const one = new Int32Array(1);
    expect(cache.victims(Tier.Device, one)).toBe(1);
    expect(one[0]).toBe(b);
    const many = new Int32Array(4).fill(-5);
    expect(cache.victims(Tier.Device, many)).toBe(2);
    expect(Array.from(many)).toEqual([b, a, -5, -5]);
    expect(cache.victims(Tier.Device, new Int32Array(0))).toBe(0);
    expect(cache.victims(Tier.Host, many)).toBe(0);
    expect(diffSnapshots(before, cache.snapshot())).toEqual([]);
    expect(c).toBe(2);
  });

  it('lists host victims separately', () => {
    const cache = cpuCache({ deviceCapacity: 3, hostCapacity: 3 });
    const [a, b, c] = allocate(cache, [1, 2, 3]);
    cache.release(ids(a, b, c), keys(3, 2, 1));
    const host = new Int32Array(2);
    cache.offload(ids(a, b), host); // host copies keep keys 3 and 2
    expect(victimsOf(cache, Tier.Host)).toEqual([host[1], host[0]]);
    expect(victimsOf(cache, Tier.Device)).toEqual([c]);
  });
});

describe('evict', () => {
  it('drops cached blocks of either tier to their free queue tails in order, hashes leave the index', () => {
    const cache = cpuCache({ deviceCapacity: 3, hostCapacity: 2 });
    const [a, b, c] = allocate(cache, [1, 2, 3]);
    release(cache, [a, b, c]);
    const host = new Int32Array(1);
    cache.offload(ids(a), host); // a's slot is free now; its data lives at host[0]
    cache.evict(ids(c, host[0], b));
    const s = cache.snapshot();
    expect(Array.from(s.deviceFreeQueue)).toEqual([a, c, b]);
    expect(Array.from(s.hostFreeQueue)).toEqual([4, host[0]]);
    expect(lookupAll(cache, [1])).toEqual([]);
    expect(lookupAll(cache, [2])).toEqual([]);
    expect(lookupAll(cache, [3])).toEqual([]);
    expect(cache.counts()).toEqual({ deviceFree: 3, deviceCached: 0, deviceReferenced: 0, hostFree: 2, hostCached: 0 });
    checkInvariants(cache, [1n, 2n, 3n]);
  });

  it('with an empty batch changes nothing', () => {
    const cache = cpuCache({ deviceCapacity: 2 });
    release(cache, allocate(cache, [1]));
    const before = cache.snapshot();
    cache.evict(ids());
    expect(diffSnapshots(before, cache.snapshot())).toEqual([]);
  });
});

describe('counts', () => {
  it('follows every state change', () => {
    const cache = cpuCache({ deviceCapacity: 4, hostCapacity: 2 });
    const [a, b, c] = allocate(cache, [1, 2, 0]);
    expect(cache.counts()).toEqual({ deviceFree: 1, deviceCached: 0, deviceReferenced: 3, hostFree: 2, hostCached: 0 });
    release(cache, [a, b, c]);
    expect(cache.counts()).toEqual({ deviceFree: 2, deviceCached: 2, deviceReferenced: 0, hostFree: 2, hostCached: 0 });
    cache.offload(ids(a), new Int32Array(1));
    expect(cache.counts()).toEqual({ deviceFree: 3, deviceCached: 1, deviceReferenced: 0, hostFree: 1, hostCached: 1 });
    cache.acquire(ids(b));
    expect(cache.counts()).toEqual({ deviceFree: 3, deviceCached: 0, deviceReferenced: 1, hostFree: 1, hostCached: 1 });
  });
});
