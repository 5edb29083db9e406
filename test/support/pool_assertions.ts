/**
 * Shared helpers for the block-core tests: typed-array shorthands, snapshot comparison, "this bad call
 * throws exactly this code and changes nothing", and the pool invariants checked after every step of
 * the property tests.
 */
import { expect } from 'vitest';
import { SagaError, type SagaErrorCode } from '../../lib/errors';
import type { KvCache, KvState } from '../../lib/kv/kv_cache';
import { CACHED, FREE, REFERENCED, victimCompare, type Snapshot } from './reference_pool';

export const ids = (...values: number[]): Int32Array => Int32Array.from(values);
export const i32 = ids;
export const hashes = (...values: (bigint | number)[]): BigUint64Array => BigUint64Array.from(values.map((v) => BigInt(v)));
export const keys = (...values: number[]): Float64Array => Float64Array.from(values);

/** Either a KvCache or a ReferencePool: the calls the helpers need. */
export interface PoolLike {
  snapshot(): KvState | Snapshot;
  counts(): { deviceFree: number; deviceCached: number; deviceReferenced: number; hostFree: number; hostCached: number };
}

const FIELDS = ['hash', 'refcount', 'state', 'session', 'position', 'key', 'deviceFreeQueue', 'hostFreeQueue', 'tableLengths', 'table'] as const;

/**
 * Every difference between two snapshots, as readable lines (empty when equal). Numbers compare with
 * Object.is, so a -0 key differs from a +0 one: the contract normalises -0 to +0.
 */
export function diffSnapshots(expected: KvState | Snapshot, actual: KvState | Snapshot): string[] {
  const out: string[] = [];
  for (const field of FIELDS) {
    const a = expected[field] as ArrayLike<number | bigint>;
    const b = actual[field] as ArrayLike<number | bigint>;
    if (a === undefined || b === undefined) {
      out.push(`${field}: missing (${a === undefined ? 'expected' : 'actual'})`);
      continue;
    }
    if (a.constructor !== b.constructor) out.push(`${field}: ${a.constructor.name} vs ${b.constructor.name}`);
    if (a.length !== b.length) {
      out.push(`${field}: length ${a.length} vs ${b.length}: [${Array.from(a).join(',')}] vs [${Array.from(b).join(',')}]`);
      continue;
    }
    for (let i = 0; i < a.length; i++) {
      if (!Object.is(a[i], b[i])) out.push(`${field}[${i}]: expected ${fmt(a[i])}, got ${fmt(b[i])}`);
    }
  }
  return out;
}

function fmt(v: number | bigint): string {
  return Object.is(v, -0) ? '-0' : String(v);
}

/** The error thrown by `fn`, or a failure if it returned. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw, it returned');
}

/**
 * `fn` must throw a SagaError with exactly `code`, and the pool's snapshot and counts afterwards must
 * equal those before: a rejected call changes nothing.
 */
export function expectRejected(pool: PoolLike, code: SagaErrorCode, fn: () => unknown): SagaError {
  const before = pool.snapshot();
  const countsBefore = pool.counts();
  const err = thrown(fn);
  expect(err).toBeInstanceOf(SagaError);
  expect((err as SagaError).code).toBe(code);
  expect(diffSnapshots(before, pool.snapshot())).toEqual([]);
  expect(pool.counts()).toEqual(countsBefore);
  return err as SagaError;
}

/** The counts a snapshot implies. */
export function countsOf(s: KvState | Snapshot, deviceCapacity: number) {
  const c = { deviceFree: 0, deviceCached: 0, deviceReferenced: 0, hostFree: 0, hostCached: 0 };
  for (let id = 0; id < s.state.length; id++) {
    const st = s.state[id];
    if (id < deviceCapacity) {
      if (st === FREE) c.deviceFree++;
      else if (st === CACHED) c.deviceCached++;
      else c.deviceReferenced++;
    } else if (st === FREE) c.hostFree++;
    else c.hostCached++;
  }
  return c;
}

/** Eviction order computed from a snapshot alone: cached blocks of the tier sorted by (key, -position, id). */
export function victimsFromSnapshot(s: KvState | Snapshot, deviceCapacity: number, tier: number): number[] {
  const out: { id: number; key: number; position: number }[] = [];
  for (let id = 0; id < s.state.length; id++) {
    if (s.state[id] === CACHED && (id < deviceCapacity ? 0 : 1) === tier) out.push({ id, key: s.key[id], position: s.position[id] });
  }
  return out.sort(victimCompare).map((b) => b.id);
}

/**
 * The pool's invariants, checked on a KvCache (its own snapshot, counts, lookup and victims):
 * - ids [0, D) are device blocks, [D, D + H) host blocks; a block is Free exactly when it sits in its
 *   own tier's free queue, once; host blocks are never Referenced; refcount > 0 exactly when Referenced;
 * - free blocks read hash 0, refcount 0, session -1, position 0, key 0; cached blocks have a hash;
 * - the counts add up to the capacities and agree with the states;
 * - hashes of non-free blocks are distinct, each is found by lookup at its block, and no hash in
 *   `probeHashes` that no block holds is found;
 * - victims(tier) lists every cached block of the tier, in (key asc, position desc, id asc) order;
 * - table rows are within [0, cols] long and -1 past their length.
 */
export function checkInvariants(cache: KvCache, probeHashes: Iterable<bigint> = []): void {
  const s = cache.snapshot();
  const D = cache.deviceCapacity;
  const H = cache.hostCapacity;
  const N = D + H;
  const problems: string[] = [];
  for (const field of ['hash', 'refcount', 'state', 'session', 'position', 'key'] as const) {
    if (s[field].length !== N) problems.push(`${field} has ${s[field].length} entries, ${N} blocks`);
  }
  const inQueue = new Map<number, number>();
  for (const [queue, lo, hi] of [
    [s.deviceFreeQueue, 0, D],
    [s.hostFreeQueue, D, N],
  ] as const) {
    for (const id of queue) {
      if (id < lo || id >= hi) problems.push(`free queue holds ${id}, outside its tier [${lo}, ${hi})`);
      inQueue.set(id, (inQueue.get(id) ?? 0) + 1);
    }
  }
  const held = new Map<bigint, number>();
  for (let id = 0; id < N; id++) {
    const st = s.state[id];
    const q = inQueue.get(id) ?? 0;
    if (st === FREE) {
      if (q !== 1) problems.push(`free block ${id} is in the free queue ${q} times`);
      if (s.hash[id] !== 0n || s.refcount[id] !== 0 || s.session[id] !== -1 || s.position[id] !== 0 || !Object.is(s.key[id], 0)) {
        problems.push(`free block ${id} exports hash ${s.hash[id]} refcount ${s.refcount[id]} session ${s.session[id]} position ${s.position[id]} key ${s.key[id]}`);
      }
    } else {
      if (q !== 0) problems.push(`${st === REFERENCED ? 'referenced' : 'cached'} block ${id} is in a free queue`);
      if (st === CACHED && s.refcount[id] !== 0) problems.push(`cached block ${id} has refcount ${s.refcount[id]}`);
      if (st === CACHED && s.hash[id] === 0n) problems.push(`cached block ${id} has no hash`);
      if (st === REFERENCED && s.refcount[id] < 1) problems.push(`referenced block ${id} has refcount ${s.refcount[id]}`);
      if (st === REFERENCED && id >= D) problems.push(`host block ${id} is referenced`);
      if (st !== CACHED && st !== REFERENCED) problems.push(`block ${id} has state ${st}`);
      if (s.hash[id] !== 0n) {
        if (held.has(s.hash[id])) problems.push(`hash ${s.hash[id]} held by blocks ${held.get(s.hash[id])} and ${id}`);
        held.set(s.hash[id], id);
      }
    }
  }
  const counts = cache.counts();
  const implied = countsOf(s, D);
  if (JSON.stringify(counts) !== JSON.stringify(implied)) problems.push(`counts ${JSON.stringify(counts)} but states say ${JSON.stringify(implied)}`);
  if (counts.deviceFree + counts.deviceCached + counts.deviceReferenced !== D) problems.push(`device counts do not add up to ${D}`);
  if (counts.hostFree + counts.hostCached !== H) problems.push(`host counts do not add up to ${H}`);

  const out = new Int32Array(1);
  for (const [h, id] of held) {
    const k = cache.lookup(BigUint64Array.of(h), out);
    if (k !== 1 || out[0] !== id) problems.push(`lookup(${h}) gave ${k === 1 ? `block ${out[0]}` : 'nothing'}, block ${id} holds it`);
  }
  for (const h of probeHashes) {
    if (h === 0n || held.has(h)) continue;
    const k = cache.lookup(BigUint64Array.of(h), out);
    if (k !== 0) problems.push(`lookup(${h}) found block ${out[0]}, but no block holds that hash`);
  }

  for (const tier of [0, 1]) {
    const expected = victimsFromSnapshot(s, D, tier);
    const buf = new Int32Array(N + 2).fill(-7);
    const n = cache.victims(tier as 0 | 1, buf);
    const got = Array.from(buf.subarray(0, n));
    if (JSON.stringify(got) !== JSON.stringify(expected)) problems.push(`victims(${tier}) = [${got}], expected [${expected}]`);
  }

  const cols = cache.tableCols;
  for (let r = 0; r < cache.tableRows; r++) {
    const len = s.tableLengths[r];
    if (len < 0 || len > cols) problems.push(`table row ${r} has length ${len}, ${cols} columns`);
    for (let c = Math.max(len, 0); c < cols; c++) {
      if (s.table[r * cols + c] !== -1) problems.push(`table[${r}][${c}] = ${s.table[r * cols + c]} past the row's length ${len}`);
    }
  }
  expect(problems).toEqual([]);
}
