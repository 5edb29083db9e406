/**
 * The raw addon surface, typed once, and the choice of backend.
 *
 * Two builds of the same addon exist: the CPU build (node-gyp, `build/` or `prebuilds/`, loaded through
 * node-gyp-build) and the CUDA build (cmake-js, `build-cuda/`). The CUDA build is tried first and used
 * when its probe finds a device; otherwise the CPU build is used and the reason is kept in
 * `nativeBackend().reason`. `SAGA_BACKEND=cpu|cuda` forces one (forcing cuda where it cannot run throws).
 * Nothing here checks arguments: `KvCache` does, and is what the rest of lib/ uses.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SagaError } from './errors';

export type BackendName = 'cpu' | 'cuda';

export interface RawPoolConfig {
  deviceCapacity: number;
  hostCapacity: number;
  payloadBytes: number;
  tableRows: number;
  tableCols: number;
  backend: BackendName;
}

/** The pool's whole observable state (fresh arrays), for tests and differential runs. */
export interface RawPoolState {
  hash: BigUint64Array;
  refcount: Int32Array;
  state: Uint8Array;
  session: Int32Array;
  position: Int32Array;
  key: Float64Array;
  deviceFreeQueue: Int32Array;
  hostFreeQueue: Int32Array;
  tableLengths: Int32Array;
  table: Int32Array;
}

/** One native BlockPool. Array lengths give the batch sizes; outputs go to caller-owned arrays. */
export interface RawPool {
  readonly backend: BackendName;
  lookup(hashes: BigUint64Array, outIds: Int32Array): number;
  allocate(hashes: BigUint64Array, sessions: Int32Array, positions: Int32Array, outIds: Int32Array): void;
  commit(ids: Int32Array, hashes: BigUint64Array): void;
  acquire(ids: Int32Array): void;
  release(ids: Int32Array, keys: Float64Array): void;
  setKeys(ids: Int32Array, keys: Float64Array): void;
  setSessionKeys(sessions: Int32Array, keys: Float64Array, minPositions: Int32Array): number;
  /** Fills up to outIds.length victims of `tier` (0 device, 1 host); returns how many. */
  victims(tier: number, outIds: Int32Array): number;
  evict(ids: Int32Array): void;
  offload(deviceIds: Int32Array, outHostIds: Int32Array): void;
  restore(hostIds: Int32Array, outDeviceIds: Int32Array): void;
  tableAppend(rows: Int32Array, ids: Int32Array): void;
  tableTruncate(rows: Int32Array, lengths: Int32Array): void;
  tableRead(rows: Int32Array, outIds: Int32Array, outLengths: Int32Array): void;
  tableAddress(): bigint;
  writePayload(ids: Int32Array, data: Uint8Array): void;
  readPayload(ids: Int32Array, out: Uint8Array): void;
  /** [deviceFree, deviceCached, deviceReferenced, hostFree, hostCached] */
  counts(out: Int32Array): void;
  exportState(): RawPoolState;
}

export interface CudaProbe {
  compiled: boolean;
  available: boolean;
  devices: number;
  deviceName: string;
  reason: string;
}

export interface RawAddon {
  BlockPool: new (config: RawPoolConfig) => RawPool;
  hashTokens(tokens: Uint32Array, blockSize: number, parent: bigint, out: BigUint64Array): number;
  probeCuda(): CudaProbe;
  setErrorClass(ctor: typeof SagaError): void;
}

export interface NativeBackend {
  addon: RawAddon;
  backend: BackendName;
  /** Where the addon was loaded from. */
  file: string;
  /** Why this backend and not the other (e.g. the CUDA probe's answer). */
  reason: string;
}

/** The package's root: lib/ when run from source, dist/lib/ when compiled. */
function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'binding.gyp'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(start, '..');
  }
}

const packageRoot = findPackageRoot(__dirname);
const cudaAddonFile = path.join(packageRoot, 'build-cuda', 'Release', 'saga_native.node');

function prepare(addon: RawAddon): RawAddon {
  addon.setErrorClass(SagaError);
  return addon;
}

function loadCpu(): { addon: RawAddon; file: string } {
  // node-gyp-build picks build/Release before prebuilds/<platform>/.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nodeGypBuild = require('node-gyp-build') as { (dir: string): unknown; resolve(dir: string): string };
  const file = nodeGypBuild.resolve(packageRoot);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return { addon: prepare(require(file) as RawAddon), file };
}

function tryCuda(): { addon?: RawAddon; reason: string } {
  if (!fs.existsSync(cudaAddonFile)) return { reason: `no CUDA build (${path.relative(packageRoot, cudaAddonFile)} absent; npm run build:cuda)` };
  let addon: RawAddon;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    addon = require(cudaAddonFile) as RawAddon;
  } catch (err) {
    return { reason: `CUDA build failed to load: ${(err as Error).message}` };
  }
  const probe = addon.probeCuda();
  if (!probe.available) return { reason: `CUDA build present but unusable: ${probe.reason}` };
  return { addon: prepare(addon), reason: `CUDA device 0: ${probe.deviceName} (${probe.devices} device(s))` };
}

function choose(): NativeBackend {
  const forced = process.env.SAGA_BACKEND;
  if (forced !== undefined && forced !== '' && forced !== 'cpu' && forced !== 'cuda') {
    throw new SagaError(`SAGA_BACKEND must be cpu or cuda, not ${JSON.stringify(forced)}`, 'ERR_SAGA_BAD_ARGUMENT');
  }
  if (forced !== 'cpu') {
    const cuda = tryCuda();
    if (cuda.addon) return { addon: cuda.addon, backend: 'cuda', file: cudaAddonFile, reason: cuda.reason };
    if (forced === 'cuda') throw new SagaError(`SAGA_BACKEND=cuda but ${cuda.reason}`, 'ERR_SAGA_BACKEND_UNAVAILABLE');
    const cpu = loadCpu();
    return { ...cpu, backend: 'cpu', reason: cuda.reason };
  }
  return { ...loadCpu(), backend: 'cpu', reason: 'forced by SAGA_BACKEND=cpu' };
}

let chosen: NativeBackend | undefined;

/** The loaded addon and which backend it runs; loads on first use. */
export function nativeBackend(): NativeBackend {
  chosen ??= choose();
  return chosen;
}
