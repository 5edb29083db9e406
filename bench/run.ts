/**
 * `npm run bench`: the native KvCache (backend cpu) against a fair plain-TS implementation of the same
 * algorithms (bench/ts_block_pool.ts), in the same process, with benny, at 64k and 1M device blocks,
 * batches of 64 blocks a call.
 *
 *   npm run bench                       full run (64k and 1M; ~4 minutes on 2 cores)
 *   npm run bench -- --quick            64k only, short sampling (CI)
 *   npm run bench -- --sizes 1m         only some sizes (64k, 1m, or a number of blocks)
 *   npm run bench -- --filter victims   only cases whose name matches (regular expression)
 *   npm run bench -- --json             results as JSON on stdout (progress on stderr)
 *   npm run bench -- --markdown         the results table as markdown (for bench/RESULTS.md)
 *   npm run bench -- --no-check         skip the TS-vs-native self-check
 *   npm run bench -- --max-time S --reps R   sampling seconds per case and repetition (1.2; quick 0.25),
 *                                       repetitions alternating native and TS (2; quick 1)
 *
 * Figures: every case builds fresh pools (native and TS, identical inputs), warms both up, then runs
 * benny on native and TS alternately, `reps` times. benny's figure is its median sample; a split
 * timer's figure is the median over >= 20 ms chunks; the reported figure is the best repetition.
 * Medians and best-of damp the disturbance of other processes on a shared machine; both
 * implementations are treated alike.
 *
 * How pool state stays steady: every benchmarked function either changes nothing (lookup, victims),
 * or only re-keys (setKeys, setSessionKeys: the order's stale entries are compacted as they pile
 * up, which is part of the amortised cost measured), or is a closed round that leaves the pool as it
 * found it up to ids, hashes and keys (allocate -> release -> evict; acquire -> release; victims ->
 * evict -> refill). A round's operations are timed separately inside the round (performance.now()
 * around each run of 16 calls of 64 blocks, so ~0.05 ns a block of timer overhead), which is how
 * allocate, release and evict each get their own figure; benny times the whole round too (shown as
 * "round total", which also holds the harness's untimed preparation of inputs).
 *
 * Two key models (what eviction keys the pool holds), because the CPU eviction order is two
 * structures: "next-use" keys (SAGA's predicted next use: arbitrary order, they live in the
 * buckets) and "LRU" keys (release times, a request's blocks released tail-first, as vLLM: they live
 * in the O(1) in-order list).
 */
import { add, configure, suite } from 'benny';
import * as os from 'node:os';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { KvCache } from '../lib/kv';
import { checkTsPool, rng } from './check_ts_pool';
import { TsBlockPool } from './ts_block_pool';

// ---- options ------------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const flag = (name: string): boolean => argv.includes(name);
const option = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = flag('--quick');
const asJson = flag('--json');
const asMarkdown = flag('--markdown');
const filter = option('--filter') !== undefined ? new RegExp(option('--filter') as string) : null;
const parseSize = (s: string): number => {
  const m = /^(\d+)([km]?)$/i.exec(s.trim());
  if (!m) throw new Error(`bad size ${s}: use 64k, 1m or a number of blocks`);
  const n = Number(m[1]) * (m[2].toLowerCase() === 'k' ? 1024 : m[2].toLowerCase() === 'm' ? 1 << 20 : 1);
  if (n % 64 !== 0 || n < 16384) throw new Error(`size ${s}: must be a multiple of 64, at least 16k`);
  return n;
};
const sizes = option('--sizes') !== undefined ? (option('--sizes') as string).split(',').map(parseSize) : quick ? [1 << 16] : [1 << 16, 1 << 20];
const maxTime = Number(option('--max-time') ?? (quick ? 0.25 : 1.2)); // seconds of sampling per case, implementation and repetition
const reps = Number(option('--reps') ?? (quick ? 1 : 2)); // repetitions per case, alternating native and TS
const minSamples = quick ? 3 : 5;
const warmupMs = quick ? 60 : 150;

// Progress goes to stderr; benny's own console.log lines too, so stdout holds only the results.
const log = (line: string): void => {
  process.stderr.write(line + '\n');
};
console.log = (...args: unknown[]): void => log(args.map(String).join(' '));

// A full collection between cases, so the previous case's pools (native memory freed by finalizers)
// are gone before the next is built and measured.
v8.setFlagsFromString('--expose-gc');
const collect = vm.runInNewContext('gc') as () => void;

// ---- constants ----------------------------------------------------------------------------------

const BATCH = 64; // blocks a call
const ROUND_CALLS = 16; // calls of each operation in a round
const ROUND_BLOCKS = BATCH * ROUND_CALLS; // 1,024
const VICTIMS = 1024;
const FREE_RESERVE = 4096; // device blocks left free for the allocate round
const PRESETS = 256; // precomputed argument sets cycled through by single-call cases

type KeyModel = 'nextuse' | 'lru';
type Impl = 'native' | 'ts';

interface Pool {
  lookup(hashes: BigUint64Array, outIds: Int32Array): number;
  allocate(hashes: BigUint64Array, sessions: Int32Array, positions: Int32Array, outIds: Int32Array): void;
  acquire(ids: Int32Array): void;
  release(ids: Int32Array, keys: Float64Array): void;
  setKeys(ids: Int32Array, keys: Float64Array): void;
  setSessionKeys(sessions: Int32Array, keys: Float64Array, minPositions: Int32Array): number;
  victims(tier: 0 | 1, outIds: Int32Array): number;
  evict(ids: Int32Array): void;
  counts(): { deviceFree: number; deviceCached: number; deviceReferenced: number };
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Fresh, distinct, well-mixed 64-bit hashes written as uint32 halves (no BigInt work in the harness). */
class HashStream {
  private n = 0;
  fill(u32: Uint32Array, base: number, count: number): void {
    for (let i = 0; i < count; i++) {
      const c = ++this.n;
      const hi = fmix32(c + 0x6a09e667); // a bijection of c: distinct counters give distinct hashes
      let lo = fmix32(Math.imul(c, 0x9e3779b1) ^ 0x3c6ef372);
      if ((hi | lo) === 0) lo = 1;
      u32[base + 2 * i] = lo;
      u32[base + 2 * i + 1] = hi;
    }
  }
}

/**
 * Phase timers inside a round: ns and units (blocks, or calls) per named operation, gathered in chunks
 * of >= 20 ms of measured time; a phase's figure is the median over chunks of ns / unit, so a chunk
 * disturbed by another process on this shared machine does not move it (benny's figures likewise use
 * the median sample).
 */
class Split {
  private readonly ns: Float64Array;
  private readonly units: Float64Array;
  private chunkNs = 0;
  private readonly chunks: number[][];
  constructor(readonly names: string[]) {
    this.ns = new Float64Array(names.length);
    this.units = new Float64Array(names.length);
    this.chunks = names.map(() => []);
  }
  add(phase: number, ns: number, units: number): void {
    this.ns[phase] += ns;
    this.units[phase] += units;
    this.chunkNs += ns;
  }
  /** Called at the end of each round. */
  endRound(): void {
    if (this.chunkNs < 20e6) return;
    for (let i = 0; i < this.names.length; i++) this.chunks[i].push(this.ns[i] / this.units[i]);
    this.ns.fill(0);
    this.units.fill(0);
    this.chunkNs = 0;
  }
  reset(): void {
    this.ns.fill(0);
    this.units.fill(0);
    this.chunkNs = 0;
    for (const c of this.chunks) c.length = 0;
  }
  perUnit(i: number): number {
    const c = this.chunks[i];
    if (c.length === 0) return this.ns[i] / this.units[i];
    return median(c);
  }
  samples(): number {
    return this.chunks[0]?.length ?? 0;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * One pool with its inputs: chains of 64 blocks (one session each, positions 0..63) filling all but
 * FREE_RESERVE device blocks, every block cached with keys of the world's model.
 */
class World {
  readonly pool: Pool;
  readonly chains: number;
  readonly chainHash: BigUint64Array[] = [];
  readonly chainIds: Int32Array[] = [];
  readonly chainRev: Int32Array[] = []; // ids tail-first (deepest first), for releases
  private readonly rand: () => number;
  private readonly hashes = new HashStream();
  private nextSession: number;
  private clock = 0; // LRU release time
  private base = 0; // next-use key window [base, base + 1)
  // Round buffers: 16 batches of 64 as subarrays of one buffer each (engines build batches that way).
  private readonly roundHashBuf = new BigUint64Array(ROUND_BLOCKS);
  private readonly roundHashU32 = new Uint32Array(this.roundHashBuf.buffer);
  private readonly roundHash: BigUint64Array[] = [];
  private readonly roundSess: Int32Array[] = [];
  private readonly roundIds: Int32Array[] = [];
  private readonly roundRev: Int32Array[] = [];
  private readonly roundKeys: Float64Array[] = [];
  private readonly picked = new Int32Array(ROUND_CALLS); // the reuse round's chains
  private readonly positions = Int32Array.from({ length: BATCH }, (_, i) => i);
  private readonly lookupOut = new Int32Array(BATCH);
  private readonly missHashes = new BigUint64Array(BATCH);
  private readonly victimsOut = new Int32Array(VICTIMS);
  private readonly picks: Int32Array; // random chain indices, cycled
  private pick = 0;
  // Presets for single-call cases.
  private readonly skIds: Int32Array[] = [];
  private readonly skKeys: Float64Array[] = [];
  private readonly sskSessions: Int32Array[] = [];
  private readonly sskKeys: Float64Array[] = [];
  private readonly sskMin = new Int32Array(1);
  private preset = 0;
  private readonly deviceBlocks: number;

  constructor(impl: Impl, deviceBlocks: number, readonly model: KeyModel) {
    this.deviceBlocks = deviceBlocks;
    this.pool = impl === 'native' ? (new KvCache({ deviceCapacity: deviceBlocks, backend: 'cpu' }) as unknown as Pool) : new TsBlockPool({ deviceCapacity: deviceBlocks });
    this.rand = rng(12345);
    this.chains = (deviceBlocks - FREE_RESERVE) / BATCH;
    this.nextSession = this.chains;
    for (let b = 0; b < ROUND_CALLS; b++) {
      this.roundHash.push(this.roundHashBuf.subarray(b * BATCH, (b + 1) * BATCH));
      this.roundSess.push(new Int32Array(BATCH));
      this.roundIds.push(new Int32Array(BATCH));
      this.roundRev.push(new Int32Array(BATCH));
      this.roundKeys.push(new Float64Array(BATCH));
    }
    // Fill: chain c is session c.
    const hashBuf = new BigUint64Array(this.chains * BATCH);
    const hashU32 = new Uint32Array(hashBuf.buffer);
    const idBuf = new Int32Array(this.chains * BATCH);
    const sessions = new Int32Array(BATCH);
    const keys = new Float64Array(BATCH);
    for (let c = 0; c < this.chains; c++) {
      this.hashes.fill(hashU32, c * 2 * BATCH, BATCH);
      const h = hashBuf.subarray(c * BATCH, (c + 1) * BATCH);
      const ids = idBuf.subarray(c * BATCH, (c + 1) * BATCH);
      sessions.fill(c);
      this.pool.allocate(h, sessions, this.positions, ids);
      const rev = new Int32Array(BATCH);
      for (let i = 0; i < BATCH; i++) rev[i] = ids[BATCH - 1 - i];
      this.fillKeys(keys);
      this.pool.release(rev, keys);
      this.chainHash.push(h);
      this.chainIds.push(ids);
      this.chainRev.push(rev);
    }
    this.hashes.fill(new Uint32Array(this.missHashes.buffer), 0, BATCH); // never allocated: all miss
    this.picks = Int32Array.from({ length: 4096 }, () => Math.floor(this.rand() * this.chains));
    for (let j = 0; j < PRESETS; j++) {
      const ids = new Int32Array(BATCH);
      for (let i = 0; i < BATCH; i++) ids[i] = this.chainIds[Math.floor(this.rand() * this.chains)][Math.floor(this.rand() * BATCH)];
      this.skIds.push(ids);
      const k = new Float64Array(BATCH);
      this.fillKeys(k);
      this.skKeys.push(k);
      this.sskSessions.push(Int32Array.of(Math.floor(this.rand() * this.chains)));
      this.sskKeys.push(Float64Array.of(this.model === 'lru' ? ++this.clock : this.base + this.rand()));
    }
  }

  /** Keys for one release batch: LRU, the batch's release time; next-use, uniform in the window. */
  private fillKeys(keys: Float64Array): void {
    if (this.model === 'lru') {
      keys.fill(++this.clock);
    } else {
      for (let i = 0; i < keys.length; i++) keys[i] = this.base + this.rand();
    }
  }

  private nextChain(): number {
    this.pick = (this.pick + 1) & 4095;
    return this.picks[this.pick];
  }

  /** Untimed: fresh hashes and new sessions for the round's 16 allocate calls. */
  private prepareAllocate(): void {
    this.hashes.fill(this.roundHashU32, 0, ROUND_BLOCKS);
    for (let b = 0; b < ROUND_CALLS; b++) this.roundSess[b].fill(this.nextSession++);
  }

  /** Untimed: the allocated batches tail-first, with keys. */
  private prepareRelease(): void {
    for (let b = 0; b < ROUND_CALLS; b++) {
      const ids = this.roundIds[b];
      const rev = this.roundRev[b];
      for (let i = 0; i < BATCH; i++) rev[i] = ids[BATCH - 1 - i];
      this.fillKeys(this.roundKeys[b]);
    }
  }

  // ---- benchmarked bodies ------------------------------------------------------------------------

  lookup(): number {
    return this.pool.lookup(this.chainHash[this.nextChain()], this.lookupOut);
  }

  /** lookup of 64 hashes whose first misses: the call's fixed cost (checks, crossing, one probe). */
  lookupMiss(): number {
    return this.pool.lookup(this.missHashes, this.lookupOut);
  }

  setKeys(): void {
    this.preset = (this.preset + 1) & (PRESETS - 1);
    this.pool.setKeys(this.skIds[this.preset], this.skKeys[this.preset]);
  }

  setSessionKeys(): number {
    this.preset = (this.preset + 1) & (PRESETS - 1);
    return this.pool.setSessionKeys(this.sskSessions[this.preset], this.sskKeys[this.preset], this.sskMin);
  }

  victims(): number {
    return this.pool.victims(0, this.victimsOut);
  }

  /** allocate 16 x 64 fresh hashed blocks from free ones -> release them (tail-first, keys) -> evict them. */
  lifecycleRound(split: Split): void {
    const pool = this.pool;
    this.prepareAllocate();
    const t0 = performance.now();
    for (let b = 0; b < ROUND_CALLS; b++) pool.allocate(this.roundHash[b], this.roundSess[b], this.positions, this.roundIds[b]);
    const t1 = performance.now();
    this.prepareRelease();
    const t2 = performance.now();
    for (let b = 0; b < ROUND_CALLS; b++) pool.release(this.roundRev[b], this.roundKeys[b]);
    const t3 = performance.now();
    for (let b = 0; b < ROUND_CALLS; b++) pool.evict(this.roundIds[b]);
    const t4 = performance.now();
    split.add(0, (t1 - t0) * 1e6, ROUND_BLOCKS);
    split.add(1, (t3 - t2) * 1e6, ROUND_BLOCKS);
    split.add(2, (t4 - t3) * 1e6, ROUND_BLOCKS);
    split.endRound();
  }

  /** acquire 16 random cached chains of 64 -> release them (tail-first, new keys). */
  reuseRound(split: Split): void {
    const pool = this.pool;
    const picked = this.picked;
    for (let b = 0; b < ROUND_CALLS; b++) {
      picked[b] = this.nextChain();
      this.fillKeys(this.roundKeys[b]);
    }
    const t0 = performance.now();
    for (let b = 0; b < ROUND_CALLS; b++) pool.acquire(this.chainIds[picked[b]]);
    const t1 = performance.now();
    for (let b = 0; b < ROUND_CALLS; b++) pool.release(this.chainRev[picked[b]], this.roundKeys[b]);
    const t2 = performance.now();
    split.add(0, (t1 - t0) * 1e6, ROUND_BLOCKS);
    split.add(1, (t2 - t1) * 1e6, ROUND_BLOCKS);
    split.endRound();
  }

  /** victims(1024) -> evict those 1024 (one call) -> refill: allocate 16 x 64 fresh -> release them. */
  evictRound(split: Split): void {
    const pool = this.pool;
    const t0 = performance.now();
    const got = pool.victims(0, this.victimsOut);
    const t1 = performance.now();
    pool.evict(this.victimsOut);
    const t2 = performance.now();
    if (got !== VICTIMS) throw new Error(`victims returned ${got}`);
    if (this.model === 'nextuse') this.base += VICTIMS / (this.deviceBlocks - FREE_RESERVE); // the key window slides
    this.prepareAllocate();
    const t3 = performance.now();
    for (let b = 0; b < ROUND_CALLS; b++) pool.allocate(this.roundHash[b], this.roundSess[b], this.positions, this.roundIds[b]);
    const t4 = performance.now();
    this.prepareRelease();
    const t5 = performance.now();
    for (let b = 0; b < ROUND_CALLS; b++) pool.release(this.roundRev[b], this.roundKeys[b]);
    const t6 = performance.now();
    split.add(0, (t1 - t0) * 1e6, 1); // calls of 1,024
    split.add(1, (t2 - t1) * 1e6, 1);
    split.add(2, (t4 - t3) * 1e6, ROUND_BLOCKS);
    split.add(3, (t6 - t5) * 1e6, ROUND_BLOCKS);
    split.endRound();
  }

  checkSteady(label: string): void {
    const c = this.pool.counts();
    if (c.deviceReferenced !== 0 || c.deviceFree !== FREE_RESERVE || c.deviceCached !== this.deviceBlocks - FREE_RESERVE) {
      throw new Error(`${label}: pool state drifted: ${JSON.stringify(c)}`);
    }
  }
}

// ---- cases ----------------------------------------------------------------------------------------

/** One reported figure. */
interface Row {
  size: number;
  model: KeyModel | '-';
  name: string; // operation
  what: string; // exactly what is measured
  unit: 'ns/block' | 'us/call' | 'ns/call';
  source: string; // benny, or the round whose split timer gave it
  native: number;
  ts: number;
  rmeNative?: number;
  rmeTs?: number;
}

interface Case {
  key: string; // for --filter
  model: KeyModel;
  /** benny's function for a world (one iteration). */
  body: (w: World, split: Split) => () => void;
  split: string[]; // phase names, if the body is a round
  /** Rows from benny's seconds-per-iteration and the split. */
  rows: (size: number, per: Record<Impl, { secPerIter: number; rme: number; split: BestOf }>) => Row[];
}

const blocksPerCall = (mean: number, blocks: number): number => (mean * 1e9) / blocks;

function singleRow(size: number, model: KeyModel | '-', name: string, what: string, unit: Row['unit'], per: Record<Impl, { secPerIter: number; rme: number }>, scale: (mean: number) => number): Row {
  return { size, model, name, what, unit, source: 'benny', native: scale(per.native.secPerIter), ts: scale(per.ts.secPerIter), rmeNative: per.native.rme, rmeTs: per.ts.rme };
}

function splitRow(size: number, model: KeyModel, name: string, what: string, unit: Row['unit'], source: string, per: Record<Impl, { split: BestOf }>, phase: number, scale = 1): Row {
  return { size, model, name, what, unit, source, native: per.native.split.perUnit(phase) * scale, ts: per.ts.split.perUnit(phase) * scale };
}

function roundTotalRow(size: number, model: KeyModel, name: string, what: string, per: Record<Impl, { secPerIter: number; rme: number }>, blocks: number): Row {
  return singleRow(size, model, name, what, 'ns/block', per, (m) => blocksPerCall(m, blocks));
}

const CASES: Case[] = [
  {
    key: 'lookup',
    model: 'nextuse',
    body: (w) => () => {
      w.lookup();
    },
    split: [],
    rows: (size, per) => [
      singleRow(size, '-', 'lookup', 'lookup(64 hashes) of a random cached chain: a 64-block prefix, all hit', 'ns/block', per, (m) => blocksPerCall(m, BATCH)),
    ],
  },
  {
    key: 'call-overhead',
    model: 'nextuse',
    body: (w) => () => {
      w.lookupMiss();
    },
    split: [],
    rows: (size, per) => [
      singleRow(size, '-', 'call overhead', 'lookup(64 hashes) whose first hash misses: argument checks + crossing + one probe', 'ns/call', per, (m) => m * 1e9),
    ],
  },
  ...(['nextuse', 'lru'] as KeyModel[]).map(
    (model): Case => ({
      key: `lifecycle-${model}`,
      model,
      body: (w, split) => () => {
        w.lifecycleRound(split);
      },
      split: ['allocate', 'release', 'evict'],
      rows: (size, per) => [
        splitRow(size, model, 'allocate', 'allocate(64 fresh hashes, one new session, positions 0..63) from free blocks', 'ns/block', 'lifecycle round', per, 0),
        splitRow(size, model, 'release', 'release(64 just-allocated ids tail-first, keys) -> cached', 'ns/block', 'lifecycle round', per, 1),
        splitRow(size, model, 'evict', 'evict(64 just-released cached ids) -> free', 'ns/block', 'lifecycle round', per, 2),
        roundTotalRow(size, model, 'lifecycle round total', '16 x (allocate + release + evict) of 64, with untimed input preparation', per, 3 * ROUND_BLOCKS),
      ],
    }),
  ),
  ...(['nextuse', 'lru'] as KeyModel[]).map(
    (model): Case => ({
      key: `reuse-${model}`,
      model,
      body: (w, split) => () => {
        w.reuseRound(split);
      },
      split: ['acquire', 'release'],
      rows: (size, per) => [
        splitRow(size, model, 'acquire', 'acquire(64 ids of a random cached chain): cached -> referenced', 'ns/block', 'reuse round', per, 0),
        splitRow(size, model, 'release (reuse)', 'release(the chain tail-first, new keys): referenced -> cached', 'ns/block', 'reuse round', per, 1),
      ],
    }),
  ),
  {
    key: 'setKeys',
    model: 'nextuse',
    body: (w) => () => {
      w.setKeys();
    },
    split: [],
    rows: (size, per) => [
      singleRow(size, 'nextuse', 'setKeys', 'setKeys(64 random cached blocks across the pool, next-use keys)', 'ns/block', per, (m) => blocksPerCall(m, BATCH)),
    ],
  },
  {
    key: 'setSessionKeys',
    model: 'nextuse',
    body: (w) => () => {
      w.setSessionKeys();
    },
    split: [],
    rows: (size, per) => [
      singleRow(size, 'nextuse', 'setSessionKeys', 'setSessionKeys(1 random session, minPosition 0): its 64 cached blocks re-keyed', 'ns/block', per, (m) => blocksPerCall(m, BATCH)),
    ],
  },
  ...(['nextuse', 'lru'] as KeyModel[]).map(
    (model): Case => ({
      key: `victims-${model}`,
      model,
      body: (w) => () => {
        w.victims();
      },
      split: [],
      rows: (size, per) => [
        singleRow(size, model, 'victims 1024', 'victims(device, 1024) among all evictable blocks (the pool less 4,096 free), pool unchanged since the last call; changes nothing', 'us/call', per, (m) => m * 1e6),
      ],
    }),
  ),
  ...(['nextuse', 'lru'] as KeyModel[]).map(
    (model): Case => ({
      key: `evict-${model}`,
      model,
      body: (w, split) => () => {
        w.evictRound(split);
      },
      split: ['victims', 'evict', 'allocate', 'release'],
      rows: (size, per) => [
        {
          ...splitRow(size, model, 'victims+evict 1024', 'victims(device, 1024) then evict(those 1024) in one call, pool full (the evict round)', 'us/call', 'evict round', per, 0, 1e-3),
          native: (per.native.split.perUnit(0) + per.native.split.perUnit(1)) * 1e-3,
          ts: (per.ts.split.perUnit(0) + per.ts.split.perUnit(1)) * 1e-3,
        },
        splitRow(
          size,
          model,
          '  of which victims',
          `victims(device, 1024) right after the previous round evicted 1,024 and refilled${model === 'nextuse' ? ' (the evicted blocks\' stale entries are dropped here, the refill\'s pending entries placed)' : ''}`,
          'us/call',
          'evict round',
          per,
          0,
          1e-3,
        ),
        splitRow(size, model, 'allocate (refill)', 'allocate(64 fresh) x16 into the 1,024 blocks just freed', 'ns/block', 'evict round', per, 2),
        splitRow(size, model, 'release (refill)', 'release(64 tail-first, keys) x16 of the refill', 'ns/block', 'evict round', per, 3),
      ],
    }),
  ),
];

// ---- running ----------------------------------------------------------------------------------------

const sizeLabel = (n: number): string => (n % (1 << 20) === 0 ? `${n >> 20}M` : n % 1024 === 0 ? `${n >> 10}k` : String(n));

/** Phase figures of several repetitions: the best (lowest) of their medians. */
class BestOf {
  constructor(private readonly splits: Split[]) {}
  perUnit(i: number): number {
    return Math.min(...this.splits.map((s) => s.perUnit(i)));
  }
}

async function runCase(c: Case, size: number): Promise<Row[]> {
  collect();
  const tb = performance.now();
  // Fresh pools for every case: each starts from the same state, whatever ran before.
  const worlds: Record<Impl, World> = { native: new World('native', size, c.model), ts: new World('ts', size, c.model) };
  const buildMs = performance.now() - tb;
  const runs: Record<Impl, { secPerIter: number; rme: number; split: Split }[]> = { native: [], ts: [] };
  // Repetitions alternate native and TS, so both meet the same disturbances from other processes;
  // each figure is the best of its repetitions' medians.
  for (let rep = 0; rep < reps; rep++) {
    for (const impl of ['native', 'ts'] as Impl[]) {
      const w = worlds[impl];
      const split = new Split(c.split);
      const fn = c.body(w, split);
      // Warm-up (JIT, caches), then the split timers start from zero.
      const end = performance.now() + warmupMs;
      let iterations = 0;
      while (performance.now() < end || iterations < 20) {
        fn();
        iterations++;
      }
      split.reset();
      const summary = await suite(
        `${sizeLabel(size)} ${c.key} ${impl}`,
        configure({ cases: { maxTime, minSamples } }),
        add(impl, () => {
          fn();
        }),
      );
      const r = summary.results[0];
      runs[impl].push({ secPerIter: r.details.median, rme: r.details.relativeMarginOfError, split });
      w.checkSteady(`${sizeLabel(size)} ${c.key} ${impl}`);
      log(`  ${sizeLabel(size)} ${c.key} ${impl} #${rep + 1}: ${r.samples} samples, ±${r.details.relativeMarginOfError.toFixed(1)}%${c.split.length > 0 ? `, ${split.samples()} split chunks` : ''}`);
    }
  }
  log(`  (pools built in ${buildMs.toFixed(0)} ms)`);
  const per = {} as Record<Impl, { secPerIter: number; rme: number; split: BestOf }>;
  for (const impl of ['native', 'ts'] as Impl[]) {
    const best = runs[impl].reduce((a, b) => (b.secPerIter < a.secPerIter ? b : a));
    per[impl] = { secPerIter: best.secPerIter, rme: best.rme, split: new BestOf(runs[impl].map((r) => r.split)) };
  }
  return c.rows(size, per);
}

function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function table(rows: Row[], markdown: boolean): string {
  const head = ['blocks', 'keys', 'operation', 'unit', 'native', 'TS', 'TS/native'];
  const body = rows.map((r) => [sizeLabel(r.size), r.model, r.name, r.unit, fmt(r.native), fmt(r.ts), `${(r.ts / r.native).toFixed(2)}x`]);
  if (markdown) {
    return [`| ${head.join(' | ')} |`, `| ${head.map((_, i) => (i >= 4 ? '---:' : '---')).join(' | ')} |`, ...body.map((b) => `| ${b.join(' | ')} |`)].join('\n');
  }
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i >= 4 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

interface Verdict {
  target: string;
  measured: string;
  met: boolean;
}

function verdicts(rows: Row[]): Verdict[] {
  const big = Math.max(...rows.map((r) => r.size));
  const at = rows.filter((r) => r.size === big);
  const out: Verdict[] = [];
  const worst = (name: RegExp): Row[] => at.filter((r) => name.test(r.name));
  const perBlock = (label: string, name: RegExp): void => {
    const rs = worst(name);
    if (rs.length === 0) return;
    const max = rs.reduce((a, b) => (b.native > a.native ? b : a));
    out.push({
      target: `${label} <= 10 ns/block at ${sizeLabel(big)} blocks (native)`,
      measured: rs.map((r) => `${r.name} [${r.model}] ${fmt(r.native)}`).join('; '),
      met: max.native <= 10,
    });
  };
  perBlock('allocate', /^allocate/);
  perBlock('release', /^release/);
  perBlock('lookup', /^lookup$/);
  const vic = worst(/^victims 1024$/);
  if (vic.length > 0) {
    out.push({
      target: `1,024 victims among ${sizeLabel(big)} evictable < 100 us (native), pool unchanged since the last selection`,
      measured: vic.map((r) => `[${r.model}] ${fmt(r.native)} us`).join('; '),
      met: vic.every((r) => r.native < 100),
    });
  }
  const steady = worst(/of which victims/);
  if (steady.length > 0) {
    out.push({
      target: `1,024 victims among ${sizeLabel(big)} evictable < 100 us (native), in the steady eviction loop (right after the previous 1,024 were evicted)`,
      measured: steady.map((r) => `[${r.model}] ${fmt(r.native)} us`).join('; '),
      met: steady.every((r) => r.native < 100),
    });
  }
  const ratioRows = at.filter((r) => !/total|of which|overhead/.test(r.name));
  const slow = ratioRows.filter((r) => r.ts / r.native < 2);
  out.push({
    target: `native >= 2x faster than plain TS on each operation at ${sizeLabel(big)}`,
    measured: slow.length === 0 ? 'all >= 2x' : `below 2x: ${slow.map((r) => `${r.name} [${r.model}] ${(r.ts / r.native).toFixed(2)}x`).join('; ')}`,
    met: slow.length === 0,
  });
  return out;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  log(`SAGA bench: native KvCache (cpu) vs plain TS, batches of ${BATCH}; sizes ${sizes.map(sizeLabel).join(', ')}; ${quick ? 'quick' : 'full'} run`);
  log(`${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, Node ${process.version}`);
  if (!flag('--no-check')) {
    const tc = performance.now();
    let ops = 0;
    for (const seed of [1, 2, 3, 4]) for (const cap of [16, 64, 1000]) ops += checkTsPool({ seed, ops: 2000, deviceCapacity: cap }).ops;
    log(`self-check: ${ops} random operations identical on TS and native (${(performance.now() - tc).toFixed(0)} ms)`);
  }
  const load0 = os.loadavg()[0];
  const rows: Row[] = [];
  for (const size of sizes) {
    for (const c of CASES) {
      if (filter !== null && !filter.test(c.key)) continue;
      const caseRows = await runCase(c, size);
      rows.push(...caseRows);
      for (const r of caseRows) log(`  ${sizeLabel(size)} ${r.model} ${r.name}: native ${fmt(r.native)} ${r.unit}, TS ${fmt(r.ts)}, TS/native ${(r.ts / r.native).toFixed(2)}x`);
    }
  }
  const load1 = os.loadavg()[0];
  const elapsed = (performance.now() - t0) / 1000;
  const v = verdicts(rows);
  if (asJson) {
    process.stdout.write(
      JSON.stringify({ cpu: os.cpus()[0]?.model, cores: os.cpus().length, node: process.version, date: new Date().toISOString(), quick, batch: BATCH, elapsedS: elapsed, loadAverage1m: [load0, load1], rows, targets: v }, null, 2) + '\n',
    );
    return;
  }
  const out: string[] = [];
  out.push('');
  out.push(table(rows, asMarkdown));
  out.push('');
  out.push('What each row measures:');
  const seen = new Set<string>();
  for (const r of rows) {
    const k = `${r.name}|${r.model}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(`  ${r.name} [${r.model}]: ${r.what} (${r.source === 'benny' ? 'benny, one call an iteration' : `split timer in the ${r.source}, benny iterating rounds`})`);
  }
  out.push('  keys nextuse: uniform random keys (arbitrary order: the buckets); lru: release times, batches released tail-first (the in-order list).');
  out.push('');
  out.push('Targets:');
  for (const x of v) out.push(`  ${x.met ? 'MET   ' : 'MISSED'} ${x.target}: ${x.measured}`);
  out.push('');
  out.push(`${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, Node ${process.version}, ${new Date().toISOString()}; ${elapsed.toFixed(0)} s; 1-minute load average ${load0.toFixed(2)} at the start, ${load1.toFixed(2)} at the end (other processes share this machine: medians are reported).`);
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
