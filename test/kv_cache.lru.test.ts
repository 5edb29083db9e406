/**
 * LRU is the special case key = release time. vLLM v1 keeps cached blocks in a free queue: a finished
 * request's blocks are appended tail-first (deepest block first), a cache hit takes a block out, and
 * eviction pops the head. With keys = release time, the pool's victims must come out in exactly that
 * order: oldest release first, and within one release the deeper block first.
 */
import { describe, expect, it } from 'vitest';
import type { KvCache } from '../lib/kv/kv_cache';
import { Tier } from '../lib/kv/kv_cache';
import { allocate, cpuCache, ids, lookupAll, victimsOf } from './support/fixtures';
import { checkInvariants } from './support/pool_assertions';

/** Releases a request's blocks tail-first at time `now` (the key), as a vLLM scheduler would. */
function finish(cache: KvCache, blocks: number[], now: number): void {
  const tailFirst = [...blocks].reverse();
  cache.release(Int32Array.from(tailFirst), new Float64Array(tailFirst.length).fill(now));
}

describe('LRU as keys', () => {
  it('evicts oldest request first, each request tail first', () => {
    const cache = cpuCache({ deviceCapacity: 8 });
    const a = allocate(cache, [11, 12, 13], 1); // request A: 3 blocks at positions 0..2
    const b = allocate(cache, [21, 22], 2); // request B
    finish(cache, b, 1); // B finishes first (t = 1) ...
    finish(cache, a, 2); // ... then A (t = 2)
    // vLLM's queue after these: B reversed, then A reversed.
    expect(victimsOf(cache, Tier.Device)).toEqual([b[1], b[0], a[2], a[1], a[0]]);

    // A new request hits A's first two blocks: they leave the queue; the rest keeps its order.
    cache.acquire(ids(a[0], a[1]));
    expect(victimsOf(cache, Tier.Device)).toEqual([b[1], b[0], a[2]]);
    const c = allocate(cache, [31], 3, 2);
    finish(cache, [a[0], a[1], ...c], 3); // t = 3: tail first: c[0], a[1], a[0] at the queue's end
    expect(victimsOf(cache, Tier.Device)).toEqual([b[1], b[0], a[2], c[0], a[1], a[0]]);

    // 8 blocks, 6 cached, 2 free: allocating 4 uses the 2 free ones, then evicts the queue head (B's).
    allocate(cache, [0, 0, 0, 0], 4);
    expect(lookupAll(cache, [21])).toEqual([]);
    expect(lookupAll(cache, [22])).toEqual([]);
    expect(lookupAll(cache, [11, 12, 13])).toEqual(a);
    expect(victimsOf(cache, Tier.Device)).toEqual([a[2], c[0], a[1], a[0]]);
  });

  it('matches a simulated vLLM free queue over a long run of overlapping multi-turn requests', () => {
    const D = 24;
    const cache = cpuCache({ deviceCapacity: D });
    // vLLM's free queue restricted to cached blocks (unhashed blocks go to the pool's free queue).
    let queue: number[] = [];
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const turns = new Map<number, number>(); // conversation -> prompt blocks of its last request
    const active: { blocks: number[] }[] = [];
    let now = 0;
    let evictions = 0;
    let hits = 0;
    for (let step = 0; step < 400; step++) {
      if (active.length < 2 && (active.length === 0 || rand(2) === 0)) {
        // start a request of conversation c: its prompt extends the conversation's last prompt
        const c = rand(5);
        const length = Math.min((turns.get(c) ?? 0) + 1 + rand(3), 7);
        turns.set(c, length);
        const prompt = Array.from({ length }, (_, i) => BigInt(c * 1000 + i + 1));
        const hit = lookupAll(cache, prompt);
        cache.acquire(Int32Array.from(hit));
        queue = queue.filter((id) => !hit.includes(id));
        hits += hit.length;
        const need = length - hit.length + 1; // the rest of the prompt, plus a partial block for the output
        const counts = cache.counts();
        if (need > counts.deviceFree + counts.deviceCached) {
          cache.release(Int32Array.from(hit).reverse(), new Float64Array(hit.length).fill(++now));
          queue.push(...[...hit].reverse());
          continue;
        }
        const evicted = Math.max(0, need - counts.deviceFree);
        const fresh = allocate(cache, [...prompt.slice(hit.length), 0n], c, hit.length);
        queue = queue.slice(evicted); // eviction pops the head
        evictions += evicted;
        active.push({ blocks: [...hit, ...fresh] });
      } else {
        // finish the oldest active request at a new time
        const { blocks } = active.shift()!;
        const before = cache.snapshot();
        finish(cache, blocks, ++now);
        // blocks whose last reference went now join the queue tail-first; partial blocks are freed
        for (const id of [...blocks].reverse()) {
          if (before.refcount[id] === 1 && before.hash[id] !== 0n) queue.push(id);
        }
      }
      expect(victimsOf(cache, Tier.Device)).toEqual(queue);
    }
    checkInvariants(cache);
    // the run exercised what it claims to
    expect(evictions).toBeGreaterThan(10);
    expect(hits).toBeGreaterThan(10);
  });
});
