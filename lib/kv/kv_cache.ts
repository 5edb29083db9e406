/**
 * KvCache: the paged KV cache the rest of SAGA uses, over the native BlockPool.
 *
 * All argument checking (types, lengths, NaN keys, options) happens here, before the native call; the
 * native core checks state (unknown ids, double release, a full pool) and throws SagaError with a
 * stable code, leaving the pool as it was. Every batch is a TypedArray; outputs go to caller-owned
 * arrays so hot loops allocate nothing. Semantics: native/include/saga/block_pool.h and docs/block-core.md.
 */
import { SagaError, badArgument } from '../errors';
import { type BackendName, type RawPool, type RawPoolState, nativeBackend } from '../native';

export const Tier = { Device: 0, Host: 1 } as const;
export type Tier = (typeof Tier)[keyof typeof Tier];

export const BlockState = { Free: 0, Cached: 1, Referenced: 2 } as const;
export type BlockState = (typeof BlockState)[keyof typeof BlockState];

export interface KvCacheOptions {
  /** Blocks in GPU memory (> 0). */
  deviceCapacity: number;
  /** Blocks in host memory for offload (default 0: no host tier). */
  hostCapacity?: number;
  /** KV bytes per block copied on offload/restore (default 0: bookkeeping only). */
  payloadBytes?: number;
  /** Sequences in the dense block table (default 0). */
  tableRows?: number;
  /** Blocks per sequence in the block table (default 0). */
  tableCols?: number;
  /** Backend (default: the one `nativeBackend()` chose: CUDA when a device answers, else CPU). */
  backend?: BackendName;
}

export interface KvCounts {
  deviceFree: number;
  deviceCached: number;
  deviceReferenced: number;
  hostFree: number;
  hostCached: number;
}

export type KvState = RawPoolState;

const INT32_MAX = 0x7fffffff;

function checkCount(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > INT32_MAX) {
    throw badArgument(`${name} must be an integer in [${min}, ${INT32_MAX}], got ${String(value)}`);
  }
  return value;
}

type TypedArrayCtor = Int32ArrayConstructor | Float64ArrayConstructor | BigUint64ArrayConstructor | Uint8ArrayConstructor | Uint32ArrayConstructor;

function checkArray<C extends TypedArrayCtor>(name: string, value: unknown, ctor: C): InstanceType<C> {
  if (!(value instanceof ctor)) {
    const got = value === null ? 'null' : typeof value === 'object' ? (value as object).constructor?.name ?? 'object' : typeof value;
    throw badArgument(`${name} must be a ${ctor.name}, got ${got}`);
  }
  return value as InstanceType<C>;
}

function checkSameLength(names: string, a: { length: number }, b: { length: number }): void {
  if (a.length !== b.length) throw badArgument(`${names} must have the same length (${a.length} vs ${b.length})`);
}

function checkRoom(name: string, out: { length: number }, needed: number): void {
  if (out.length < needed) throw badArgument(`${name} has room for ${out.length} entries, ${needed} needed`);
}

function checkKeys(name: string, keys: Float64Array): void {
  for (let i = 0; i < keys.length; i++) {
    if (Number.isNaN(keys[i])) throw new SagaError(`${name}[${i}] is NaN: eviction keys must be numbers`, 'ERR_SAGA_BAD_KEY');
  }
}

function checkTier(tier: unknown): Tier {
  if (tier !== Tier.Device && tier !== Tier.Host) throw badArgument(`tier must be Tier.Device (0) or Tier.Host (1), got ${String(tier)}`);
  return tier;
}

export class KvCache {
  readonly backend: BackendName;
  readonly deviceCapacity: number;
  readonly hostCapacity: number;
  readonly payloadBytes: number;
  readonly tableRows: number;
  readonly tableCols: number;
  private readonly pool: RawPool;
  private readonly countsOut = new Int32Array(5);

  constructor(options: KvCacheOptions) {
    if (typeof options !== 'object' || options === null) throw badArgument('KvCache options must be an object');
    this.deviceCapacity = checkCount('deviceCapacity', options.deviceCapacity, 1);
    this.hostCapacity = checkCount('hostCapacity', options.hostCapacity ?? 0, 0);
    this.payloadBytes = checkCount('payloadBytes', options.payloadBytes ?? 0, 0);
    this.tableRows = checkCount('tableRows', options.tableRows ?? 0, 0);
    this.tableCols = checkCount('tableCols', options.tableCols ?? 0, 0);
    if (this.deviceCapacity + this.hostCapacity > INT32_MAX) throw badArgument('deviceCapacity + hostCapacity must fit in int32 block ids');
    const native = nativeBackend();
    const backend = options.backend ?? native.backend;
    if (backend !== 'cpu' && backend !== 'cuda') throw badArgument(`backend must be 'cpu' or 'cuda', got ${String(backend)}`);
    if (backend === 'cuda' && native.backend !== 'cuda') {
      throw new SagaError(`the CUDA backend is unavailable: ${native.reason}`, 'ERR_SAGA_BACKEND_UNAVAILABLE');
    }
    this.backend = backend;
    this.pool = new native.addon.BlockPool({
      deviceCapacity: this.deviceCapacity,
      hostCapacity: this.hostCapacity,
      payloadBytes: this.payloadBytes,
      tableRows: this.tableRows,
      tableCols: this.tableCols,
      backend,
    });
  }

  /** Device ids are [0, deviceCapacity), host ids follow. */
  tierOf(id: number): Tier {
    return id < this.deviceCapacity ? Tier.Device : Tier.Host;
  }

  /** Longest cached prefix of `hashes`: writes its block ids to outIds and returns its length. */
  lookup(hashes: BigUint64Array, outIds: Int32Array): number {
    checkArray('hashes', hashes, BigUint64Array);
    checkArray('outIds', outIds, Int32Array);
    checkRoom('outIds', outIds, hashes.length);
    return this.pool.lookup(hashes, outIds);
  }

  /** New referenced device blocks; hashes[i] = 0n for a block not yet full. */
  allocate(hashes: BigUint64Array, sessions: Int32Array, positions: Int32Array, outIds: Int32Array): void {
    checkArray('hashes', hashes, BigUint64Array);
    checkArray('sessions', sessions, Int32Array);
    checkArray('positions', positions, Int32Array);
    checkArray('outIds', outIds, Int32Array);
    checkSameLength('hashes and sessions', hashes, sessions);
    checkSameLength('hashes and positions', hashes, positions);
    checkRoom('outIds', outIds, hashes.length);
    this.pool.allocate(hashes, sessions, positions, outIds);
  }

  /** Hashes for blocks allocated without one, now full. */
  commit(ids: Int32Array, hashes: BigUint64Array): void {
    checkArray('ids', ids, Int32Array);
    checkArray('hashes', hashes, BigUint64Array);
    checkSameLength('ids and hashes', ids, hashes);
    this.pool.commit(ids, hashes);
  }

  acquire(ids: Int32Array): void {
    checkArray('ids', ids, Int32Array);
    this.pool.acquire(ids);
  }

  /** Drops one reference each; a block reaching zero stays cached with keys[i] as its eviction key. */
  release(ids: Int32Array, keys: Float64Array): void {
    checkArray('ids', ids, Int32Array);
    checkArray('keys', keys, Float64Array);
    checkSameLength('ids and keys', ids, keys);
    checkKeys('keys', keys);
    this.pool.release(ids, keys);
  }

  setKeys(ids: Int32Array, keys: Float64Array): void {
    checkArray('ids', ids, Int32Array);
    checkArray('keys', keys, Float64Array);
    checkSameLength('ids and keys', ids, keys);
    checkKeys('keys', keys);
    this.pool.setKeys(ids, keys);
  }

  /** Re-keys every block of sessions[i] at position >= minPositions[i]; returns the updates made. */
  setSessionKeys(sessions: Int32Array, keys: Float64Array, minPositions: Int32Array): number {
    checkArray('sessions', sessions, Int32Array);
    checkArray('keys', keys, Float64Array);
    checkArray('minPositions', minPositions, Int32Array);
    checkSameLength('sessions and keys', sessions, keys);
    checkSameLength('sessions and minPositions', sessions, minPositions);
    checkKeys('keys', keys);
    return this.pool.setSessionKeys(sessions, keys, minPositions);
  }

  /** The next outIds.length blocks eviction would take from `tier`, first first; changes nothing. */
  victims(tier: Tier, outIds: Int32Array): number {
    checkTier(tier);
    checkArray('outIds', outIds, Int32Array);
    return this.pool.victims(tier, outIds);
  }

  evict(ids: Int32Array): void {
    checkArray('ids', ids, Int32Array);
    this.pool.evict(ids);
  }

  offload(deviceIds: Int32Array, outHostIds: Int32Array): void {
    checkArray('deviceIds', deviceIds, Int32Array);
    checkArray('outHostIds', outHostIds, Int32Array);
    checkRoom('outHostIds', outHostIds, deviceIds.length);
    this.pool.offload(deviceIds, outHostIds);
  }

  restore(hostIds: Int32Array, outDeviceIds: Int32Array): void {
    checkArray('hostIds', hostIds, Int32Array);
    checkArray('outDeviceIds', outDeviceIds, Int32Array);
    checkRoom('outDeviceIds', outDeviceIds, hostIds.length);
    this.pool.restore(hostIds, outDeviceIds);
  }

  tableAppend(rows: Int32Array, ids: Int32Array): void {
    checkArray('rows', rows, Int32Array);
    checkArray('ids', ids, Int32Array);
    checkSameLength('rows and ids', rows, ids);
    this.pool.tableAppend(rows, ids);
  }

  tableTruncate(rows: Int32Array, lengths: Int32Array): void {
    checkArray('rows', rows, Int32Array);
    checkArray('lengths', lengths, Int32Array);
    checkSameLength('rows and lengths', rows, lengths);
    this.pool.tableTruncate(rows, lengths);
  }

  /** Empties rows (truncate to zero). */
  tableFree(rows: Int32Array): void {
    checkArray('rows', rows, Int32Array);
    this.pool.tableTruncate(rows, new Int32Array(rows.length));
  }

  /** Copies rows (tableCols ids each, -1 past the row's length) and their lengths. */
  tableRead(rows: Int32Array, outIds: Int32Array, outLengths: Int32Array): void {
    checkArray('rows', rows, Int32Array);
    checkArray('outIds', outIds, Int32Array);
    checkArray('outLengths', outLengths, Int32Array);
    checkRoom('outIds', outIds, rows.length * this.tableCols);
    checkRoom('outLengths', outLengths, rows.length);
    this.pool.tableRead(rows, outIds, outLengths);
  }

  /** Address of the block table where it lives (device memory on CUDA), for kernels that read it. */
  tableAddress(): bigint {
    return this.pool.tableAddress();
  }

  writePayload(ids: Int32Array, data: Uint8Array): void {
    checkArray('ids', ids, Int32Array);
    checkArray('data', data, Uint8Array);
    this.checkPayloadSize(ids, data);
    this.pool.writePayload(ids, data);
  }

  readPayload(ids: Int32Array, out: Uint8Array): void {
    checkArray('ids', ids, Int32Array);
    checkArray('out', out, Uint8Array);
    this.checkPayloadSize(ids, out);
    this.pool.readPayload(ids, out);
  }

  counts(): KvCounts {
    const c = this.countsOut;
    this.pool.counts(c);
    return { deviceFree: c[0], deviceCached: c[1], deviceReferenced: c[2], hostFree: c[3], hostCached: c[4] };
  }

  /** A copy of the whole observable state (allocates; for tests and diagnostics, not hot paths). */
  snapshot(): KvState {
    return this.pool.exportState();
  }

  private checkPayloadSize(ids: Int32Array, data: Uint8Array): void {
    if (this.payloadBytes === 0) throw badArgument('this cache has no payload (payloadBytes is 0)');
    if (data.length !== ids.length * this.payloadBytes) {
      throw badArgument(`payload buffer must hold ids.length x payloadBytes = ${ids.length * this.payloadBytes} bytes, got ${data.length}`);
    }
  }
}
