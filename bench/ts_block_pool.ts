/**
 * TsBlockPool: a fair plain-TypeScript baseline for the native BlockPool (native/src/block_pool.cc and
 * native/src/cpu/eviction_order.cc, as of commit 19f3dde), written the way a competent TS engineer would
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
 *   the list's tail: LRU keys, O(1)) and a lazy 4-ary min-heap over entries (key, position, id, stamp)
 *   in typed arrays (structure of arrays; native's heap is a vector of 24-byte entries) for keys
 *   arriving out of order; a block leaving the heap turns its entry stale
 *   (per-block place and stamp), stale entries are skipped, the heap is rebuilt once entries >
 *   2 * live + 64; victims come from merging the list with a frontier walk of the heap (a binary
 *   min-heap of heap indices), so selection changes nothing observable;
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
const ARITY = 4;
// Where an evictable block's entry lives (native's Place).
const NOT_EVICTABLE = 0;
const IN_LIST = 1;
const IN_HEAP = 2;

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

/** One tier's order: the in-order list's ends and the lazy 4-ary heap, entries as structure of arrays. */
class Tiered {
  key: Float64Array;
  pos: Int32Array;
  id: Int32Array;
  stamp: Uint32Array;
  size = 0; // heap entries
  heapLive = 0; // live heap entries; size - heapLive are stale
  listHead = NO_BLOCK;
  listTail = NO_BLOCK;

  constructor(capacity: number) {
    this.key = new Float64Array(capacity);
    this.pos = new Int32Array(capacity);
    this.id = new Int32Array(capacity);
    this.stamp = new Uint32Array(capacity);
  }

  grow(): void {
    const cap = Math.max(64, this.key.length * 2);
    const key = new Float64Array(cap);
    key.set(this.key);
    const pos = new Int32Array(cap);
    pos.set(this.pos);
    const id = new Int32Array(cap);
    id.set(this.id);
    const stamp = new Uint32Array(cap);
    stamp.set(this.stamp);
    this.key = key;
    this.pos = pos;
    this.id = id;
    this.stamp = stamp;
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
  private frontier: Int32Array; // select's scratch: heap indices, a binary min-heap by entry order
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
    this.tiers = [new Tiered(1024), new Tiered(64)];
    this.frontier = new Int32Array(1024);
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

  // ---- heap mechanics -----------------------------------------------------------------------------

  /** True when heap entry a goes before heap entry b: smaller key, then deeper position, then smaller id. */
  private static before(t: Tiered, a: number, b: number): boolean {
    const ka = t.key[a];
    const kb = t.key[b];
    if (ka !== kb) return ka < kb;
    const pa = t.pos[a];
    const pb = t.pos[b];
    if (pa !== pb) return pa > pb;
    return t.id[a] < t.id[b];
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

  private isLive(t: Tiered, e: number): boolean {
    const o = t.id[e] * O_WORDS;
    return this.oi[o + O_PLACE] === IN_HEAP && this.ou[o + O_STAMP] === t.stamp[e];
  }

  private siftUp(t: Tiered, i: number): void {
    const keys = t.key;
    const poss = t.pos;
    const ids = t.id;
    const stamps = t.stamp;
    const k = keys[i];
    const p = poss[i];
    const id = ids[i];
    const st = stamps[i];
    while (i > 0) {
      const parent = ((i - 1) / ARITY) | 0;
      const kp = keys[parent];
      // Stop unless e goes before its parent.
      if (!(k < kp || (k === kp && (p > poss[parent] || (p === poss[parent] && id < ids[parent]))))) break;
      keys[i] = kp;
      poss[i] = poss[parent];
      ids[i] = ids[parent];
      stamps[i] = stamps[parent];
      i = parent;
    }
    keys[i] = k;
    poss[i] = p;
    ids[i] = id;
    stamps[i] = st;
  }

  private siftDown(t: Tiered, i: number): void {
    const keys = t.key;
    const poss = t.pos;
    const ids = t.id;
    const stamps = t.stamp;
    const n = t.size;
    const k = keys[i];
    const p = poss[i];
    const id = ids[i];
    const st = stamps[i];
    for (;;) {
      const first = i * ARITY + 1;
      if (first >= n) break;
      let best = first;
      const last = first + ARITY < n ? first + ARITY : n;
      for (let c = first + 1; c < last; c++) {
        if (TsBlockPool.before(t, c, best)) best = c;
      }
      const kb = keys[best];
      // Stop unless the best child goes before e.
      if (!(kb < k || (kb === k && (poss[best] > p || (poss[best] === p && ids[best] < id))))) break;
      keys[i] = kb;
      poss[i] = poss[best];
      ids[i] = ids[best];
      stamps[i] = stamps[best];
      i = best;
    }
    keys[i] = k;
    poss[i] = p;
    ids[i] = id;
    stamps[i] = st;
  }

  private popRoot(t: Tiered): void {
    const last = --t.size;
    t.key[0] = t.key[last];
    t.pos[0] = t.pos[last];
    t.id[0] = t.id[last];
    t.stamp[0] = t.stamp[last];
    if (t.size > 0) this.siftDown(t, 0);
  }

  /** Rebuilds the heap from its live entries once stale ones outnumber them (amortised O(1)). */
  private compactIfStale(t: Tiered): void {
    if (t.size <= 2 * t.heapLive + 64) return;
    let w = 0;
    for (let r = 0; r < t.size; r++) {
      if (!this.isLive(t, r)) continue;
      t.key[w] = t.key[r];
      t.pos[w] = t.pos[r];
      t.id[w] = t.id[r];
      t.stamp[w] = t.stamp[r];
      w++;
    }
    t.size = w;
    for (let i = ((w / ARITY) | 0) + 1; i-- > 0; ) {
      if (i < w) this.siftDown(t, i);
    }
  }

  // ---- placing evictable blocks -------------------------------------------------------------------

  /** Places an evictable block (key set) in its tier's list (at or after the tail) or heap. */
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
    oi[o + O_PLACE] = IN_HEAP;
    t.heapLive++;
    if (t.size === t.key.length) t.grow();
    const i = t.size++;
    const st = (this.ou[o + O_STAMP] + 1) >>> 0;
    this.ou[o + O_STAMP] = st;
    t.key[i] = this.ok[id * O_DOUBLES];
    t.pos[i] = oi[o + O_POSITION];
    t.id[i] = id;
    t.stamp[i] = st;
    this.siftUp(t, i);
  }

  /** Takes an evictable block out of its list or heap (its heap entry turns stale). */
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
    oi[o + O_PLACE] = NOT_EVICTABLE;
    t.heapLive--;
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

  /** Writes the first k evictable blocks of `tier`, first first: the list merged with a frontier walk of the heap. */
  private select(tier: number, k: number, out: Int32Array): number {
    const t = this.tiers[tier];
    while (t.size > 0 && !this.isLive(t, 0)) this.popRoot(t); // physical cleanup only
    let f = this.frontier;
    let fsize = 0;
    if (t.size > 0) f[fsize++] = 0;
    let cursor = t.listHead;
    let written = 0;
    while (written < k) {
      // Bring a live entry to the frontier's top (stale ones are expanded and dropped).
      let top = -1; // heap index at the frontier's top, once live
      while (fsize > 0) {
        const i = f[0];
        if (this.isLive(t, i)) {
          top = i;
          break;
        }
        fsize = this.frontierPop(t, f, fsize);
        f = this.frontierExpand(t, i, fsize);
        fsize = this.frontierSize;
      }
      if (cursor === NO_BLOCK && top < 0) break;
      if (cursor !== NO_BLOCK) {
        // The list's cursor goes first unless the heap's top goes before it.
        let heapFirst = false;
        if (top >= 0) {
          const kh = t.key[top];
          const kc = this.ok[cursor * O_DOUBLES];
          if (kh !== kc) heapFirst = kh < kc;
          else {
            const ph = t.pos[top];
            const pc = this.oi[cursor * O_WORDS + O_POSITION];
            heapFirst = ph !== pc ? ph > pc : t.id[top] < cursor;
          }
        }
        if (!heapFirst) {
          out[written++] = cursor;
          cursor = this.oi[cursor * O_WORDS + O_LIST_NEXT];
          continue;
        }
      }
      fsize = this.frontierPop(t, f, fsize);
      out[written++] = t.id[top];
      f = this.frontierExpand(t, top, fsize);
      fsize = this.frontierSize;
    }
    return written;
  }

  private frontierSize = 0;

  /** Removes the frontier's top (binary heap by entry order); returns the new size. */
  private frontierPop(t: Tiered, f: Int32Array, fsize: number): number {
    const moved = f[--fsize];
    if (fsize === 0) return 0;
    let hole = 0;
    for (;;) {
      const l = 2 * hole + 1;
      if (l >= fsize) break;
      let c = l;
      if (l + 1 < fsize && TsBlockPool.before(t, f[l + 1], f[l])) c = l + 1;
      if (!TsBlockPool.before(t, f[c], moved)) break;
      f[hole] = f[c];
      hole = c;
    }
    f[hole] = moved;
    return fsize;
  }

  /** Pushes heap index i's children onto the frontier; returns the (maybe grown) frontier, size in frontierSize. */
  private frontierExpand(t: Tiered, i: number, fsize: number): Int32Array {
    let f = this.frontier;
    const first = i * ARITY + 1;
    const last = first + ARITY < t.size ? first + ARITY : t.size;
    for (let c = first; c < last; c++) {
      if (fsize === f.length) {
        const g = new Int32Array(f.length * 2);
        g.set(f);
        this.frontier = f = g;
      }
      let hole = fsize++;
      while (hole > 0) {
        const parent = (hole - 1) >> 1;
        if (!TsBlockPool.before(t, c, f[parent])) break;
        f[hole] = f[parent];
        hole = parent;
      }
      f[hole] = c;
    }
    this.frontierSize = fsize;
    return f;
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

  /** Where the device tier's evictable blocks are: [in the list, live in the heap, heap entries]. */
  orderShape(): [number, number, number] {
    const t = this.tiers[0];
    return [this.cachedCount - t.heapLive, t.heapLive, t.size];
  }
}
