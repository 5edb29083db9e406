/**
 * TsBlockPool: a fair plain-TypeScript baseline for the native BlockPool (native/src/block_pool.cc and
 * native/src/cpu/eviction_order.cc), written the way a competent TS engineer would
 * write it for speed. It exists only so `npm run bench` can say how much the native core buys; lib/ does
 * not use it.
 *
 * Same algorithms and the same observable behaviour as KvCache on the CPU backend (device tier only):
 * - per-block fields in native's two record layouts, one ArrayBuffer per record array with typed-array
 *   views at a fixed stride, so a block touched at random costs one or two cache lines as in native:
 *   the pool's 32-byte record {hash u64 as [lo, hi] uint32, refcount, mark, session, position i32,
 *   state (native's u8, here a 32-bit slot at the same byte offset 24), pad} and the eviction order's
 *   40-byte record {key f64, position, session i32, stamp u32, place (native's u8, here a 32-bit slot
 *   at byte 20), listPrev, listNext, sessionPrev, sessionNext i32}; session and position live in both,
 *   as in native (the pool's copy for the snapshot, the order's for ordering and session walks); release
 *   clears the validation mark on its applying pass, as native; no per-block objects, nothing allocated
 *   on hot paths;
 * - 64-bit hashes never become BigInts: they are read as two uint32 halves through a Uint32Array view of
 *   the caller's BigUint64Array buffer (little-endian: [lo, hi]); the view is cached per buffer;
 * - the hash index is open addressing with linear probing over a power-of-two table at most half full
 *   (sized for every block plus one fitting batch, as native), backward-shift deletion, 16-byte slots
 *   [lo, hi, id, -] in one Uint32Array like native's {u64, i32}; allocate reserves each hash in the index
 *   (id -2) with one probe while it validates, remembers the slot and fills in the id there unless
 *   evictions ran in between (then it probes again), as native; a batch bound to fail (larger than
 *   free + cached) is validated without reserving;
 * - FIFO free queue as a ring buffer;
 * - the eviction order per tier, ascending key, then deeper position, then lower id, kept in two
 *   structures merged when read: an in-order intrusive list (blocks that became evictable at or after
 *   the list's tail: LRU keys, O(1)) and, for keys arriving out of order, native's buckets: entries
 *   (key, position, id, stamp) appended to a pending list (structure of arrays), placed 1,024 at a time
 *   by a binary search over the sorted bucket bounds, narrowed by a guide table of 4,096 key slots
 *   (native runs 8 unguided searches in lockstep when the guide is off; here one at a time, same
 *   placements) into unsorted buckets of at most 2,048 that split around a median of 15
 *   samples; a selection drains the pending entries of each bucket it reaches, splits an unsorted one
 *   down to 256 and sorts it (here by an index sort), keeps the first 4 buckets sorted on insert once
 *   small, and drops the stale entries it meets at bucket fronts and emptied buckets; a block leaving
 *   turns its entry stale (per-block place and stamp) and every bucket is filtered (and small
 *   neighbours merged) once entries > 2 * live + 64; victims merge the list with the buckets in order,
 *   so selection changes nothing observable;
 * - per-session intrusive doubly linked lists appended at the tail (next/prev in the order's record;
 *   session -> ends through a Map to a slot of Int32Array heads/tails, with native's last-session
 *   shortcut);
 * - every mutating call validates its whole batch before changing anything, with the same error codes,
 *   in the same order, as KvCache's argument checks followed by native's state checks.
 * What native has and TS cannot: prefetch hints (lookup, reserve, victims' index slots) and huge pages.
 *
 * Host tier, offload/restore, block tables and payloads are not implemented (not benchmarked).
 */
import { SagaError, badArgument, type SagaErrorCode } from '../lib/errors';

const FREE = 0;
const CACHED = 1;
const REFERENCED = 2;
const NO_BLOCK = -1;
const PENDING_BLOCK = -2; // index value of a hash reserved by a batch still being validated
const NO_SESSION = -1;
// The bucketed order's sizes (native's CpuEvictionOrder constants).
const BUCKET_MAX = 2048;
const BUCKET_CAPACITY = BUCKET_MAX + 1;
const SORT_MAX = 256;
const SORTED_HEAD = 4;
const PENDING_MAX = 1024;
const GUIDE_SLOTS = 4096;
// Where an evictable block's entry lives (native's Place).
const NOT_EVICTABLE = 0;
const IN_LIST = 1;
const IN_BUCKETS = 2;

// The pool's record per block (native BlockPool::Block, 32 bytes), in 32-bit words.
const P_WORDS = 8; // stride; id << 3
const P_HASH_LO = 0; // hash, low half (u32 view)
const P_HASH_HI = 1; // hash, high half (u32 view)
const P_REFCOUNT = 2;
const P_MARK = 3; // batch-validation scratch, zero between calls
const P_SESSION = 4;
const P_POSITION = 5;
const P_STATE = 6; // native's u8 (byte 24); word 7 is padding, as in native
// The eviction order's record per block (native CpuEvictionOrder::Block, 40 bytes), in 32-bit words.
const O_WORDS = 10; // stride; the f64 key is at element 5 * id of the Float64Array view (words 0-1)
const O_DOUBLES = 5;
const O_POSITION = 2;
const O_SESSION = 3;
const O_STAMP = 4; // u32 view
const O_PLACE = 5; // native's u8 (byte 20), padded to 24 as in native
const O_LIST_PREV = 6;
const O_LIST_NEXT = 7;
const O_SESSION_PREV = 8;
const O_SESSION_NEXT = 9;

function fail(code: SagaErrorCode, message: string): never {
  throw new SagaError(message, code);
}

// Argument checks, as KvCache does them before the native call.
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
function checkArray(name: string, value: unknown, ctor: Function): void {
  if (!(value instanceof ctor)) throw badArgument(`${name} must be a ${ctor.name}`);
}
function checkSameLength(names: string, a: { length: number }, b: { length: number }): void {
  if (a.length !== b.length) throw badArgument(`${names} must have the same length (${a.length} vs ${b.length})`);
}
function checkRoom(name: string, out: { length: number }, needed: number): void {
  if (out.length < needed) throw badArgument(`${name} has room for ${out.length} entries, ${needed} needed`);
}
function checkKeys(keys: Float64Array): void {
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    if (k !== k) fail('ERR_SAGA_BAD_KEY', `keys[${i}] is NaN: eviction keys must be numbers`);
  }
}

/** A copy of a's first `used` elements in a new array of `cap`. */
function grown<A extends Float64Array | Int32Array | Uint32Array>(a: A, cap: number, used: number): A {
  const g = new (a.constructor as new (n: number) => A)(cap);
  g.set(a.subarray(0, used));
  return g;
}

/** Entries (native's 24-byte Entry: key, position, id, stamp) as structure of arrays, at [0, end). */
class Entries {
  key: Float64Array;
  pos: Int32Array;
  id: Int32Array;
  stamp: Uint32Array;
  end = 0;

  constructor(capacity: number) {
    this.key = new Float64Array(capacity);
    this.pos = new Int32Array(capacity);
    this.id = new Int32Array(capacity);
    this.stamp = new Uint32Array(capacity);
  }

  /** Room for n entries (a bucket's buffer is sized once, as native's reserve; past it, it doubles). */
  ensure(n: number): void {
    if (n <= this.key.length) return;
    const cap = Math.max(n, this.key.length * 2);
    this.key = grown(this.key, cap, this.end);
    this.pos = grown(this.pos, cap, this.end);
    this.id = grown(this.id, cap, this.end);
    this.stamp = grown(this.stamp, cap, this.end);
  }

  push(k: number, p: number, id: number, st: number): void {
    if (this.end === this.key.length) this.ensure(this.end + 1);
    const i = this.end++;
    this.key[i] = k;
    this.pos[i] = p;
    this.id[i] = id;
    this.stamp[i] = st;
  }

  /** Moves [from, end) down to 0. */
  dropFront(from: number): void {
    if (from === 0) return;
    this.key.copyWithin(0, from, this.end);
    this.pos.copyWithin(0, from, this.end);
    this.id.copyWithin(0, from, this.end);
    this.stamp.copyWithin(0, from, this.end);
    this.end -= from;
  }
}

/** A bucket (native's Bucket): its entries at [begin, end); sorted says whether that range is in order. */
class Bucket extends Entries {
  begin = 0;
  sorted = true;
  constructor() {
    super(BUCKET_CAPACITY);
  }
  get size(): number {
    return this.end - this.begin;
  }
  compactFront(): void {
    this.dropFront(this.begin);
    this.begin = 0;
  }
}

/**
 * One tier's order: the in-order list's ends, and the buckets (native's): directory position b holds
 * store[order[b]], whose entries e satisfy bound[b] <= e < bound[b + 1] (bound[0] unused), pending
 * entries not yet placed.
 */
class Tiered {
  boundKey = new Float64Array(64);
  boundPos = new Int32Array(64);
  boundId = new Int32Array(64);
  order = new Int32Array(64);
  count = 1; // directory size
  store: Bucket[] = [new Bucket()];
  spare: number[] = [];
  pending = new Entries(PENDING_MAX);
  bucketLive = 0; // live entries in buckets and pending
  bucketEntries = 0; // all of them; bucketEntries - bucketLive are stale
  listHead = NO_BLOCK;
  listTail = NO_BLOCK;
  // native's guide: guide[g] = bounds[1..] whose key's slot is g or above (see TsBlockPool.rebuildGuide).
  guide = new Uint32Array(GUIDE_SLOTS + 1);
  guideLow = 0;
  guideScale = 0;
  guideOn = false;
  guideChanges = 0;

  at(b: number): Bucket {
    return this.store[this.order[b]];
  }

  /** Opens directory position b (shifting the later ones) for bucket slot `slot` with the given bound. */
  insertAt(b: number, slot: number, k: number, p: number, id: number): void {
    if (this.count === this.order.length) {
      const cap = this.count * 2;
      this.boundKey = grown(this.boundKey, cap, this.count);
      this.boundPos = grown(this.boundPos, cap, this.count);
      this.boundId = grown(this.boundId, cap, this.count);
      this.order = grown(this.order, cap, this.count);
    }
    this.boundKey.copyWithin(b + 1, b, this.count);
    this.boundPos.copyWithin(b + 1, b, this.count);
    this.boundId.copyWithin(b + 1, b, this.count);
    this.order.copyWithin(b + 1, b, this.count);
    this.boundKey[b] = k;
    this.boundPos[b] = p;
    this.boundId[b] = id;
    this.order[b] = slot;
    this.count++;
  }

  /** Closes directory position b: its bound (at b, or at 1 when b is 0) and its slot. */
  removeAt(b: number): void {
    const nb = b === 0 ? 1 : b;
    this.boundKey.copyWithin(nb, nb + 1, this.count);
    this.boundPos.copyWithin(nb, nb + 1, this.count);
    this.boundId.copyWithin(nb, nb + 1, this.count);
    this.order.copyWithin(b, b + 1, this.count);
    this.count--;
  }
}

export interface TsBlockPoolOptions {
  /** Blocks in GPU memory (> 0). */
  deviceCapacity: number;
}

export interface TsPoolState {
  hash: BigUint64Array;
  refcount: Int32Array;
  state: Uint8Array;
  session: Int32Array;
  position: Int32Array;
  key: Float64Array;
  deviceFreeQueue: Int32Array;
  hostFreeQueue: Int32Array;
}

export class TsBlockPool {
  readonly backend = 'ts';
  readonly deviceCapacity: number;
  readonly hostCapacity = 0;
  private readonly blocks: number;

  // The pool's records (P_* offsets at stride P_WORDS): two views over one buffer.
  private readonly pu: Uint32Array; // hash halves
  private readonly pi: Int32Array; // everything else
  // The eviction order's records (O_* offsets at stride O_WORDS): three views over one buffer.
  private readonly ok: Float64Array; // key at O_DOUBLES * id
  private readonly oi: Int32Array;
  private readonly ou: Uint32Array; // stamp
  // Sessions: session id -> slot; a slot holds the session list's head and tail.
  private readonly sessionSlot = new Map<number, number>();
  private slotHead: Int32Array;
  private slotTail: Int32Array;
  private freeSlots: Int32Array;
  private freeSlotCount = 0;
  private slotsUsed = 0;
  private lastSession = NO_SESSION;
  private lastSlot = -1; // slot of lastSession, or -1
  private readonly tiers: Tiered[];
  private sortIdx = new Int32Array(4096); // sortBucket's scratch
  private readonly sortTmp = new Entries(BUCKET_CAPACITY);
  private readonly samples = new Int32Array(15); // splitBucket's pivot samples
  private scratch: Int32Array;
  private reservedSlots = new Int32Array(64); // allocate: the index slot reserved for each element's hash
  private probeSlot = 0; // the slot findOrReserve reserved

  // Hash index: slot s at [4s, 4s + 4) = [lo, hi, id, unused]; hash 0 (lo = hi = 0) marks an empty slot.
  private readonly slots: Uint32Array;
  private readonly slotIds: Int32Array;
  private readonly mask: number;

  // Free queue (device tier) as a ring buffer.
  private readonly ring: Int32Array;
  private head = 0;
  private freeCount: number;
  private cachedCount = 0;
  private referencedCount = 0;

  // Uint32 views of callers' hash buffers, cached per buffer (callers reuse buffers).
  private viewBufA: ArrayBufferLike | null = null;
  private viewA: Uint32Array = new Uint32Array(0);
  private viewBufB: ArrayBufferLike | null = null;
  private viewB: Uint32Array = new Uint32Array(0);

  constructor(options: TsBlockPoolOptions) {
    const d = options.deviceCapacity;
    if (!Number.isInteger(d) || d < 1 || d > 0x3fffffff) throw badArgument('deviceCapacity must be a positive int32');
    this.deviceCapacity = d;
    this.blocks = d;
    const poolBuf = new ArrayBuffer(d * P_WORDS * 4);
    this.pu = new Uint32Array(poolBuf);
    this.pi = new Int32Array(poolBuf);
    const orderBuf = new ArrayBuffer(d * O_WORDS * 4);
    this.ok = new Float64Array(orderBuf);
    this.oi = new Int32Array(orderBuf);
    this.ou = new Uint32Array(orderBuf);
    const pi = this.pi;
    const oi = this.oi;
    for (let id = 0; id < d; id++) {
      // Zero elsewhere: hash, refcount, mark, position, state Free; key, position, stamp, place NotEvictable.
      pi[id * P_WORDS + P_SESSION] = NO_SESSION;
      const o = id * O_WORDS;
      oi[o + O_SESSION] = NO_SESSION;
      oi[o + O_LIST_PREV] = NO_BLOCK;
      oi[o + O_LIST_NEXT] = NO_BLOCK;
      oi[o + O_SESSION_PREV] = NO_BLOCK;
      oi[o + O_SESSION_NEXT] = NO_BLOCK;
    }
    this.slotHead = new Int32Array(64);
    this.slotTail = new Int32Array(64);
    this.freeSlots = new Int32Array(64);
    this.tiers = [new Tiered(), new Tiered()];
    this.scratch = new Int32Array(64);
    // The index holds every hashed block plus, during allocate, one fitting batch: never over half full.
    let slotCount = 16;
    while (slotCount < (this.blocks + d) * 2) slotCount *= 2;
    this.slots = new Uint32Array(slotCount * 4);
    this.slotIds = new Int32Array(this.slots.buffer);
    this.mask = slotCount - 1;
    this.ring = new Int32Array(d);
    for (let i = 0; i < d; i++) this.ring[i] = i;
    this.freeCount = d;
  }

  // ---- hash views ---------------------------------------------------------------------------------

  /** Uint32 view over the whole buffer behind `hashes`; hashes[i] is at [base + 2i] (lo), [base + 2i + 1] (hi). */
  private viewOf(hashes: BigUint64Array): Uint32Array {
    const buf = hashes.buffer;
    if (buf === this.viewBufA) return this.viewA;
    let v: Uint32Array;
    if (buf === this.viewBufB) v = this.viewB;
    else v = new Uint32Array(buf, 0, buf.byteLength >>> 2);
    // Most recent in A, the one before in B.
    this.viewBufB = this.viewBufA;
    this.viewB = this.viewA;
    this.viewBufA = buf;
    this.viewA = v;
    return v;
  }

  // ---- hash index ---------------------------------------------------------------------------------

  private find(lo: number, hi: number): number {
    const s = this.slots;
    const mask = this.mask;
    for (let i = lo & mask; ; i = (i + 1) & mask) {
      const b = i << 2;
      const slo = s[b];
      const shi = s[b + 1];
      if (slo === lo && shi === hi) return this.slotIds[b + 2];
      if ((slo | shi) === 0) return NO_BLOCK;
    }
  }

  /** One probe: the id if present (nothing changes), else reserves (id PENDING_BLOCK) the empty slot ending the probe and returns NO_BLOCK; the slot is left in probeSlot. */
  private findOrReserve(lo: number, hi: number): number {
    const s = this.slots;
    const mask = this.mask;
    for (let i = lo & mask; ; i = (i + 1) & mask) {
      const b = i << 2;
      const slo = s[b];
      const shi = s[b + 1];
      if (slo === lo && shi === hi) return this.slotIds[b + 2];
      if ((slo | shi) === 0) {
        s[b] = lo;
        s[b + 1] = hi;
        this.slotIds[b + 2] = PENDING_BLOCK;
        this.probeSlot = i;
        return NO_BLOCK;
      }
    }
  }

  private put(lo: number, hi: number, id: number): void {
    const s = this.slots;
    const mask = this.mask;
    for (let i = lo & mask; ; i = (i + 1) & mask) {
      const b = i << 2;
      const slo = s[b];
      const shi = s[b + 1];
      if ((slo === lo && shi === hi) || (slo | shi) === 0) {
        s[b] = lo;
        s[b + 1] = hi;
        this.slotIds[b + 2] = id;
        return;
      }
    }
  }

  private erase(lo: number, hi: number): void {
    const s = this.slots;
    const ids = this.slotIds;
    const mask = this.mask;
    let i = lo & mask;
    for (;;) {
      const b = i << 2;
      const slo = s[b];
      const shi = s[b + 1];
      if (slo === lo && shi === hi) break;
      if ((slo | shi) === 0) return;
      i = (i + 1) & mask;
    }
    // Backward shift: pull later entries of the probe run into the hole while that keeps them reachable.
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const bj = j << 2;
      const jlo = s[bj];
      const jhi = s[bj + 1];
      if ((jlo | jhi) === 0) break;
      const home = jlo & mask;
      const homeBetween = i <= j ? home > i && home <= j : home > i || home <= j;
      if (!homeBetween) {
        const bi = i << 2;
        s[bi] = jlo;
        s[bi + 1] = jhi;
        ids[bi + 2] = ids[bj + 2];
        i = j;
      }
    }
    const bi = i << 2;
    s[bi] = 0;
    s[bi + 1] = 0;
    ids[bi + 2] = NO_BLOCK;
  }

  // ---- free queue ---------------------------------------------------------------------------------

  private popFree(): number {
    const id = this.ring[this.head];
    this.head = this.head + 1 === this.ring.length ? 0 : this.head + 1;
    this.freeCount--;
    return id;
  }

  private pushFree(id: number): void {
    let tail = this.head + this.freeCount;
    if (tail >= this.ring.length) tail -= this.ring.length;
    this.ring[tail] = id;
    this.freeCount++;
  }

  // ---- buckets (native's CpuEvictionOrder) --------------------------------------------------------

  /** True when (ka, pa, ia) goes before (kb, pb, ib): smaller key, then deeper position, then smaller id. */
  private static before(ka: number, pa: number, ia: number, kb: number, pb: number, ib: number): boolean {
    if (ka !== kb) return ka < kb;
    if (pa !== pb) return pa > pb;
    return ia < ib;
  }

  /** Block a before block b in eviction order. */
  private blockBefore(a: number, b: number): boolean {
    const ka = this.ok[a * O_DOUBLES];
    const kb = this.ok[b * O_DOUBLES];
    if (ka !== kb) return ka < kb;
    const pa = this.oi[a * O_WORDS + O_POSITION];
    const pb = this.oi[b * O_WORDS + O_POSITION];
    if (pa !== pb) return pa > pb;
    return a < b;
  }

  private isLive(id: number, stamp: number): boolean {
    const o = id * O_WORDS;
    return this.oi[o + O_PLACE] === IN_BUCKETS && this.ou[o + O_STAMP] === stamp;
  }

  /** The directory position whose range holds (k, p, id): the number of bounds[1..] at or before it (within the guide's range). */
  private static findBucket(t: Tiered, k: number, p: number, id: number): number {
    const nb = t.count - 1;
    let lo = 1;
    let hi = t.count;
    if (t.guideOn) {
      const s = TsBlockPool.guideSlot(t, k);
      lo = nb - t.guide[s] + 1;
      hi = nb - t.guide[s + 1] + 1;
    }
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (TsBlockPool.before(k, p, id, t.boundKey[mid], t.boundPos[mid], t.boundId[mid])) hi = mid;
      else lo = mid + 1;
    }
    return lo - 1;
  }

  private static guideSlot(t: Tiered, key: number): number {
    const s = (key - t.guideLow) * t.guideScale;
    if (!(s >= 0)) return 0;
    return s >= GUIDE_SLOTS ? GUIDE_SLOTS - 1 : Math.floor(s);
  }

  /** Refits the guide's key range to the bounds near the ends and recounts (native's rebuildGuide). */
  private static rebuildGuide(t: Tiered): void {
    t.guideChanges = 0;
    const nb = t.count - 1;
    t.guideOn = false;
    if (nb < 64) return;
    const low = t.boundKey[1 + Math.floor(nb / 32)];
    const high = t.boundKey[nb - Math.floor(nb / 32)];
    if (!(Number.isFinite(low) && Number.isFinite(high) && high > low)) return;
    t.guideLow = low;
    t.guideScale = GUIDE_SLOTS / (high - low);
    if (!Number.isFinite(t.guideScale)) return;
    t.guideOn = true;
    let j = 1;
    for (let g = 0; g <= GUIDE_SLOTS; g++) {
      while (j <= nb && TsBlockPool.guideSlot(t, t.boundKey[j]) < g) j++;
      t.guide[g] = nb - (j - 1);
    }
  }

  /** A bound with key k was added (+1) or dropped (-1): it counts in guide[0..slot]. */
  private static guideBoundAdded(t: Tiered, k: number, delta: number): void {
    if (++t.guideChanges > Math.floor((t.count - 1) / 4) + 64 || !t.guideOn) {
      TsBlockPool.rebuildGuide(t);
      return;
    }
    const s = TsBlockPool.guideSlot(t, k);
    for (let g = 0; g <= s; g++) t.guide[g] += delta;
  }

  /** Moves e's entries in [from, to) that go before (k, p, id) to the front of that range; returns where the rest start. */
  private static partitionBefore(e: Entries, from: number, to: number, k: number, p: number, id: number): number {
    let w = from;
    for (let r = from; r < to; r++) {
      if (!TsBlockPool.before(e.key[r], e.pos[r], e.id[r], k, p, id)) continue;
      if (r !== w) {
        const kk = e.key[r];
        const pp = e.pos[r];
        const ii = e.id[r];
        const ss = e.stamp[r];
        e.key[r] = e.key[w];
        e.pos[r] = e.pos[w];
        e.id[r] = e.id[w];
        e.stamp[r] = e.stamp[w];
        e.key[w] = kk;
        e.pos[w] = pp;
        e.id[w] = ii;
        e.stamp[w] = ss;
      }
      w++;
    }
    return w;
  }

  /** Sorts a bucket's range in place (by an index sort, then a permutation). */
  private sortBucket(bk: Bucket): void {
    bk.compactFront();
    const n = bk.end;
    const key = bk.key;
    const pos = bk.pos;
    const ids = bk.id;
    const idx = this.sortIdx.length >= n ? this.sortIdx.subarray(0, n) : (this.sortIdx = new Int32Array(n * 2)).subarray(0, n);
    for (let i = 0; i < n; i++) idx[i] = i;
    idx.sort((a, b) => {
      const ka = key[a];
      const kb = key[b];
      if (ka !== kb) return ka < kb ? -1 : 1;
      if (pos[a] !== pos[b]) return pos[a] > pos[b] ? -1 : 1;
      return ids[a] - ids[b];
    });
    const tmp = this.sortTmp;
    tmp.end = 0;
    tmp.ensure(n);
    for (let i = 0; i < n; i++) {
      const j = idx[i];
      tmp.key[i] = key[j];
      tmp.pos[i] = pos[j];
      tmp.id[i] = ids[j];
      tmp.stamp[i] = bk.stamp[j];
    }
    key.set(tmp.key.subarray(0, n));
    pos.set(tmp.pos.subarray(0, n));
    ids.set(tmp.id.subarray(0, n));
    bk.stamp.set(tmp.stamp.subarray(0, n));
    bk.sorted = true;
  }

  /** Adds an entry to the bucket at directory position b (its range holds it); true if the bucket split. */
  private insertEntry(t: Tiered, b: number, k: number, p: number, id: number, st: number): boolean {
    const bk = t.at(b);
    const last = bk.end - 1;
    if (bk.sorted && bk.size > 0 && TsBlockPool.before(k, p, id, bk.key[last], bk.pos[last], bk.id[last])) {
      if (b < SORTED_HEAD && bk.size < 2 * SORT_MAX) {
        // Sorted insert: after the last entry not after it (upper bound).
        let lo = bk.begin;
        let hi = bk.end;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (TsBlockPool.before(k, p, id, bk.key[mid], bk.pos[mid], bk.id[mid])) hi = mid;
          else lo = mid + 1;
        }
        bk.push(0, 0, 0, 0);
        bk.key.copyWithin(lo + 1, lo, bk.end - 1);
        bk.pos.copyWithin(lo + 1, lo, bk.end - 1);
        bk.id.copyWithin(lo + 1, lo, bk.end - 1);
        bk.stamp.copyWithin(lo + 1, lo, bk.end - 1);
        bk.key[lo] = k;
        bk.pos[lo] = p;
        bk.id[lo] = id;
        bk.stamp[lo] = st;
      } else {
        bk.push(k, p, id, st);
        bk.sorted = false;
      }
    } else {
      bk.push(k, p, id, st);
    }
    return bk.size > BUCKET_MAX && this.splitBucket(t, b);
  }

  /** Places every pending entry in its bucket (native searches them all first; the placements are the same). */
  private flushPending(t: Tiered): void {
    const pd = t.pending;
    for (let i = 0; i < pd.end; i++) {
      const k = pd.key[i];
      const p = pd.pos[i];
      const id = pd.id[i];
      this.insertEntry(t, TsBlockPool.findBucket(t, k, p, id), k, p, id, pd.stamp[i]);
    }
    pd.end = 0;
  }

  /** Splits the bucket at b in two ranges, the later one a new bucket at b + 1; false if every entry is equal. */
  private splitBucket(t: Tiered, b: number): boolean {
    let slot: number;
    if (t.spare.length > 0) slot = t.spare.pop() as number;
    else {
      slot = t.store.length;
      t.store.push(new Bucket());
    }
    const left = t.at(b);
    const right = t.store[slot];
    left.compactFront();
    const n = left.end;
    right.begin = 0;
    right.end = 0;
    right.ensure(n);
    let bk: number;
    let bp: number;
    let bi: number;
    if (left.sorted) {
      const mid = n >> 1;
      right.key.set(left.key.subarray(mid, n));
      right.pos.set(left.pos.subarray(mid, n));
      right.id.set(left.id.subarray(mid, n));
      right.stamp.set(left.stamp.subarray(mid, n));
      right.end = n - mid;
      left.end = mid;
      bk = right.key[0];
      bp = right.pos[0];
      bi = right.id[0];
    } else {
      // Around the median of 15 evenly spaced entries, in one pass writing each entry to the side it goes.
      const s = this.samples;
      for (let i = 0; i < 15; i++) s[i] = Math.floor((i * n) / 15);
      const sk = left.key;
      const sp = left.pos;
      const si = left.id;
      s.sort((a, c) => (TsBlockPool.before(sk[a], sp[a], si[a], sk[c], sp[c], si[c]) ? -1 : TsBlockPool.before(sk[c], sp[c], si[c], sk[a], sp[a], si[a]) ? 1 : 0));
      const m = s[7];
      bk = sk[m];
      bp = sp[m];
      bi = si[m];
      let l = 0;
      let r = 0;
      for (let i = 0; i < n; i++) {
        const k = sk[i];
        const p = sp[i];
        const id = si[i];
        const st = left.stamp[i];
        if (TsBlockPool.before(k, p, id, bk, bp, bi)) {
          sk[l] = k;
          sp[l] = p;
          si[l] = id;
          left.stamp[l] = st;
          l++;
        } else {
          right.key[r] = k;
          right.pos[r] = p;
          right.id[r] = id;
          right.stamp[r] = st;
          r++;
        }
      }
      left.end = l;
      right.end = r;
      if (l === 0) {
        // The pivot is the least entry: all went right. Split at the exact middle instead.
        this.sortBucket(right);
        const mid = r >> 1;
        if (!TsBlockPool.before(right.key[0], right.pos[0], right.id[0], right.key[mid], right.pos[mid], right.id[mid])) {
          // every entry equal (one block's stale copies): nothing to split
          left.key.set(right.key.subarray(0, r));
          left.pos.set(right.pos.subarray(0, r));
          left.id.set(right.id.subarray(0, r));
          left.stamp.set(right.stamp.subarray(0, r));
          left.end = r;
          left.sorted = true;
          right.end = 0;
          right.sorted = true;
          t.spare.push(slot);
          return false;
        }
        left.key.set(right.key.subarray(0, mid));
        left.pos.set(right.pos.subarray(0, mid));
        left.id.set(right.id.subarray(0, mid));
        left.stamp.set(right.stamp.subarray(0, mid));
        left.end = mid;
        right.dropFront(mid);
        bk = right.key[0];
        bp = right.pos[0];
        bi = right.id[0];
        // native selects the middle without sorting: both halves are unsorted there
        right.sorted = false;
      }
    }
    right.sorted = left.sorted;
    t.insertAt(b + 1, slot, bk, bp, bi);
    TsBlockPool.guideBoundAdded(t, bk, +1);
    return true;
  }

  /** An empty bucket leaves the directory (its range joins the previous one's); the last one stays. */
  private dropBucket(t: Tiered, b: number): void {
    const bk = t.at(b);
    bk.begin = 0;
    bk.end = 0;
    bk.sorted = true;
    if (t.count === 1) return;
    t.spare.push(t.order[b]);
    const k = t.boundKey[b === 0 ? 1 : b];
    t.removeAt(b);
    TsBlockPool.guideBoundAdded(t, k, -1);
  }

  /** Filters the pending entries and every bucket once stale entries outnumber live ones (amortised O(1)). */
  private compactIfStale(t: Tiered): void {
    if (t.bucketEntries <= 2 * t.bucketLive + 64) return;
    const keep = (e: Entries, from: number): void => {
      let w = 0;
      for (let r = from; r < e.end; r++) {
        if (!this.isLive(e.id[r], e.stamp[r])) continue;
        e.key[w] = e.key[r];
        e.pos[w] = e.pos[r];
        e.id[w] = e.id[r];
        e.stamp[w] = e.stamp[r];
        w++;
      }
      e.end = w;
    };
    keep(t.pending, 0);
    for (let b = 0; b < t.count; b++) {
      const bk = t.at(b);
      keep(bk, bk.begin);
      bk.begin = 0;
    }
    // Neighbours that fit in half a bucket together merge (adjacent ranges concatenated stay in order).
    let out = 0;
    for (let b = 1; b < t.count; b++) {
      const into = t.at(out);
      const next = t.at(b);
      if (into.end + next.end <= BUCKET_MAX / 2) {
        into.ensure(into.end + next.end);
        into.key.set(next.key.subarray(0, next.end), into.end);
        into.pos.set(next.pos.subarray(0, next.end), into.end);
        into.id.set(next.id.subarray(0, next.end), into.end);
        into.stamp.set(next.stamp.subarray(0, next.end), into.end);
        into.end += next.end;
        into.sorted = into.sorted && next.sorted;
        next.end = 0;
        next.sorted = true;
        t.spare.push(t.order[b]);
        continue;
      }
      out++;
      t.order[out] = t.order[b];
      t.boundKey[out] = t.boundKey[b];
      t.boundPos[out] = t.boundPos[b];
      t.boundId[out] = t.boundId[b];
    }
    t.count = out + 1;
    TsBlockPool.rebuildGuide(t);
    t.bucketEntries = t.bucketLive;
  }

  // ---- placing evictable blocks -------------------------------------------------------------------

  /** Places an evictable block (key set) in its tier's list (at or after the tail) or, pending, the buckets. */
  private enter(id: number): void {
    const t = this.tiers[id < this.deviceCapacity ? 0 : 1];
    const tail = t.listTail;
    const oi = this.oi;
    const o = id * O_WORDS;
    if (tail === NO_BLOCK || !this.blockBefore(id, tail)) {
      oi[o + O_LIST_PREV] = tail;
      oi[o + O_LIST_NEXT] = NO_BLOCK;
      if (tail !== NO_BLOCK) oi[tail * O_WORDS + O_LIST_NEXT] = id;
      else t.listHead = id;
      t.listTail = id;
      oi[o + O_PLACE] = IN_LIST;
      return;
    }
    oi[o + O_PLACE] = IN_BUCKETS;
    t.bucketLive++;
    t.bucketEntries++;
    const st = (this.ou[o + O_STAMP] + 1) >>> 0;
    this.ou[o + O_STAMP] = st;
    t.pending.push(this.ok[id * O_DOUBLES], oi[o + O_POSITION], id, st);
    if (t.pending.end >= PENDING_MAX) this.flushPending(t);
  }

  /** Takes an evictable block out of its list or the buckets (its bucket entry turns stale). */
  private leave(id: number): void {
    const t = this.tiers[id < this.deviceCapacity ? 0 : 1];
    const oi = this.oi;
    const o = id * O_WORDS;
    if (oi[o + O_PLACE] === IN_LIST) {
      const prev = oi[o + O_LIST_PREV];
      const next = oi[o + O_LIST_NEXT];
      if (prev !== NO_BLOCK) oi[prev * O_WORDS + O_LIST_NEXT] = next;
      else t.listHead = next;
      if (next !== NO_BLOCK) oi[next * O_WORDS + O_LIST_PREV] = prev;
      else t.listTail = prev;
      oi[o + O_LIST_PREV] = NO_BLOCK;
      oi[o + O_LIST_NEXT] = NO_BLOCK;
      oi[o + O_PLACE] = NOT_EVICTABLE;
      return;
    }
    oi[o + O_PLACE] = NOT_EVICTABLE; // the bucket entry turns stale
    t.bucketLive--;
    this.compactIfStale(t);
  }

  // ---- sessions -----------------------------------------------------------------------------------

  /** The slot holding session s's list ends; -1 if absent and !create. */
  private sessionEnds(s: number, create: boolean): number {
    if (s === this.lastSession && this.lastSlot >= 0) return this.lastSlot;
    let slot = this.sessionSlot.get(s);
    if (slot === undefined) {
      if (!create) return -1;
      if (this.freeSlotCount > 0) {
        slot = this.freeSlots[--this.freeSlotCount];
      } else {
        if (this.slotsUsed === this.slotHead.length) {
          const head = new Int32Array(this.slotHead.length * 2);
          head.set(this.slotHead);
          const tail = new Int32Array(this.slotTail.length * 2);
          tail.set(this.slotTail);
          const free = new Int32Array(this.freeSlots.length * 2);
          free.set(this.freeSlots);
          this.slotHead = head;
          this.slotTail = tail;
          this.freeSlots = free;
        }
        slot = this.slotsUsed++;
      }
      this.slotHead[slot] = NO_BLOCK;
      this.slotTail[slot] = NO_BLOCK;
      this.sessionSlot.set(s, slot);
    }
    this.lastSession = s;
    this.lastSlot = slot;
    return slot;
  }

  /** Appends a block at its session list's tail. */
  private linkSession(id: number): void {
    const oi = this.oi;
    const o = id * O_WORDS;
    const s = oi[o + O_SESSION];
    if (s < 0) return;
    const slot = this.sessionEnds(s, true);
    const tail = this.slotTail[slot];
    oi[o + O_SESSION_PREV] = tail;
    oi[o + O_SESSION_NEXT] = NO_BLOCK;
    if (tail !== NO_BLOCK) oi[tail * O_WORDS + O_SESSION_NEXT] = id;
    else this.slotHead[slot] = id;
    this.slotTail[slot] = id;
  }

  private unlinkSession(id: number): void {
    const oi = this.oi;
    const o = id * O_WORDS;
    const s = oi[o + O_SESSION];
    if (s < 0) return;
    const prev = oi[o + O_SESSION_PREV];
    const next = oi[o + O_SESSION_NEXT];
    oi[o + O_SESSION_NEXT] = NO_BLOCK;
    oi[o + O_SESSION_PREV] = NO_BLOCK;
    if (prev !== NO_BLOCK && next !== NO_BLOCK) {
      oi[prev * O_WORDS + O_SESSION_NEXT] = next;
      oi[next * O_WORDS + O_SESSION_PREV] = prev;
      return;
    }
    const slot = this.sessionEnds(s, false);
    if (prev !== NO_BLOCK) oi[prev * O_WORDS + O_SESSION_NEXT] = next;
    else this.slotHead[slot] = next;
    if (next !== NO_BLOCK) oi[next * O_WORDS + O_SESSION_PREV] = prev;
    else this.slotTail[slot] = prev;
    if (this.slotHead[slot] === NO_BLOCK) {
      if (this.lastSlot === slot) this.lastSlot = -1;
      this.sessionSlot.delete(s);
      this.freeSlots[this.freeSlotCount++] = slot;
    }
  }

  // ---- eviction order operations ------------------------------------------------------------------

  /** The block holds nothing any more: out of the evictable set and its session list; key reads 0. */
  private unassign(id: number): void {
    const oi = this.oi;
    const o = id * O_WORDS;
    if (oi[o + O_PLACE] !== NOT_EVICTABLE) this.leave(id);
    this.unlinkSession(id);
    oi[o + O_SESSION] = NO_SESSION;
    oi[o + O_POSITION] = 0;
    this.ok[id * O_DOUBLES] = 0;
  }

  /** The block is in use (its pool record says so): native's assign, key 0, appended to its session list. */
  private assign(id: number, session: number, position: number): void {
    const o = id * O_WORDS;
    this.oi[o + O_SESSION] = session;
    this.oi[o + O_POSITION] = position;
    this.ok[id * O_DOUBLES] = 0;
    this.linkSession(id);
  }

  private setKey(id: number, key: number): void {
    if (this.oi[id * O_WORDS + O_PLACE] === NOT_EVICTABLE) {
      this.ok[id * O_DOUBLES] = key;
      return;
    }
    this.leave(id);
    this.ok[id * O_DOUBLES] = key;
    this.enter(id);
  }

  /** Writes the first k evictable blocks of `tier`, first first: the list merged with the buckets in order (native's select). */
  private select(tier: number, k: number, out: Int32Array): number {
    const t = this.tiers[tier];
    let b = 0;
    let j = 0;
    let atFront = true; // every entry of bucket b before j was dropped or emitted by this call
    let horizon = 0; // pending[0, near) are the pending entries before bound[horizon] (native's horizon)
    let near = 0;
    const enterBucket = (): void => {
      // Pending entries of this bucket's range join it first (those of earlier ranges already did);
      // the pending list is split once at a horizon (the bound after the buckets holding about 2k
      // entries), so each bucket scans only the entries before it; past the horizon, again.
      const pd = t.pending;
      if (pd.end > 0) {
        if (b >= horizon) {
          horizon = b + 1;
          for (let held = 0; horizon < t.count && held < 2 * k; horizon++) held += t.at(horizon - 1).size;
          near = horizon >= t.count ? pd.end : TsBlockPool.partitionBefore(pd, 0, pd.end, t.boundKey[horizon], t.boundPos[horizon], t.boundId[horizon]);
        }
        const bk = t.at(b);
        const later = b + 1 < t.count ? TsBlockPool.partitionBefore(pd, 0, near, t.boundKey[b + 1], t.boundPos[b + 1], t.boundId[b + 1]) : near;
        if (later > 0) {
          for (let r = 0; r < later; r++) bk.push(pd.key[r], pd.pos[r], pd.id[r], pd.stamp[r]);
          bk.sorted = false;
          near -= later;
          pd.dropFront(later);
        }
      }
      if (!t.at(b).sorted) {
        while (t.at(b).size > SORT_MAX && this.splitBucket(t, b)) horizon++; // a bound before the horizon's
        this.sortBucket(t.at(b));
      }
      j = t.at(b).begin;
      atFront = true;
    };
    enterBucket();
    let cursor = t.listHead;
    let written = 0;
    while (written < k) {
      // Bring the bucket stream to a live entry.
      let top: Bucket | null = null;
      while (b < t.count) {
        const bk = t.at(b);
        while (j < bk.end) {
          if (this.isLive(bk.id[j], bk.stamp[j])) break;
          if (atFront) {
            bk.begin = j + 1;
            t.bucketEntries--;
          }
          j++;
        }
        if (j < bk.end) {
          top = bk;
          break;
        }
        if (atFront && bk.size === 0 && t.count > 1) {
          this.dropBucket(t, b);
          if (horizon > 0) horizon--; // b < horizon: the horizon's bound moved down one
        } else b++;
        if (b < t.count) enterBucket();
      }
      if (cursor === NO_BLOCK && top === null) break;
      if (cursor !== NO_BLOCK) {
        // The list's cursor goes first unless the bucket stream's entry goes before it.
        const bucketFirst =
          top !== null && TsBlockPool.before(top.key[j], top.pos[j], top.id[j], this.ok[cursor * O_DOUBLES], this.oi[cursor * O_WORDS + O_POSITION], cursor);
        if (!bucketFirst) {
          out[written++] = cursor;
          cursor = this.oi[cursor * O_WORDS + O_LIST_NEXT];
          continue;
        }
      }
      out[written++] = (top as Bucket).id[j];
      j++;
      atFront = false;
    }
    return written;
  }

  // ---- pool helpers -------------------------------------------------------------------------------

  private dropCached(id: number): void {
    const pu = this.pu;
    const pi = this.pi;
    const p = id * P_WORDS;
    this.erase(pu[p + P_HASH_LO], pu[p + P_HASH_HI]);
    pu[p + P_HASH_LO] = 0;
    pu[p + P_HASH_HI] = 0;
    pi[p + P_STATE] = FREE;
    pi[p + P_SESSION] = NO_SESSION;
    pi[p + P_POSITION] = 0;
    this.unassign(id); // the order's record: out of the order and the session list, key 0
    this.cachedCount--;
    this.pushFree(id);
  }

  private makeRoom(n: number): void {
    if (this.freeCount >= n) return;
    const need = n - this.freeCount;
    if (this.scratch.length < need) this.scratch = new Int32Array(Math.max(need, this.scratch.length * 2));
    const got = this.select(0, need, this.scratch);
    if (got !== need) fail('ERR_SAGA_INTERNAL', 'eviction order returned fewer victims than cached blocks');
    for (let i = 0; i < need; i++) this.dropCached(this.scratch[i]);
  }

  private checkKnown(id: number): void {
    if (id < 0 || id >= this.blocks) fail('ERR_SAGA_UNKNOWN_BLOCK', `block ${id} is out of range [0, ${this.blocks})`);
    if (this.pi[id * P_WORDS + P_STATE] === FREE) fail('ERR_SAGA_UNKNOWN_BLOCK', `block ${id} is free (it holds nothing)`);
  }

  private clearMarks(ids: Int32Array, n: number): void {
    const pi = this.pi;
    for (let i = 0; i < n; i++) pi[ids[i] * P_WORDS + P_MARK] = 0;
  }

  /** Erases the reserved (pending) hashes of elements [0, n). */
  private unreserve(v: Uint32Array, base: number, n: number): void {
    for (let j = 0; j < n; j++) {
      const lo = v[base + 2 * j];
      const hi = v[base + 2 * j + 1];
      if ((lo | hi) !== 0) this.erase(lo, hi);
    }
  }

  /** Reserves hashes[i] in the index with one probe (DuplicateHash if present or repeated), its slot in reservedSlots[i]; hash 0 is skipped. */
  private reserve(v: Uint32Array, base: number, i: number): void {
    const lo = v[base + 2 * i];
    const hi = v[base + 2 * i + 1];
    if ((lo | hi) === 0) return;
    const found = this.findOrReserve(lo, hi);
    if (found === NO_BLOCK) {
      this.reservedSlots[i] = this.probeSlot;
      return;
    }
    this.unreserve(v, base, i);
    fail('ERR_SAGA_DUPLICATE_HASH', `hash[${i}] is ${found === PENDING_BLOCK ? 'repeated within the batch' : `already cached in block ${found}`}`);
  }

  // ---- operations (KvCache's signatures) ----------------------------------------------------------

  /** Longest cached prefix of `hashes`: writes its block ids to outIds and returns its length. */
  lookup(hashes: BigUint64Array, outIds: Int32Array): number {
    checkArray('hashes', hashes, BigUint64Array);
    checkArray('outIds', outIds, Int32Array);
    const n = hashes.length;
    checkRoom('outIds', outIds, n);
    const v = this.viewOf(hashes);
    const base = hashes.byteOffset >>> 2;
    for (let i = 0; i < n; i++) {
      const lo = v[base + 2 * i];
      const hi = v[base + 2 * i + 1];
      if ((lo | hi) === 0) return i;
      const id = this.find(lo, hi);
      if (id === NO_BLOCK) return i;
      outIds[i] = id;
    }
    return n;
  }

  /** New referenced device blocks; hashes[i] = 0n for a block not yet full. */
  allocate(hashes: BigUint64Array, sessions: Int32Array, positions: Int32Array, outIds: Int32Array): void {
    checkArray('hashes', hashes, BigUint64Array);
    checkArray('sessions', sessions, Int32Array);
    checkArray('positions', positions, Int32Array);
    checkArray('outIds', outIds, Int32Array);
    checkSameLength('hashes and sessions', hashes, sessions);
    checkSameLength('hashes and positions', hashes, positions);
    const n = hashes.length;
    checkRoom('outIds', outIds, n);
    const v = this.viewOf(hashes);
    const base = hashes.byteOffset >>> 2;
    if (n > this.freeCount + this.cachedCount) {
      // Bound to fail: the first element error if any (without reserving hashes), else OutOfBlocks.
      const seen = new Set<bigint>();
      for (let i = 0; i < n; i++) {
        if (sessions[i] < NO_SESSION) fail('ERR_SAGA_BAD_ARGUMENT', `sessions[${i}] must be >= -1`);
        if (positions[i] < 0) fail('ERR_SAGA_BAD_ARGUMENT', `positions[${i}] must be >= 0`);
        const lo = v[base + 2 * i];
        const hi = v[base + 2 * i + 1];
        if ((lo | hi) === 0) continue;
        const found = this.find(lo, hi);
        if (found !== NO_BLOCK) fail('ERR_SAGA_DUPLICATE_HASH', `hash[${i}] is already cached in block ${found}`);
        const h = hashes[i];
        if (seen.has(h)) fail('ERR_SAGA_DUPLICATE_HASH', `hash[${i}] is repeated within the batch`);
        seen.add(h);
      }
      fail('ERR_SAGA_OUT_OF_BLOCKS', `allocate needs ${n} device blocks; ${this.freeCount} free and ${this.cachedCount} cached`);
    }
    if (this.reservedSlots.length < n) this.reservedSlots = new Int32Array(Math.max(n, this.reservedSlots.length * 2));
    for (let i = 0; i < n; i++) {
      if (sessions[i] < NO_SESSION) {
        this.unreserve(v, base, i);
        fail('ERR_SAGA_BAD_ARGUMENT', `sessions[${i}] must be >= -1`);
      }
      if (positions[i] < 0) {
        this.unreserve(v, base, i);
        fail('ERR_SAGA_BAD_ARGUMENT', `positions[${i}] must be >= 0`);
      }
      this.reserve(v, base, i);
    }
    // Evictions erase index entries and may shift the reserved ones: then each is found again (native's rule).
    const slotsHeld = this.freeCount >= n;
    this.makeRoom(n);
    const pu = this.pu;
    const pi = this.pi;
    const reserved = this.reservedSlots;
    for (let i = 0; i < n; i++) {
      const id = this.popFree();
      const lo = v[base + 2 * i];
      const hi = v[base + 2 * i + 1];
      const p = id * P_WORDS;
      pu[p + P_HASH_LO] = lo;
      pu[p + P_HASH_HI] = hi;
      if ((lo | hi) !== 0) {
        if (slotsHeld) this.slotIds[(reserved[i] << 2) + 2] = id;
        else this.put(lo, hi, id);
      }
      pi[p + P_REFCOUNT] = 1;
      pi[p + P_STATE] = REFERENCED;
      pi[p + P_SESSION] = sessions[i];
      pi[p + P_POSITION] = positions[i];
      this.assign(id, sessions[i], positions[i]);
      outIds[i] = id;
    }
    this.referencedCount += n;
  }

  /** Hashes for blocks allocated without one, now full. */
  commit(ids: Int32Array, hashes: BigUint64Array): void {
    checkArray('ids', ids, Int32Array);
    checkArray('hashes', hashes, BigUint64Array);
    checkSameLength('ids and hashes', ids, hashes);
    const n = ids.length;
    const v = this.viewOf(hashes);
    const base = hashes.byteOffset >>> 2;
    const pu = this.pu;
    const pi = this.pi;
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      const p = id * P_WORDS;
      let code: SagaErrorCode | null = null;
      if (id < 0 || id >= this.blocks || pi[p + P_STATE] === FREE) code = 'ERR_SAGA_UNKNOWN_BLOCK';
      else if (pi[p + P_STATE] !== REFERENCED) code = 'ERR_SAGA_BLOCK_STATE';
      else if ((pu[p + P_HASH_LO] | pu[p + P_HASH_HI]) !== 0) code = 'ERR_SAGA_BLOCK_STATE';
      else if ((v[base + 2 * i] | v[base + 2 * i + 1]) === 0) code = 'ERR_SAGA_BAD_ARGUMENT';
      else if (pi[p + P_MARK] !== 0) code = 'ERR_SAGA_BAD_ARGUMENT';
      if (code !== null) {
        this.unreserve(v, base, i);
        this.clearMarks(ids, i);
        fail(code, `commit: element ${i} (block ${id}) rejected`);
      }
      pi[p + P_MARK] = 1;
      const lo = v[base + 2 * i];
      const hi = v[base + 2 * i + 1];
      const found = this.find(lo, hi);
      if (found !== NO_BLOCK) {
        this.unreserve(v, base, i);
        this.clearMarks(ids, i + 1);
        fail('ERR_SAGA_DUPLICATE_HASH', `hash[${i}] is ${found === PENDING_BLOCK ? 'repeated within the batch' : `already cached in block ${found}`}`);
      }
      this.put(lo, hi, PENDING_BLOCK);
    }
    this.clearMarks(ids, n);
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      const lo = v[base + 2 * i];
      const hi = v[base + 2 * i + 1];
      pu[id * P_WORDS + P_HASH_LO] = lo;
      pu[id * P_WORDS + P_HASH_HI] = hi;
      this.put(lo, hi, id);
    }
  }

  acquire(ids: Int32Array): void {
    checkArray('ids', ids, Int32Array);
    const n = ids.length;
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      this.checkKnown(id);
      if (id >= this.deviceCapacity) fail('ERR_SAGA_BLOCK_STATE', `block ${id} is on the host tier`);
    }
    const pi = this.pi;
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      const p = id * P_WORDS;
      if (pi[p + P_REFCOUNT]++ === 0) {
        pi[p + P_STATE] = REFERENCED;
        this.leave(id);
        this.cachedCount--;
        this.referencedCount++;
      }
    }
  }

  /** Drops one reference each; a block reaching zero stays cached with keys[i] as its eviction key. */
  release(ids: Int32Array, keys: Float64Array): void {
    checkArray('ids', ids, Int32Array);
    checkArray('keys', keys, Float64Array);
    checkSameLength('ids and keys', ids, keys);
    checkKeys(keys);
    const n = ids.length;
    const pu = this.pu;
    const pi = this.pi;
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      const p = id * P_WORDS;
      if (id < 0 || id >= this.blocks || pi[p + P_STATE] === FREE) {
        this.clearMarks(ids, i);
        fail('ERR_SAGA_UNKNOWN_BLOCK', `block ${id} is out of range or free`);
      }
      if (id >= this.deviceCapacity) {
        this.clearMarks(ids, i);
        fail('ERR_SAGA_BLOCK_STATE', `block ${id} is on the host tier and holds no references`);
      }
      if (++pi[p + P_MARK] > pi[p + P_REFCOUNT]) {
        this.clearMarks(ids, i + 1);
        fail('ERR_SAGA_DOUBLE_RELEASE', `block ${id} released more often than it is referenced`);
      }
    }
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      const p = id * P_WORDS;
      pi[p + P_MARK] = 0; // validation's count, cleared on the pass that touches the record anyway
      if (--pi[p + P_REFCOUNT] !== 0) continue;
      this.referencedCount--;
      if ((pu[p + P_HASH_LO] | pu[p + P_HASH_HI]) !== 0) {
        pi[p + P_STATE] = CACHED;
        this.cachedCount++;
        this.ok[id * O_DOUBLES] = keys[i] + 0; // + 0 turns -0 into +0, as native normalises
        this.enter(id);
      } else {
        pi[p + P_STATE] = FREE;
        pi[p + P_SESSION] = NO_SESSION;
        pi[p + P_POSITION] = 0;
        this.unassign(id);
        this.pushFree(id);
      }
    }
  }

  setKeys(ids: Int32Array, keys: Float64Array): void {
    checkArray('ids', ids, Int32Array);
    checkArray('keys', keys, Float64Array);
    checkSameLength('ids and keys', ids, keys);
    checkKeys(keys);
    const n = ids.length;
    for (let i = 0; i < n; i++) this.checkKnown(ids[i]);
    for (let i = 0; i < n; i++) this.setKey(ids[i], keys[i] + 0);
  }

  /** Re-keys every block of sessions[i] at position >= minPositions[i]; returns the updates made. */
  setSessionKeys(sessions: Int32Array, keys: Float64Array, minPositions: Int32Array): number {
    checkArray('sessions', sessions, Int32Array);
    checkArray('keys', keys, Float64Array);
    checkArray('minPositions', minPositions, Int32Array);
    checkSameLength('sessions and keys', sessions, keys);
    checkSameLength('sessions and minPositions', sessions, minPositions);
    checkKeys(keys);
    const n = sessions.length;
    for (let i = 0; i < n; i++) {
      if (sessions[i] < 0) fail('ERR_SAGA_BAD_ARGUMENT', `sessions[${i}] must be >= 0`);
      if (minPositions[i] < 0) fail('ERR_SAGA_BAD_ARGUMENT', `minPositions[${i}] must be >= 0`);
    }
    let updates = 0;
    const oi = this.oi;
    for (let i = 0; i < n; i++) {
      const slot = this.sessionEnds(sessions[i], false);
      if (slot < 0) continue;
      const k = keys[i] + 0;
      const minPos = minPositions[i];
      for (let id = this.slotHead[slot]; id !== NO_BLOCK; id = oi[id * O_WORDS + O_SESSION_NEXT]) {
        if (oi[id * O_WORDS + O_POSITION] < minPos) continue;
        updates++;
        this.setKey(id, k);
      }
    }
    return updates;
  }

  /** The next outIds.length blocks eviction would take from `tier`, first first; changes nothing. */
  victims(tier: number, outIds: Int32Array): number {
    if (tier !== 0 && tier !== 1) throw badArgument(`tier must be Tier.Device (0) or Tier.Host (1), got ${String(tier)}`);
    checkArray('outIds', outIds, Int32Array);
    let k = outIds.length;
    const cached = tier === 0 ? this.cachedCount : 0;
    if (k > cached) k = cached;
    if (k === 0) return 0;
    return this.select(tier, k, outIds);
  }

  evict(ids: Int32Array): void {
    checkArray('ids', ids, Int32Array);
    const n = ids.length;
    const pi = this.pi;
    // Per element: its own checks, then BadArgument if its id came earlier in the batch (native's checkEach).
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      const p = id * P_WORDS;
      if (id < 0 || id >= this.blocks || pi[p + P_STATE] === FREE) {
        this.clearMarks(ids, i);
        fail('ERR_SAGA_UNKNOWN_BLOCK', `block ${id} is out of range or free`);
      }
      if (pi[p + P_STATE] !== CACHED) {
        this.clearMarks(ids, i);
        fail('ERR_SAGA_BLOCK_STATE', `block ${id} is referenced and cannot be evicted`);
      }
      if (pi[p + P_MARK] !== 0) {
        this.clearMarks(ids, i);
        fail('ERR_SAGA_BAD_ARGUMENT', `block ${id} appears twice in the batch[${i}]`);
      }
      pi[p + P_MARK] = 1;
    }
    this.clearMarks(ids, n);
    for (let i = 0; i < n; i++) this.dropCached(ids[i]);
  }

  counts(): { deviceFree: number; deviceCached: number; deviceReferenced: number; hostFree: number; hostCached: number } {
    return {
      deviceFree: this.freeCount,
      deviceCached: this.cachedCount,
      deviceReferenced: this.referencedCount,
      hostFree: 0,
      hostCached: 0,
    };
  }

  /** A copy of the observable state, shaped like KvCache.snapshot() (without the block table). */
  snapshot(): TsPoolState {
    const d = this.blocks;
    const hash = new BigUint64Array(d);
    const h32 = new Uint32Array(hash.buffer);
    const refcount = new Int32Array(d);
    const state = new Uint8Array(d);
    const session = new Int32Array(d);
    const position = new Int32Array(d);
    const key = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      const p = i * P_WORDS;
      h32[2 * i] = this.pu[p + P_HASH_LO];
      h32[2 * i + 1] = this.pu[p + P_HASH_HI];
      refcount[i] = this.pi[p + P_REFCOUNT];
      state[i] = this.pi[p + P_STATE];
      session[i] = this.pi[p + P_SESSION];
      position[i] = this.pi[p + P_POSITION];
      key[i] = this.ok[i * O_DOUBLES];
    }
    const queue = new Int32Array(this.freeCount);
    for (let i = 0; i < this.freeCount; i++) queue[i] = this.ring[(this.head + i) % this.ring.length];
    return {
      hash,
      refcount,
      state,
      session,
      position,
      key,
      deviceFreeQueue: queue,
      hostFreeQueue: new Int32Array(0),
    };
  }

  /** Where the device tier's evictable blocks are: [in the list, live in buckets or pending, bucket and pending entries]. */
  orderShape(): [number, number, number] {
    const t = this.tiers[0];
    return [this.cachedCount - t.bucketLive, t.bucketLive, t.bucketEntries];
  }
}
