/**
 * Self-check of the TS baseline against the native KvCache (backend cpu): the same random operations on
 * both, asserting identical outputs (return values, output ids, error codes, counts) after every
 * operation and identical snapshots (hash, refcount, state, session, position, key bit for bit, free
 * queue order) at intervals. Inputs include the awkward cases: hash collisions in the index's low bits,
 * tied keys (so ties break by position, then id), -0 and infinite keys, NaN keys, unknown / free /
 * repeated ids, double releases, duplicate hashes, a full pool. Run first by `npm run bench`; also
 * runnable alone: `npx tsx bench/check_ts_pool.ts [--ops N] [--seed S]`.
 */
import { KvCache, Tier } from '../lib/kv';
import { TsBlockPool } from './ts_block_pool';

/** The methods both pools have, with KvCache's signatures. */
export interface PoolLike {
  lookup(hashes: BigUint64Array, outIds: Int32Array): number;
  allocate(hashes: BigUint64Array, sessions: Int32Array, positions: Int32Array, outIds: Int32Array): void;
  commit(ids: Int32Array, hashes: BigUint64Array): void;
  acquire(ids: Int32Array): void;
  release(ids: Int32Array, keys: Float64Array): void;
  setKeys(ids: Int32Array, keys: Float64Array): void;
  setSessionKeys(sessions: Int32Array, keys: Float64Array, minPositions: Int32Array): number;
  victims(tier: 0 | 1, outIds: Int32Array): number;
  evict(ids: Int32Array): void;
  counts(): { deviceFree: number; deviceCached: number; deviceReferenced: number };
}

/** mulberry32: small seeded generator, deterministic across runs. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class CheckFailure extends Error {}

interface Outcome {
  ret: unknown;
  out: number[];
  code: string | null;
}

function run(fn: (out: Int32Array) => unknown, out: Int32Array | null, outLen: (ret: unknown) => number): Outcome {
  if (out) out.fill(-7);
  try {
    const ret = fn(out ?? new Int32Array(0));
    const n = out ? outLen(ret) : 0;
    return { ret, out: out ? Array.from(out.subarray(0, n)) : [], code: null };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (typeof code !== 'string') throw err;
    return { ret: undefined, out: [], code };
  }
}

function sameBits(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.byteLength !== b.byteLength) return false;
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

export interface CheckOptions {
  seed?: number;
  ops?: number;
  deviceCapacity?: number;
  /** Called with a line per operation (for writing a repro); off by default. */
  trace?: (line: string) => void;
}

export interface CheckResult {
  ops: number;
  errorsCompared: number;
  victimsCompared: number;
  snapshots: number;
}

/** Runs `ops` random operations on a native KvCache and a TsBlockPool; throws CheckFailure on any difference. */
export function checkTsPool(options: CheckOptions = {}): CheckResult {
  const seed = options.seed ?? 1;
  const ops = options.ops ?? 3000;
  const cap = options.deviceCapacity ?? 64;
  const rand = rng(seed);
  const int = (n: number): number => Math.floor(rand() * n);
  const native = new KvCache({ deviceCapacity: cap, backend: 'cpu' });
  const ts = new TsBlockPool({ deviceCapacity: cap });
  const pools: [string, PoolLike][] = [
    ['native', native as unknown as PoolLike],
    ['ts', ts],
  ];
  const trace = options.trace;

  // What the driver knows (from native's answers, which must equal TS's): used to pick plausible inputs.
  const known: bigint[] = []; // hashes handed out so far (some evicted since)
  const referenced: number[] = []; // one entry per reference held
  const unhashed = new Set<number>(); // referenced blocks allocated without a hash
  let hashCounter = 0;
  const freshHash = (): bigint => {
    hashCounter++;
    const hi = BigInt((Math.imul(hashCounter, 0x9e3779b1) ^ (seed * 7919)) >>> 0);
    // Low bits from a small set half of the time: many hashes share a home slot, so probing and
    // backward-shift deletion are exercised.
    const lo = rand() < 0.5 ? BigInt(1 + int(8)) : BigInt(Math.floor(rand() * 4294967296));
    const h = (hi << 32n) | lo;
    return h === 0n ? 1n : h;
  };
  let clock = 0;
  const pickKey = (): number => {
    const r = rand();
    if (r < 0.3) return (clock += int(2)); // LRU-like: release times, in order (the in-order list)
    if (r < 0.6) return int(6); // small integers: ties, out of order (the heap)
    if (r < 0.7) return -0;
    if (r < 0.75) return Infinity;
    if (r < 0.8) return -Infinity;
    return rand() * 10 - 2;
  };
  const randomId = (): number => {
    const r = rand();
    if (r < 0.03) return -1 - int(3);
    if (r < 0.06) return cap + int(3);
    return int(cap);
  };

  let errorsCompared = 0;
  let victimsCompared = 0;
  let snapshots = 0;

  // Runs fn on both pools, each with its own output array of outSize entries (none if < 0), and
  // compares return value, the first outLen(ret) output ids, the error code, and the counts.
  const compare = (
    what: string,
    fn: (p: PoolLike, out: Int32Array) => unknown,
    outSize: number,
    outLen: (ret: unknown) => number,
  ): Outcome => {
    const results: Outcome[] = [];
    for (const [, p] of pools) {
      const out = outSize >= 0 ? new Int32Array(outSize) : null;
      results.push(run((o) => fn(p, o), out, outLen));
    }
    const [a, b] = results;
    const same = a.code === b.code && Object.is(a.ret, b.ret) && a.out.length === b.out.length && a.out.every((x, i) => x === b.out[i]);
    if (!same) {
      throw new CheckFailure(
        `op ${what}: native ${JSON.stringify(a)} vs ts ${JSON.stringify(b)} (seed ${seed}, cap ${cap})`,
      );
    }
    if (a.code !== null) errorsCompared++;
    const ca = native.counts();
    const cb = ts.counts();
    if (ca.deviceFree !== cb.deviceFree || ca.deviceCached !== cb.deviceCached || ca.deviceReferenced !== cb.deviceReferenced) {
      throw new CheckFailure(`counts differ after ${what}: native ${JSON.stringify(ca)} vs ts ${JSON.stringify(cb)}`);
    }
    return a;
  };

  const snapshot = (at: number): void => {
    snapshots++;
    const a = native.snapshot();
    const b = ts.snapshot();
    for (const field of ['hash', 'refcount', 'state', 'session', 'position', 'key', 'deviceFreeQueue'] as const) {
      if (!sameBits(a[field], b[field])) {
        throw new CheckFailure(`snapshot field ${field} differs after op ${at} (seed ${seed}, cap ${cap})`);
      }
    }
  };

  const fmtBig = (h: BigUint64Array): string => `[${Array.from(h, (x) => `${x}n`).join(',')}]`;
  const fmt = (a: ArrayLike<number>): string => `[${Array.from(a, (x) => (Object.is(x, -0) ? '-0' : String(x))).join(',')}]`;

  for (let op = 0; op < ops; op++) {
    const r = rand();
    if (r < 0.22) {
      // allocate
      // Now and then a batch larger than the pool (bound to fail: validated without reserving hashes).
      const n = 1 + int(rand() < 0.1 ? 2 * cap : Math.min(10, cap));
      const hashes = new BigUint64Array(n);
      for (let i = 0; i < n; i++) {
        const q = rand();
        if (q < 0.12) hashes[i] = 0n;
        else if (q < 0.16 && known.length > 0) hashes[i] = known[int(known.length)];
        else hashes[i] = freshHash();
      }
      if (n > 1 && rand() < 0.05) hashes[n - 1] = hashes[0];
      const sessions = Int32Array.from({ length: n }, () => (rand() < 0.02 ? -2 : int(8) - 1));
      const positions = Int32Array.from({ length: n }, (_, i) => (rand() < 0.02 ? -1 : i + int(3)));
      trace?.(`allocate(${fmtBig(hashes)}, ${fmt(sessions)}, ${fmt(positions)})`);
      const res = compare('allocate', (p, out) => p.allocate(hashes, sessions, positions, out), n, () => n);
      if (res.code === null) {
        for (let i = 0; i < n; i++) {
          referenced.push(res.out[i]);
          if (hashes[i] === 0n) unhashed.add(res.out[i]);
          else known.push(hashes[i]);
        }
      }
    } else if (r < 0.34) {
      // lookup: a prefix of known hashes, maybe with a miss inside
      const n = 1 + int(8);
      const hashes = new BigUint64Array(n);
      const start = known.length > 0 ? int(known.length) : 0;
      for (let i = 0; i < n; i++) hashes[i] = known.length > 0 ? known[(start + i) % known.length] : freshHash();
      if (rand() < 0.2) hashes[int(n)] = rand() < 0.5 ? 0n : freshHash();
      trace?.(`lookup(${fmtBig(hashes)})`);
      compare('lookup', (p, out) => p.lookup(hashes, out), n, (ret) => ret as number);
    } else if (r < 0.5) {
      // release
      const n = 1 + int(8);
      const ids = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const q = rand();
        ids[i] = q < 0.85 && referenced.length > 0 ? referenced[int(referenced.length)] : randomId();
      }
      const keys = Float64Array.from({ length: n }, () => (rand() < 0.01 ? NaN : pickKey()));
      trace?.(`release(${fmt(ids)}, ${fmt(keys)})`);
      const res = compare('release', (p) => p.release(ids, keys), -1, () => 0);
      if (res.code === null) {
        for (const id of ids) {
          referenced.splice(referenced.indexOf(id), 1);
          if (!referenced.includes(id)) unhashed.delete(id);
        }
      }
    } else if (r < 0.58) {
      // acquire: mostly ids found by lookup or victims (cached), some referenced, some bad
      const n = 1 + int(6);
      const ids = new Int32Array(n);
      const cachedNow = new Int32Array(cap);
      const c = native.victims(Tier.Device, cachedNow);
      for (let i = 0; i < n; i++) {
        const q = rand();
        if (q < 0.7 && c > 0) ids[i] = cachedNow[int(c)];
        else if (q < 0.9 && referenced.length > 0) ids[i] = referenced[int(referenced.length)];
        else ids[i] = randomId();
      }
      trace?.(`acquire(${fmt(ids)})`);
      const res = compare('acquire', (p) => p.acquire(ids), -1, () => 0);
      if (res.code === null) for (const id of ids) referenced.push(id);
    } else if (r < 0.62) {
      // commit: give hashes to unhashed referenced blocks
      const pool = Array.from(unhashed);
      const n = 1 + int(3);
      const ids = new Int32Array(n);
      const hashes = new BigUint64Array(n);
      for (let i = 0; i < n; i++) {
        ids[i] = pool.length > 0 && rand() < 0.85 ? pool[int(pool.length)] : randomId();
        const q = rand();
        hashes[i] = q < 0.05 ? 0n : q < 0.1 && known.length > 0 ? known[int(known.length)] : freshHash();
      }
      trace?.(`commit(${fmt(ids)}, ${fmtBig(hashes)})`);
      const res = compare('commit', (p) => p.commit(ids, hashes), -1, () => 0);
      if (res.code === null) {
        for (let i = 0; i < n; i++) {
          unhashed.delete(ids[i]);
          known.push(hashes[i]);
        }
      }
    } else if (r < 0.7) {
      // setKeys
      const n = 1 + int(8);
      const ids = Int32Array.from({ length: n }, () => randomId());
      const keys = Float64Array.from({ length: n }, () => (rand() < 0.01 ? NaN : pickKey()));
      trace?.(`setKeys(${fmt(ids)}, ${fmt(keys)})`);
      compare('setKeys', (p) => p.setKeys(ids, keys), -1, () => 0);
    } else if (r < 0.78) {
      // setSessionKeys
      const n = 1 + int(4);
      const sessions = Int32Array.from({ length: n }, () => (rand() < 0.03 ? -1 : int(8)));
      const keys = Float64Array.from({ length: n }, () => (rand() < 0.01 ? NaN : pickKey()));
      const minPositions = Int32Array.from({ length: n }, () => (rand() < 0.03 ? -1 : int(8)));
      trace?.(`setSessionKeys(${fmt(sessions)}, ${fmt(keys)}, ${fmt(minPositions)})`);
      compare('setSessionKeys', (p) => p.setSessionKeys(sessions, keys, minPositions), -1, () => 0);
    } else if (r < 0.9) {
      // victims
      const k = int(cap + 4);
      const tier = rand() < 0.05 ? Tier.Host : Tier.Device;
      trace?.(`victims(${tier}, ${k})`);
      compare('victims', (p, out) => p.victims(tier, out), k, (ret) => ret as number);
      victimsCompared++;
    } else {
      // evict: some victims, maybe a referenced or repeated id
      const k = 1 + int(6);
      const v = new Int32Array(k);
      const got = native.victims(Tier.Device, v);
      const ids = Array.from(v.subarray(0, got));
      if (rand() < 0.1 && referenced.length > 0) ids.push(referenced[int(referenced.length)]);
      if (rand() < 0.05 && ids.length > 0) ids.push(ids[0]);
      if (rand() < 0.05) ids.push(randomId());
      const arr = Int32Array.from(ids);
      trace?.(`evict(${fmt(arr)})`);
      compare('evict', (p) => p.evict(arr), -1, () => 0);
    }
    if (op % 97 === 0 || op === ops - 1) snapshot(op);
  }
  return { ops, errorsCompared, victimsCompared, snapshots };
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const get = (flag: string, dflt: number): number => {
    const i = argv.indexOf(flag);
    return i >= 0 ? Number(argv[i + 1]) : dflt;
  };
  const t0 = performance.now();
  const seed = get('--seed', 1);
  const opsCount = get('--ops', 3000);
  for (const cap of [16, 64, 1000]) {
    const r = checkTsPool({ seed, ops: opsCount, deviceCapacity: cap });
    console.log(`cap ${cap}: ${r.ops} ops identical (${r.errorsCompared} errors, ${r.victimsCompared} victim lists, ${r.snapshots} snapshots)`);
  }
  console.log(`self-check done in ${(performance.now() - t0).toFixed(0)} ms`);
}
