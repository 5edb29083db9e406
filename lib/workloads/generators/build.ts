/**
 * What every generator shares: prompts as prefix-chained block hashes, option checks, Poisson arrivals
 * and the assembly of tasks into one Workload.
 *
 * ## Prompts as prefix-chained block hashes
 *
 * A generated prompt is a list of segments: token runs of one piece of content each (the scaffold, the
 * task's instruction, one call's output plus the tool result that followed, one page observation, ...).
 * A segment *instance* has a 32-bit id: the scaffold of a (tenant, kind) has the same id in every task,
 * every other segment gets a fresh id from the workload's counter. Every segment instance is always
 * preceded by the same segments (histories are append-only; a replaced observation is a new instance),
 * so the tokens of block k are fully named by its parent chain plus (id of the segment holding the
 * block's last token, that token's offset in the segment). Block k's hash is therefore
 *
 *   h[-1] = ROOT,   h[k] = H(h[k-1], segmentId, offsetOfLastToken)
 *
 * and two prompts have equal hashes at block k exactly when their first (k+1) x blockSize tokens are the
 * same content (barring a 64-bit collision) — the meaning vLLM's chained block hashes have. A trailing
 * partial block is not hashed.
 *
 * H is 64 bits made of two murmur3-style 32-bit hashes with different seeds and word orders (the high
 * half also mixes in the low half), so it costs a few dozen integer ops with no BigInt. Treating the
 * halves as independent 32-bit hashes, distinct inputs meet with probability ~2^-64 per pair; the tests
 * hash 1.5 million chained, sibling and same-content blocks and find no repeat and balanced bits. 0n is
 * never produced (it would be replaced by 1).
 *
 * Storage: all calls of a workload share one BigUint64Array. Consecutive calls of a task whose prompt
 * only grows (a coding agent appending output and tool results) share one region of it: call i's view
 * is a prefix of call i+1's view, so a task costs its longest prompt, not the sum of its prompts. A call
 * that rewrites part of the prompt (a replaced observation, a compaction) starts a new region that copies
 * the still-shared leading hashes. Views may therefore overlap: treat blockHashes as read-only.
 */
import { badArgument } from '../../errors';
import type { Call, Task, Workload } from '../types';
import { DEFAULT_OPTIONS } from './parameters';
import { categorical, fmix32, poissonArrivals, streamRandom, type LognormalSpec, type Random } from './rng';

/** A run of tokens of one content instance. */
export interface Segment {
  /** uint32; equal id = equal content (and equal predecessors). */
  readonly id: number;
  /** Tokens in the segment (a non-negative integer). */
  readonly tokens: number;
}

/** FNV-1a's 64-bit offset basis, the parent of every prompt's first block (as in lib/kv/token_hash.ts). */
const ROOT_HI = 0xcbf29ce4;
const ROOT_LO = 0x84222325;
const SEED_LO = 0x9747b28c;
const SEED_HI = 0x5bd1e995;

const EMPTY = new BigUint64Array(0);
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** Word offsets of the low and high halves of a uint64 in a Uint32Array view. */
const LO = LITTLE_ENDIAN ? 0 : 1;
const HI = LITTLE_ENDIAN ? 1 : 0;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/** One murmur3_32 body round. */
function round(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = rotl(k, 15);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = rotl(h, 13);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}


/**
 * The chained hash of a block with content (contentHi, contentLo) after a block hashed (parentHi,
 * parentLo), as [hi, lo] written to out[0], out[1]. Never both zero.
 */
export function chainBlock(parentHi: number, parentLo: number, contentHi: number, contentLo: number, out: Uint32Array | number[]): void {
  const lo = fmix32(round(round(round(round(SEED_LO, parentLo), parentHi), contentHi), contentLo) ^ 16);
  let hi = fmix32(round(round(round(round(round(SEED_HI, parentHi), contentLo), parentLo), contentHi), lo) ^ 20);
  if (hi === 0 && lo === 0) hi = 1;
  out[0] = hi;
  out[1] = lo;
}

/** The 64-bit value of a [hi, lo] pair. */
export function toBigInt(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** 32-bit FNV-1a of a string (for the scaffold ids). */
function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The hashes of one workload: hands out segment ids, hashes the tasks' prompts into one growing
 * buffer, and at `finish()` points every call's blockHashes at its view of the one final buffer.
 */
export class WorkloadBlocks {
  readonly blockSize: number;
  /** uint64 words as uint32 pairs, native byte order (so the final BigUint64Array is a plain copy). */
  private words = new Uint32Array(2 * 65536);
  private used = 0;
  private nextSegment: number;
  private readonly scaffolds = new Map<string, number>();
  private readonly scaffoldIds = new Set<number>();
  private readonly pending: { call: Call; offset: number; count: number }[] = [];

  /** `segmentBase`: where task segment ids start (a per-seed value keeps ids of different workloads apart). */
  constructor(blockSize: number, segmentBase = 0) {
    this.blockSize = blockSize;
    this.nextSegment = segmentBase & 0x7fffffff;
  }

  /** The number of 64-bit hashes stored so far. */
  get length(): number {
    return this.used;
  }

  /**
   * The scaffold segment of `key` (tenant and kind): the same id for every task of that key, top bit
   * set so it never meets a task segment's id.
   */
  scaffold(key: string, tokens: number): Segment {
    let id = this.scaffolds.get(key);
    if (id === undefined) {
      id = (0x80000000 | fnv1a32(key)) >>> 0;
      while (this.scaffoldIds.has(id)) id = (0x80000000 | (id + 1)) >>> 0; // FNV collision between two keys: probe
      this.scaffolds.set(key, id);
      this.scaffoldIds.add(id);
    }
    return { id, tokens };
  }

  /** A fresh content segment of `tokens` tokens (ids below 2^31, unique within the workload). */
  segment(tokens: number): Segment {
    const id = this.nextSegment;
    this.nextSegment = (this.nextSegment + 1) & 0x7fffffff;
    return { id, tokens };
  }

  /** A prompt builder for one task's calls (in call order). */
  task(): TaskBlocks {
    return new TaskBlocks(this);
  }

  /** Records that `call` gets the view [offset, offset + count) of the final buffer. */
  bind(call: Call, offset: number, count: number): void {
    call.blockHashes = EMPTY;
    this.pending.push({ call, offset, count });
  }

  /**
   * Copies the hashes into one BigUint64Array of exactly the stored length and sets every bound call's
   * blockHashes to its view. Returns the buffer.
   */
  finish(): BigUint64Array {
    const out = new BigUint64Array(this.used);
    new Uint32Array(out.buffer).set(this.words.subarray(0, 2 * this.used));
    for (const { call, offset, count } of this.pending) call.blockHashes = out.subarray(offset, offset + count);
    this.pending.length = 0;
    return out;
  }

  /** @internal Reserves room for `extra` more hashes. */
  reserve(extra: number): void {
    const need = 2 * (this.used + extra);
    if (need <= this.words.length) return;
    let size = this.words.length * 2;
    while (size < need) size *= 2;
    const next = new Uint32Array(size);
    next.set(this.words.subarray(0, 2 * this.used));
    this.words = next;
  }

  /** @internal Appends a copy of hashes [from, from + count) (room reserved); returns where the copy starts. */
  copyToTail(from: number, count: number): number {
    const start = this.used;
    if (count > 0) this.words.copyWithin(2 * start, 2 * from, 2 * (from + count));
    this.used += count;
    return start;
  }

  /** @internal The word array (valid until the next reserve). */
  get raw(): Uint32Array {
    return this.words;
  }

  /** @internal Appends one hash. */
  push(hi: number, lo: number): void {
    const w = this.words;
    const i = 2 * this.used++;
    w[i + HI] = hi;
    w[i + LO] = lo;
  }
}

/** Where a call's prompt landed. */
export interface PromptRef {
  offset: number;
  count: number;
  promptTokens: number;
}

/** Hashes one task's prompts, call after call, sharing storage while the prompt only grows. */
export class TaskBlocks {
  private readonly store: WorkloadBlocks;
  private prev: readonly Segment[] = [];
  private prevBlocks = 0;
  private regionStart = -1;
  private readonly pair = new Uint32Array(2);

  constructor(store: WorkloadBlocks) {
    this.store = store;
  }

  /** Hashes the prompt made of `segments` (in order) and returns where its full blocks are stored. */
  add(segments: readonly Segment[]): PromptRef {
    const store = this.store;
    const B = store.blockSize;
    let promptTokens = 0;
    for (const s of segments) promptTokens += s.tokens;
    const blocks = Math.floor(promptTokens / B);

    // Tokens shared with the previous call: the leading run of identical segment instances.
    let common = 0;
    const n = Math.min(this.prev.length, segments.length);
    for (let i = 0; i < n; i++) {
      const a = this.prev[i];
      const b = segments[i];
      if (a.id !== b.id || a.tokens !== b.tokens) break;
      common += a.tokens;
    }
    const sharedBlocks = Math.min(this.prevBlocks, Math.floor(common / B), blocks);

    let start: number;
    if (this.regionStart >= 0 && sharedBlocks === this.prevBlocks && this.regionStart + this.prevBlocks === store.length) {
      // The previous prompt's blocks all survive and its region is the buffer's tail: extend in place.
      start = this.regionStart;
      store.reserve(blocks - sharedBlocks);
    } else {
      // A new region: copy the still-shared leading hashes, hash the rest after them.
      store.reserve(blocks);
      start = store.copyToTail(this.regionStart, sharedBlocks);
    }
    this.hashFrom(segments, start, sharedBlocks, blocks);
    this.prev = segments.slice();
    this.prevBlocks = blocks;
    this.regionStart = start;
    return { offset: start, count: blocks, promptTokens };
  }

  /** Hashes blocks [from, to) of the prompt into the store's tail (blocks [0, from) are at start..). */
  private hashFrom(segments: readonly Segment[], start: number, from: number, to: number): void {
    if (from >= to) return;
    const store = this.store;
    const B = store.blockSize;
    let pHi = ROOT_HI;
    let pLo = ROOT_LO;
    if (from > 0) {
      const w = store.raw;
      const i = 2 * (start + from - 1);
      pHi = w[i + HI];
      pLo = w[i + LO];
    }
    let seg = 0;
    let segStart = 0;
    const out = this.pair;
    for (let k = from; k < to; k++) {
      const last = (k + 1) * B - 1;
      while (segStart + segments[seg].tokens <= last) {
        segStart += segments[seg].tokens;
        seg++;
      }
      chainBlock(pHi, pLo, segments[seg].id, last - segStart, out);
      pHi = out[0];
      pLo = out[1];
      store.push(pHi, pLo);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Options, arrivals, assembly.
// ---------------------------------------------------------------------------------------------------

/** Options every generator takes. */
export interface GeneratorOptions {
  /** Tasks (programs) in the workload (a non-negative integer). */
  tasks?: number;
  /** Task arrivals per second, a Poisson process (> 0). */
  ratePerS?: number;
  /** Seed of every random draw (a safe integer). */
  seed?: number;
  /** Tokens per block (a positive integer; vLLM's default 16). */
  blockSize?: number;
}

export type ResolvedOptions = Required<GeneratorOptions>;

/** Fills in defaults and rejects bad values with ERR_SAGA_BAD_ARGUMENT. */
export function resolveOptions(options: GeneratorOptions = {}): ResolvedOptions {
  const tasks = options.tasks ?? DEFAULT_OPTIONS.tasks;
  const ratePerS = options.ratePerS ?? DEFAULT_OPTIONS.ratePerS;
  const seed = options.seed ?? DEFAULT_OPTIONS.seed;
  const blockSize = options.blockSize ?? DEFAULT_OPTIONS.blockSize;
  if (!Number.isInteger(tasks) || tasks < 0) throw badArgument(`tasks must be a non-negative integer, got ${String(tasks)}`);
  if (typeof ratePerS !== 'number' || !Number.isFinite(ratePerS) || ratePerS <= 0) {
    throw badArgument(`ratePerS must be a positive finite number, got ${String(ratePerS)}`);
  }
  if (!Number.isSafeInteger(seed)) throw badArgument(`seed must be a safe integer, got ${String(seed)}`);
  if (!Number.isInteger(blockSize) || blockSize < 1) throw badArgument(`blockSize must be a positive integer, got ${String(blockSize)}`);
  return { tasks, ratePerS, seed, blockSize };
}

/** Rejects a lognormal spec that cannot be drawn from (median > 0, p90 >= median, min <= max). */
export function checkLognormal(name: string, spec: LognormalSpec): void {
  const ok =
    spec !== null &&
    typeof spec === 'object' &&
    Number.isFinite(spec.median) &&
    spec.median > 0 &&
    Number.isFinite(spec.p90) &&
    spec.p90 >= spec.median &&
    (spec.min === undefined || (Number.isFinite(spec.min) && spec.min >= 0)) &&
    (spec.max === undefined || spec.max >= (spec.min ?? 0));
  if (!ok) throw badArgument(`${name} must be { median > 0, p90 >= median, 0 <= min <= max }, got ${JSON.stringify(spec)}`);
}

/** Rejects a token count that is not a non-negative integer. */
export function checkTokens(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) throw badArgument(`${name} must be a non-negative integer, got ${String(value)}`);
}

/** What a task builder gets: its tenant's scaffold, fresh segments, and a way to make calls. */
export interface TaskContext {
  /** The tenant's scaffold segment (same id for every task of the tenant). */
  readonly scaffold: Segment;
  /** A fresh content segment. */
  segment(tokens: number): Segment;
  /** A call whose prompt is `segments` (hashed now; blockHashes set when the workload is finished). */
  call(segments: readonly Segment[], fields: Omit<Call, 'blockHashes' | 'promptTokens'>): Call;
}

/** One tenant of a workload, ready to build tasks. */
export interface TenantPlan {
  name: string;
  kind: string;
  /** Share of arrivals (> 0; normalised over the plans). */
  share: number;
  /** Tokens of the tenant's scaffold. */
  scaffoldTokens: number;
  /** Builds one task's calls, drawing from `rng`. */
  build(ctx: TaskContext, rng: Random): Call[];
}

/** Random streams of a workload: separate so that, e.g., the rate changes arrival times but not programs. */
const STREAM_ARRIVALS = 0;
const STREAM_TENANT = 1;
const STREAM_TASKS = 2;
const STREAM_SEGMENTS = 3;

/**
 * Draws `options.tasks` arrivals of a Poisson process with rate `options.ratePerS`, gives each to a
 * tenant with probability proportional to its share (equivalently: independent Poisson processes with
 * rates share x ratePerS), and builds the tasks in arrival order. Deterministic in `options.seed`.
 */
export function assembleWorkload(name: string, plans: readonly TenantPlan[], options: ResolvedOptions): Workload {
  if (plans.length === 0) throw badArgument('a workload needs at least one tenant');
  const names = new Set<string>();
  for (const p of plans) {
    if (typeof p.name !== 'string' || p.name.length === 0) throw badArgument('tenant names must be non-empty strings');
    if (names.has(p.name)) throw badArgument(`tenant ${p.name} appears twice`);
    names.add(p.name);
    if (!Number.isFinite(p.share) || p.share <= 0) throw badArgument(`tenant ${p.name}: share must be a positive number, got ${String(p.share)}`);
  }
  const arrivals = poissonArrivals(streamRandom(options.seed, STREAM_ARRIVALS), options.tasks, options.ratePerS);
  const pick = streamRandom(options.seed, STREAM_TENANT);
  const rng = streamRandom(options.seed, STREAM_TASKS);
  const blocks = new WorkloadBlocks(options.blockSize, fmix32(streamRandom(options.seed, STREAM_SEGMENTS).nextUint32()));
  const shares = plans.map((p) => p.share);
  const scaffolds = plans.map((p) => blocks.scaffold(`${p.name}\u0000${p.kind}\u0000scaffold`, p.scaffoldTokens));
  const tasks: Task[] = [];
  for (let i = 0; i < options.tasks; i++) {
    const t = plans.length === 1 ? 0 : categorical(pick, shares);
    const plan = plans[t];
    const prompts = blocks.task();
    const ctx: TaskContext = {
      scaffold: scaffolds[t],
      segment: (tokens) => blocks.segment(tokens),
      call: (segments, fields) => {
        const ref = prompts.add(segments);
        const call: Call = { blockHashes: new BigUint64Array(0), promptTokens: ref.promptTokens, ...fields };
        blocks.bind(call, ref.offset, ref.count);
        return call;
      },
    };
    tasks.push({ id: `${plan.name}-${i}`, tenant: plan.name, kind: plan.kind, arrivalS: arrivals[i], calls: plan.build(ctx, rng) });
  }
  blocks.finish();
  return { name, blockSize: options.blockSize, tasks };
}

/** `name:seed=..,tasks=..,ratePerS=..,blockSize=..`: what a generated workload is called. */
export function workloadName(kind: string, options: ResolvedOptions): string {
  return `${kind}:seed=${options.seed},tasks=${options.tasks},ratePerS=${options.ratePerS},blockSize=${options.blockSize}`;
}
