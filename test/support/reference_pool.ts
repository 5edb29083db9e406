/**
 * ReferencePool: a deliberately plain TypeScript model of the BlockPool contract
 * (native/include/saga/block_pool.h, eviction_order.h, types.h) behind the same API as KvCache
 * (lib/kv/kv_cache.ts). It favours obviousness over speed: per-block fields in arrays, the free queues
 * as JS arrays (head = index 0), the hash index as a Map, victims by sorting every cached block.
 *
 * Errors: every call validates the whole batch before touching anything, in the order the header's
 * "Validation order" paragraph gives: element by element in batch order, each element's checks in the
 * order of the operation's "Errors:" list, then conditions on the whole batch (OutOfBlocks). Counts
 * within a batch (releases of one id, appends to one row, ids and hashes seen so far) accumulate in
 * batch order. So each operation is one loop over its elements that throws at the first fault, then
 * the batch checks: the error thrown is the one every implementation must report.
 *
 * Argument checks that KvCache does in TypeScript (array types, lengths, output room, NaN keys, the
 * tier, payload sizes) are mirrored here in the same order and, as there, come before the contract's
 * checks (a NaN key anywhere in a batch is BadKey whatever its elements' states), so a model and a
 * KvCache can be driven by the same calls.
 */
import { SagaError, type SagaErrorCode } from '../../lib/errors';
import type { KvState } from '../../lib/kv/kv_cache';

export const DEVICE = 0;
export const HOST = 1;
export const FREE = 0;
export const CACHED = 1;
export const REFERENCED = 2;

export interface ReferenceOptions {
  deviceCapacity: number;
  hostCapacity?: number;
  payloadBytes?: number;
  tableRows?: number;
  tableCols?: number;
}

/** The model's snapshot has exactly the native pool's shape. */
export type Snapshot = KvState;

export interface Counts {
  deviceFree: number;
  deviceCached: number;
  deviceReferenced: number;
  hostFree: number;
  hostCached: number;
}

/** An error the contract requires (as opposed to a bug in the model, which throws anything else). */
export class ModelError extends SagaError {}

function fail(code: SagaErrorCode, message: string): never {
  throw new ModelError(message, code);
}

/** BadArgument if `id` came earlier in the batch (is in `seen`); else adds it to `seen`. */
function requireFirst(seen: Set<number>, name: string, i: number, id: number): void {
  if (seen.has(id)) fail('ERR_SAGA_BAD_ARGUMENT', `${name}[${i}] = ${id} is repeated within the batch`);
  seen.add(id);
}

// ---- argument checks mirrored from KvCache ----

type Ctor = { new (...args: never[]): unknown; name: string };
function checkArray(name: string, value: unknown, ctor: Ctor): void {
  if (!(value instanceof ctor)) fail('ERR_SAGA_BAD_ARGUMENT', `${name} must be a ${ctor.name}`);
}
function checkSameLength(names: string, a: { length: number }, b: { length: number }): void {
  if (a.length !== b.length) fail('ERR_SAGA_BAD_ARGUMENT', `${names} must have the same length`);
}
function checkRoom(name: string, out: { length: number }, needed: number): void {
  if (out.length < needed) fail('ERR_SAGA_BAD_ARGUMENT', `${name} too short`);
}
function checkKeys(keys: Float64Array): void {
  for (let i = 0; i < keys.length; i++) if (Number.isNaN(keys[i])) fail('ERR_SAGA_BAD_KEY', `keys[${i}] is NaN`);
}
function checkCount(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 0x7fffffff) {
    fail('ERR_SAGA_BAD_ARGUMENT', `${name} out of range`);
  }
  return value;
}

/** -0 becomes +0; everything else (including +-Infinity) is kept. */
export function normaliseKey(key: number): number {
  return key === 0 ? 0 : key;
}

/** The eviction order of eviction_order.h: ascending key, then larger position first, then lower id. */
export function victimCompare(
  a: { id: number; key: number; position: number },
  b: { id: number; key: number; position: number },
): number {
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  if (a.position !== b.position) return b.position - a.position;
  return a.id - b.id;
}

export class ReferencePool {
  readonly deviceCapacity: number;
  readonly hostCapacity: number;
  readonly payloadBytes: number;
  readonly tableRows: number;
  readonly tableCols: number;
  readonly blockCount: number;

  private readonly hash: bigint[];
  private readonly refcount: number[];
  private readonly state: number[];
  private readonly session: number[];
  private readonly position: number[];
  private readonly key: number[];
  private readonly freeQueue: [number[], number[]]; // [device, host], head first
  private readonly index = new Map<bigint, number>(); // hash -> block id, for every non-free hashed block
  private readonly tableLengths: number[];
  private readonly table: number[];
  private readonly payload: Uint8Array;
  /** payloadDefined[id]: the block's bytes were written (or copied in) since it was last allocated. */
  private readonly payloadDefined: boolean[];

  constructor(options: ReferenceOptions) {
    if (typeof options !== 'object' || options === null) fail('ERR_SAGA_BAD_ARGUMENT', 'options must be an object');
    this.deviceCapacity = checkCount('deviceCapacity', options.deviceCapacity, 1);
    this.hostCapacity = checkCount('hostCapacity', options.hostCapacity ?? 0, 0);
    this.payloadBytes = checkCount('payloadBytes', options.payloadBytes ?? 0, 0);
    this.tableRows = checkCount('tableRows', options.tableRows ?? 0, 0);
    this.tableCols = checkCount('tableCols', options.tableCols ?? 0, 0);
    const n = this.deviceCapacity + this.hostCapacity;
    this.blockCount = n;
    this.hash = new Array<bigint>(n).fill(0n);
    this.refcount = new Array<number>(n).fill(0);
    this.state = new Array<number>(n).fill(FREE);
    this.session = new Array<number>(n).fill(-1);
    this.position = new Array<number>(n).fill(0);
    this.key = new Array<number>(n).fill(0);
    const device: number[] = [];
    for (let id = 0; id < this.deviceCapacity; id++) device.push(id);
    const host: number[] = [];
    for (let id = this.deviceCapacity; id < n; id++) host.push(id);
    this.freeQueue = [device, host];
    this.tableLengths = new Array<number>(this.tableRows).fill(0);
    this.table = new Array<number>(this.tableRows * this.tableCols).fill(-1);
    this.payload = new Uint8Array(n * this.payloadBytes);
    this.payloadDefined = new Array<boolean>(n).fill(false);
  }

  // ---- small predicates ----

  tierOf(id: number): number {
    return id < this.deviceCapacity ? DEVICE : HOST;
  }
  private inRange(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.blockCount;
  }
  /** In range and holding something. */
  private known(id: number): boolean {
    return this.inRange(id) && this.state[id] !== FREE;
  }
  private cachedIn(tier: number): number[] {
    const ids: number[] = [];
    for (let id = 0; id < this.blockCount; id++) if (this.state[id] === CACHED && this.tierOf(id) === tier) ids.push(id);
    return ids;
  }
  /** Every cached block of `tier` in eviction order (the whole sorted list). */
  victimOrder(tier: number): number[] {
    return this.cachedIn(tier)
      .map((id) => ({ id, key: this.key[id], position: this.position[id] }))
      .sort(victimCompare)
      .map((b) => b.id);
  }
  /** UnknownBlock unless `id` (the batch's `name`[i]) is in range and not free. */
  private requireKnown(name: string, i: number, id: number): void {
    if (!this.known(id)) fail('ERR_SAGA_UNKNOWN_BLOCK', `${name}[${i}] = ${id} is out of range or free`);
  }
  /** DuplicateHash if `hash` (nonzero) is in the index or earlier in the batch (in `batch`); else adds it. */
  private requireNewHash(batch: Set<bigint>, i: number, hash: bigint): void {
    if (hash === 0n) return;
    if (this.index.has(hash)) fail('ERR_SAGA_DUPLICATE_HASH', `hashes[${i}] is held by block ${this.index.get(hash)}`);
    if (batch.has(hash)) fail('ERR_SAGA_DUPLICATE_HASH', `hashes[${i}] is repeated within the batch`);
    batch.add(hash);
  }

  // ---- state changes (only called after validation) ----

  /** Cached -> Free: hash leaves the index, fields cleared, id to its free queue's tail. */
  private drop(id: number): void {
    this.index.delete(this.hash[id]);
    this.clear(id);
  }
  private clear(id: number): void {
    this.hash[id] = 0n;
    this.refcount[id] = 0;
    this.state[id] = FREE;
    this.session[id] = -1;
    this.position[id] = 0;
    this.key[id] = 0;
    this.payloadDefined[id] = false;
    this.freeQueue[this.tierOf(id)].push(id);
  }
  /** Evicts victims of `tier` until `n` blocks are free there. */
  private makeRoom(tier: number, n: number): void {
    const missing = n - this.freeQueue[tier].length;
    if (missing <= 0) return;
    for (const id of this.victimOrder(tier).slice(0, missing)) this.drop(id);
  }
  /** Moves a cached block's contents to a free slot of the other tier (offload / restore). */
  private move(from: number, toTier: number): number {
    const to = this.freeQueue[toTier].shift();
    if (to === undefined) throw new Error('model bug: no free block after makeRoom');
    this.hash[to] = this.hash[from];
    this.refcount[to] = 0;
    this.state[to] = CACHED;
    this.session[to] = this.session[from];
    this.position[to] = this.position[from];
    this.key[to] = this.key[from];
    this.index.set(this.hash[to], to);
    const p = this.payloadBytes;
    this.payload.copyWithin(to * p, from * p, from * p + p);
    const defined = this.payloadDefined[from];
    this.clear(from); // the source slot is free again (its hash now belongs to `to`)
    this.payloadDefined[to] = defined;
    return to;
  }

  // ---- the API (same signatures as KvCache) ----

  lookup(hashes: BigUint64Array, outIds: Int32Array): number {
    checkArray('hashes', hashes, BigUint64Array);
    checkArray('outIds', outIds, Int32Array);
    checkRoom('outIds', outIds, hashes.length);
    let k = 0;
    while (k < hashes.length) {
      const id = hashes[k] === 0n ? undefined : this.index.get(hashes[k]);
      if (id === undefined) break;
      outIds[k] = id;
      k++;
    }
    return k;
  }

  allocate(hashes: BigUint64Array, sessions: Int32Array, positions: Int32Array, outIds: Int32Array): void {
    checkArray('hashes', hashes, BigUint64Array);
    checkArray('sessions', sessions, Int32Array);
    checkArray('positions', positions, Int32Array);
    checkArray('outIds', outIds, Int32Array);
    checkSameLength('hashes and sessions', hashes, sessions);
    checkSameLength('hashes and positions', hashes, positions);
    checkRoom('outIds', outIds, hashes.length);
    const n = hashes.length;
    const batchHashes = new Set<bigint>();
    for (let i = 0; i < n; i++) {
      if (sessions[i] < -1) fail('ERR_SAGA_BAD_ARGUMENT', `sessions[${i}] = ${sessions[i]} < -1`);
      if (positions[i] < 0) fail('ERR_SAGA_BAD_ARGUMENT', `positions[${i}] = ${positions[i]} < 0`);
      this.requireNewHash(batchHashes, i, hashes[i]);
    }
    const available = this.freeQueue[DEVICE].length + this.cachedIn(DEVICE).length;
    if (available < n) fail('ERR_SAGA_OUT_OF_BLOCKS', `${n} blocks wanted, ${available} free or cached`);

    this.makeRoom(DEVICE, n);
    for (let i = 0; i < n; i++) {
      const id = this.freeQueue[DEVICE].shift() as number;
      this.hash[id] = hashes[i];
      this.refcount[id] = 1;
      this.state[id] = REFERENCED;
      this.session[id] = sessions[i];
      this.position[id] = positions[i];
      this.key[id] = 0;
      this.payloadDefined[id] = false;
      if (hashes[i] !== 0n) this.index.set(hashes[i], id);
      outIds[i] = id;
    }
  }

  commit(ids: Int32Array, hashes: BigUint64Array): void {
    checkArray('ids', ids, Int32Array);
    checkArray('hashes', hashes, BigUint64Array);
    checkSameLength('ids and hashes', ids, hashes);
    const batchIds = new Set<number>();
    const batchHashes = new Set<bigint>();
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      this.requireKnown('ids', i, id);
      if (this.state[id] !== REFERENCED) fail('ERR_SAGA_BLOCK_STATE', `ids[${i}] = ${id} is not referenced`);
      if (this.hash[id] !== 0n) fail('ERR_SAGA_BLOCK_STATE', `ids[${i}] = ${id} already has a hash`);
      if (hashes[i] === 0n) fail('ERR_SAGA_BAD_ARGUMENT', `hashes[${i}] is 0`);
      requireFirst(batchIds, 'ids', i, id);
      this.requireNewHash(batchHashes, i, hashes[i]);
    }
    for (let i = 0; i < ids.length; i++) {
      this.hash[ids[i]] = hashes[i];
      this.index.set(hashes[i], ids[i]);
    }
  }

  acquire(ids: Int32Array): void {
    checkArray('ids', ids, Int32Array);
    for (let i = 0; i < ids.length; i++) {
      this.requireKnown('ids', i, ids[i]);
      if (this.tierOf(ids[i]) === HOST) fail('ERR_SAGA_BLOCK_STATE', `ids[${i}] = ${ids[i]} is a host block`);
    }
    for (const id of ids) {
      this.refcount[id]++;
      this.state[id] = REFERENCED;
    }
  }

  release(ids: Int32Array, keys: Float64Array): void {
    checkArray('ids', ids, Int32Array);
    checkArray('keys', keys, Float64Array);
    checkSameLength('ids and keys', ids, keys);
    checkKeys(keys); // BadKey for the whole batch first, as KvCache does
    const releases = new Map<number, number>(); // this batch's releases so far, per id
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      this.requireKnown('ids', i, id);
      if (this.tierOf(id) === HOST) fail('ERR_SAGA_BLOCK_STATE', `ids[${i}] = ${id} is a host block`);
      const count = (releases.get(id) ?? 0) + 1;
      if (count > this.refcount[id]) fail('ERR_SAGA_DOUBLE_RELEASE', `ids[${i}]: release ${count} of block ${id}, refcount ${this.refcount[id]}`);
      releases.set(id, count);
    }
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      this.refcount[id]--;
      if (this.refcount[id] > 0) continue;
      if (this.hash[id] !== 0n) {
        this.state[id] = CACHED;
        this.key[id] = normaliseKey(keys[i]);
      } else {
        this.clear(id);
      }
    }
  }

  setKeys(ids: Int32Array, keys: Float64Array): void {
    checkArray('ids', ids, Int32Array);
    checkArray('keys', keys, Float64Array);
    checkSameLength('ids and keys', ids, keys);
    checkKeys(keys); // BadKey for the whole batch first, as KvCache does
    for (let i = 0; i < ids.length; i++) this.requireKnown('ids', i, ids[i]);
    for (let i = 0; i < ids.length; i++) this.key[ids[i]] = normaliseKey(keys[i]);
  }

  setSessionKeys(sessions: Int32Array, keys: Float64Array, minPositions: Int32Array): number {
    checkArray('sessions', sessions, Int32Array);
    checkArray('keys', keys, Float64Array);
    checkArray('minPositions', minPositions, Int32Array);
    checkSameLength('sessions and keys', sessions, keys);
    checkSameLength('sessions and minPositions', sessions, minPositions);
    checkKeys(keys); // BadKey for the whole batch first, as KvCache does
    for (let i = 0; i < sessions.length; i++) {
      if (sessions[i] < 0) fail('ERR_SAGA_BAD_ARGUMENT', `sessions[${i}] = ${sessions[i]} < 0`);
      if (minPositions[i] < 0) fail('ERR_SAGA_BAD_ARGUMENT', `minPositions[${i}] = ${minPositions[i]} < 0`);
    }
    let updates = 0;
    for (let i = 0; i < sessions.length; i++) {
      for (let id = 0; id < this.blockCount; id++) {
        if (this.state[id] !== FREE && this.session[id] === sessions[i] && this.position[id] >= minPositions[i]) {
          this.key[id] = normaliseKey(keys[i]);
          updates++;
        }
      }
    }
    return updates;
  }

  victims(tier: number, outIds: Int32Array): number {
    if (tier !== DEVICE && tier !== HOST) fail('ERR_SAGA_BAD_ARGUMENT', 'tier must be 0 or 1');
    checkArray('outIds', outIds, Int32Array);
    const order = this.victimOrder(tier).slice(0, outIds.length);
    order.forEach((id, i) => (outIds[i] = id));
    return order.length;
  }

  evict(ids: Int32Array): void {
    checkArray('ids', ids, Int32Array);
    const batchIds = new Set<number>();
    for (let i = 0; i < ids.length; i++) {
      this.requireKnown('ids', i, ids[i]);
      if (this.state[ids[i]] === REFERENCED) fail('ERR_SAGA_BLOCK_STATE', `ids[${i}] = ${ids[i]} is referenced`);
      requireFirst(batchIds, 'ids', i, ids[i]);
    }
    for (const id of ids) this.drop(id);
  }

  offload(deviceIds: Int32Array, outHostIds: Int32Array): void {
    checkArray('deviceIds', deviceIds, Int32Array);
    checkArray('outHostIds', outHostIds, Int32Array);
    checkRoom('outHostIds', outHostIds, deviceIds.length);
    const n = deviceIds.length;
    const batchIds = new Set<number>();
    for (let i = 0; i < n; i++) {
      const id = deviceIds[i];
      this.requireKnown('deviceIds', i, id);
      if (this.tierOf(id) === HOST) fail('ERR_SAGA_BLOCK_STATE', `deviceIds[${i}] = ${id} is a host block`);
      if (this.state[id] === REFERENCED) fail('ERR_SAGA_BLOCK_STATE', `deviceIds[${i}] = ${id} is referenced`);
      requireFirst(batchIds, 'deviceIds', i, id);
    }
    if (n > this.hostCapacity) fail('ERR_SAGA_OUT_OF_BLOCKS', `${n} blocks, host capacity ${this.hostCapacity}`);
    this.makeRoom(HOST, n);
    for (let i = 0; i < n; i++) outHostIds[i] = this.move(deviceIds[i], HOST);
  }

  restore(hostIds: Int32Array, outDeviceIds: Int32Array): void {
    checkArray('hostIds', hostIds, Int32Array);
    checkArray('outDeviceIds', outDeviceIds, Int32Array);
    checkRoom('outDeviceIds', outDeviceIds, hostIds.length);
    const n = hostIds.length;
    const batchIds = new Set<number>();
    for (let i = 0; i < n; i++) {
      const id = hostIds[i];
      this.requireKnown('hostIds', i, id);
      if (this.tierOf(id) === DEVICE) fail('ERR_SAGA_BLOCK_STATE', `hostIds[${i}] = ${id} is a device block`);
      requireFirst(batchIds, 'hostIds', i, id);
    }
    const available = this.freeQueue[DEVICE].length + this.cachedIn(DEVICE).length;
    if (available < n) fail('ERR_SAGA_OUT_OF_BLOCKS', `${n} blocks wanted, ${available} free or cached`);
    this.makeRoom(DEVICE, n);
    for (let i = 0; i < n; i++) outDeviceIds[i] = this.move(hostIds[i], DEVICE);
  }

  private requireRow(i: number, row: number): void {
    if (!(row >= 0 && row < this.tableRows)) fail('ERR_SAGA_TABLE_ROW', `rows[${i}] = ${row} is not in [0, ${this.tableRows})`);
  }

  tableAppend(rows: Int32Array, ids: Int32Array): void {
    checkArray('rows', rows, Int32Array);
    checkArray('ids', ids, Int32Array);
    checkSameLength('rows and ids', rows, ids);
    const lengths = new Map<number, number>(); // row -> its length after this batch's appends so far
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      this.requireRow(i, row);
      this.requireKnown('ids', i, ids[i]);
      if (this.tierOf(ids[i]) === HOST) fail('ERR_SAGA_BLOCK_STATE', `ids[${i}] = ${ids[i]} is a host block`);
      const length = lengths.get(row) ?? this.tableLengths[row];
      if (length >= this.tableCols) fail('ERR_SAGA_TABLE_FULL', `rows[${i}]: row ${row} already holds ${this.tableCols} blocks`);
      lengths.set(row, length + 1);
    }
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      this.table[row * this.tableCols + this.tableLengths[row]] = ids[i];
      this.tableLengths[row]++;
    }
  }

  /**
   * In order, each row is cut to lengths[i], which must not exceed its length at that point of the
   * batch (a batch is the same as its calls made one after the other).
   */
  tableTruncate(rows: Int32Array, lengths: Int32Array): void {
    checkArray('rows', rows, Int32Array);
    checkArray('lengths', lengths, Int32Array);
    checkSameLength('rows and lengths', rows, lengths);
    const current = new Map<number, number>(); // row -> its length after this batch's cuts so far
    for (let i = 0; i < rows.length; i++) {
      this.requireRow(i, rows[i]);
      const length = current.get(rows[i]) ?? this.tableLengths[rows[i]];
      if (lengths[i] < 0 || lengths[i] > length) fail('ERR_SAGA_BAD_ARGUMENT', `lengths[${i}] = ${lengths[i]}, row length ${length}`);
      current.set(rows[i], lengths[i]);
    }
    this.truncateRows(rows, lengths);
  }

  private truncateRows(rows: ArrayLike<number>, lengths: ArrayLike<number>): void {
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      for (let c = lengths[i]; c < this.tableLengths[row]; c++) this.table[row * this.tableCols + c] = -1;
      this.tableLengths[row] = lengths[i];
    }
  }

  tableFree(rows: Int32Array): void {
    checkArray('rows', rows, Int32Array);
    for (let i = 0; i < rows.length; i++) this.requireRow(i, rows[i]);
    this.truncateRows(rows, new Array<number>(rows.length).fill(0));
  }

  tableRead(rows: Int32Array, outIds: Int32Array, outLengths: Int32Array): void {
    checkArray('rows', rows, Int32Array);
    checkArray('outIds', outIds, Int32Array);
    checkArray('outLengths', outLengths, Int32Array);
    checkRoom('outIds', outIds, rows.length * this.tableCols);
    checkRoom('outLengths', outLengths, rows.length);
    for (let i = 0; i < rows.length; i++) this.requireRow(i, rows[i]);
    const cols = this.tableCols;
    for (let i = 0; i < rows.length; i++) {
      for (let c = 0; c < cols; c++) outIds[i * cols + c] = this.table[rows[i] * cols + c];
      outLengths[i] = this.tableLengths[rows[i]];
    }
  }

  private checkPayload(ids: Int32Array, data: Uint8Array): void {
    if (this.payloadBytes === 0) fail('ERR_SAGA_BAD_ARGUMENT', 'no payload');
    if (data.length !== ids.length * this.payloadBytes) fail('ERR_SAGA_BAD_ARGUMENT', 'payload buffer size');
    for (let i = 0; i < ids.length; i++) this.requireKnown('ids', i, ids[i]);
  }

  writePayload(ids: Int32Array, data: Uint8Array): void {
    checkArray('ids', ids, Int32Array);
    checkArray('data', data, Uint8Array);
    this.checkPayload(ids, data);
    const p = this.payloadBytes;
    for (let i = 0; i < ids.length; i++) {
      this.payload.set(data.subarray(i * p, i * p + p), ids[i] * p);
      this.payloadDefined[ids[i]] = true;
    }
  }

  readPayload(ids: Int32Array, out: Uint8Array): void {
    checkArray('ids', ids, Int32Array);
    checkArray('out', out, Uint8Array);
    this.checkPayload(ids, out);
    const p = this.payloadBytes;
    for (let i = 0; i < ids.length; i++) out.set(this.payload.subarray(ids[i] * p, ids[i] * p + p), i * p);
  }

  /**
   * Whether every id's bytes are defined by the contract: written by writePayload, or copied along by
   * offload/restore, since the block was allocated. Bytes of a freshly allocated block are whatever the
   * slot held before, which the contract leaves open, so tests compare only defined bytes.
   */
  payloadIsDefined(ids: ArrayLike<number>): boolean {
    for (let i = 0; i < ids.length; i++) if (!this.known(ids[i]) || !this.payloadDefined[ids[i]]) return false;
    return true;
  }

  counts(): Counts {
    const c: Counts = { deviceFree: 0, deviceCached: 0, deviceReferenced: 0, hostFree: 0, hostCached: 0 };
    for (let id = 0; id < this.blockCount; id++) {
      const s = this.state[id];
      if (this.tierOf(id) === DEVICE) {
        if (s === FREE) c.deviceFree++;
        else if (s === CACHED) c.deviceCached++;
        else c.deviceReferenced++;
      } else if (s === FREE) c.hostFree++;
      else c.hostCached++;
    }
    return c;
  }

  snapshot(): Snapshot {
    return {
      hash: BigUint64Array.from(this.hash),
      refcount: Int32Array.from(this.refcount),
      state: Uint8Array.from(this.state),
      session: Int32Array.from(this.session),
      position: Int32Array.from(this.position),
      key: Float64Array.from(this.key),
      deviceFreeQueue: Int32Array.from(this.freeQueue[DEVICE]),
      hostFreeQueue: Int32Array.from(this.freeQueue[HOST]),
      tableLengths: Int32Array.from(this.tableLengths),
      table: Int32Array.from(this.table),
    };
  }
}
