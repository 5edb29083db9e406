/**
 * One simulated serving engine (a vLLM v1 instance on `tp` GPUs): continuous batching with a sequence
 * limit and a per-iteration token budget, chunked prefill, prefix caching on a real native KvCache, and
 * recompute preemption.
 *
 * Scheduling follows vLLM v1's scheduler, one iteration at a time:
 * 1. running requests, in admission order, each get the tokens it still needs (the rest of its prompt,
 *    chunked to the remaining budget, or 1 decode token); KV slots for them are allocated first, and when
 *    blocks run out the queue policy's victim (vllm: the newest running request) is preempted: its blocks
 *    are released (they stay cached, keyed by the eviction policy) and it goes back to the waiting queue
 *    to be recomputed from scratch;
 * 2. if nothing was preempted, waiting requests in the queue policy's order (a `dynamic` policy's
 *    priorities are recomputed before each admission; others' once, at enqueue): the longest cached prefix
 *    of the prompt is looked up (a fully cached prompt still recomputes its last token), the hits are
 *    acquired, blocks for the rest of the chunk allocated; the first that does not fit (blocks, budget,
 *    sequence limit) stops admission.
 * Blocks are allocated unhashed and get their hash (commit) once full and computed. A full block past
 * the prompt's hashed blocks is named by what it holds: when the task's next call extends this prompt
 * (the agent appends the model's reply to its context), the next call's hash at that position; otherwise
 * a hash of its own that no other call shares. A hash already cached elsewhere (the same content
 * computed twice) is left uncommitted, and that block is freed at release. On completion a request's
 * blocks are released tail first with the eviction policy's keys.
 *
 * Bulk decode: while every running request is decoding and no waiting request can be admitted (none
 * waits, or the sequence limit, the token budget or the KV blocks stop the queue's head, and none of
 * these can change before a request finishes), the engine advances m decode iterations in one step, m
 * being the iterations until the first request finishes, cut short so that no request runs out of
 * blocks. Their time has a closed form (CostModel.decodeRunS). An arrival during such a run cuts it at
 * the end of the iteration in progress (`interrupt`), where the new request can be scheduled.
 */
import { SagaError } from '../errors';
import type { KvCache } from '../kv/kv_cache';
import type { CallInfo, EngineView, EvictionPolicy, QueuePolicy, ReleaseInfo, RunningInfo, WaitingInfo } from '../policy/types';
import { fmix64 } from '../workloads/hashing';
import type { Call, Task } from '../workloads/types';
import { CostModel, type BatchShape } from './cost_model';

export interface EngineConfig {
  readonly capacityBlocks: number;
  readonly blockSize: number;
  readonly maxNumSeqs: number;
  readonly maxNumBatchedTokens: number;
  /** Advance runs of decode iterations in one step (default true; false steps one iteration at a time). */
  readonly bulkDecode?: boolean;
}

/** The hash of block `k` of call `callIndex` of `session` when no other call holds it. Never 0n. */
export function ownBlockHash(session: number, callIndex: number, k: number): bigint {
  const h = fmix64(0x5a6a5f6f75747075n ^ (BigInt(session) << 40n) ^ (BigInt(callIndex) << 24n) ^ BigInt(k));
  return h === 0n ? 1n : h;
}

/** One call being served. */
export class Request implements RunningInfo {
  readonly call: CallInfo;
  readonly promptHashes: BigUint64Array;
  readonly promptTokens: number;
  readonly outputTokens: number;
  /** How the call ends (its output decides): stop reason and tool, where the workload says. */
  readonly stop: string | undefined;
  readonly toolKind: string | undefined;
  /** The task's next call, when its prompt extends this one's (its hashes name our output blocks). */
  private readonly continuation: Call | undefined;
  /** Queue priority (lower first), the policy's tie-break (0 without one) and arrival order (ties). */
  priority = 0;
  tieBreak = 0;
  /** Output tokens the queue policy expected when it was considered for admission (growth-aware admission). */
  expectedOutput = 0;
  readonly order: number;
  /** Tokens of the sequence (prompt + generated) and how many of them have KV computed. */
  numTokens: number;
  computed = 0;
  generated = 0;
  /** Device block ids of the sequence, in order; the first `numBlocks` are valid. */
  readonly blockIds: Int32Array;
  numBlocks = 0;
  /** Leading blocks whose hash is settled (hit, committed, or left unhashed). */
  settledBlocks = 0;
  admittedS = 0;
  everAdmitted = false;
  /** Prompt tokens found cached at the first admission. */
  cachedTokens = 0;
  firstTokenS = NaN;
  finishS = NaN;
  preemptions = 0;
  /** Engine it was routed to, and when it joined that engine's queue (again, after a preemption or a steal). */
  engineId = -1;
  enqueuedS = 0;

  /** `buffer`: block-id storage to reuse (a finished call's of the same task), if it is large enough. */
  constructor(call: CallInfo, task: Task, order: number, blockSize: number, buffer?: Int32Array) {
    this.call = call;
    this.order = order;
    const spec = task.calls[call.callIndex];
    this.promptHashes = spec.blockHashes;
    this.promptTokens = Math.max(1, spec.promptTokens);
    this.outputTokens = Math.max(1, spec.outputTokens);
    this.stop = spec.stop;
    this.toolKind = spec.toolKind;
    this.numTokens = this.promptTokens;
    const blocks = Math.ceil((this.promptTokens + this.outputTokens) / blockSize);
    this.blockIds = buffer !== undefined && buffer.length >= blocks ? buffer : new Int32Array(blocks + (blocks >> 2));
    const next = task.calls[call.callIndex + 1];
    const p = this.promptHashes.length;
    const extendsPrompt = next !== undefined && (p === 0 || (next.blockHashes.length >= p && next.blockHashes[p - 1] === this.promptHashes[p - 1]));
    this.continuation = extendsPrompt ? next : undefined;
  }

  /** The hash naming block `k` of the sequence (see the module comment). */
  hashOf(k: number): bigint {
    if (k < this.promptHashes.length) return this.promptHashes[k];
    const next = this.continuation;
    if (next !== undefined && k < next.blockHashes.length) return next.blockHashes[k];
    return ownBlockHash(this.call.session, this.call.callIndex, k);
  }

  /** Blocks the whole call needs at most (prompt + output - 1 tokens of KV). */
  maxBlocks(blockSize: number): number {
    return Math.ceil((this.promptTokens + this.outputTokens - 1) / blockSize);
  }
}

/** Binary heap of waiting requests: (priority, order) ascending. */
class WaitingQueue {
  private readonly items: Request[] = [];
  tokens = 0;

  get size(): number {
    return this.items.length;
  }

  private less(a: Request, b: Request): boolean {
    return a.priority < b.priority || (a.priority === b.priority && (a.tieBreak < b.tieBreak || (a.tieBreak === b.tieBreak && a.order < b.order)));
  }

  /** Recomputes every waiting request's keys with `update` and restores the heap (O(n)). */
  reprioritize(update: (r: Request) => void): void {
    const items = this.items;
    for (let i = 0; i < items.length; i++) update(items[i]);
    for (let i = (items.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  private siftDown(start: number): void {
    const items = this.items;
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < items.length && this.less(items[l], items[m])) m = l;
      if (r < items.length && this.less(items[r], items[m])) m = r;
      if (m === i) break;
      [items[i], items[m]] = [items[m], items[i]];
      i = m;
    }
  }

  push(r: Request): void {
    const items = this.items;
    items.push(r);
    this.tokens += r.numTokens;
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  peek(): Request | undefined {
    return this.items[0];
  }

  /** The waiting requests, in heap order (not admission order). */
  list(): readonly Request[] {
    return this.items;
  }

  /** Takes `r` out of the queue (O(n): stealing is rare next to admission). Returns whether it was there. */
  remove(r: Request): boolean {
    const items = this.items;
    const i = items.indexOf(r);
    if (i < 0) return false;
    this.tokens -= r.numTokens;
    const last = items.pop() as Request;
    if (i < items.length) {
      items[i] = last;
      for (let j = (items.length >> 1) - 1; j >= 0; j--) this.siftDown(j);
    }
    return true;
  }

  pop(): Request | undefined {
    const items = this.items;
    const top = items[0];
    if (top === undefined) return undefined;
    this.tokens -= top.numTokens;
    const last = items.pop() as Request;
    if (items.length > 0) {
      items[0] = last;
      this.siftDown(0);
    }
    return top;
  }
}

/** What the engine tells its owner. */
export interface EngineHooks {
  /** The engine's next step ends at `timeS`; `version` identifies it (older versions are stale). */
  scheduleStepEnd(engineId: number, timeS: number, version: number): void;
  /** A request was admitted for the first time. */
  onAdmit(request: Request, nowS: number): void;
  /** A request produced its last token. */
  onFinish(request: Request, nowS: number): void;
}

/** Per-engine totals for the metrics. */
export interface EngineStats {
  iterations: number;
  steps: number;
  busyS: number;
  prefillTokens: number;
  outputTokens: number;
  preemptions: number;
  /** Integrals over time of blocks holding data (referenced + cached) and of referenced blocks. */
  occupiedBlockS: number;
  referencedBlockS: number;
  /** Time cached blocks spent between their release and a later hit (cache residency that paid off). */
  hitCachedBlockS: number;
}

const STEP_NONE = 0;
const STEP_SINGLE = 1;
const STEP_BULK = 2;

export class Engine implements EngineView {
  readonly id: number;
  readonly kv: KvCache;
  readonly config: EngineConfig;
  readonly cost: CostModel;
  private readonly queue: QueuePolicy;
  /** The queue policy's priorities change while calls wait: recompute them before each admission. */
  private readonly dynamicQueue: boolean;
  /** Admission reserves room for running calls to grow (QueuePolicy.expectedOutputTokens). */
  private readonly growthAware: boolean;
  private readonly eviction: EvictionPolicy;
  private readonly hooks: EngineHooks;
  private readonly bs: number;

  readonly running: Request[] = [];
  private readonly waiting = new WaitingQueue();

  // The step in flight.
  private stepKind = STEP_NONE;
  private stepStartS = 0;
  private stepEndS = 0;
  private version = 0;
  private readonly pieceReqs: Request[] = [];
  private readonly pieceTokens: number[] = [];
  private bulkIters = 0;
  private bulkBatch = 0;
  private bulkContext = 0;

  // Mirror of block holders (for hit-time accounting) and whether a block carries a hash.
  private readonly holders: Int32Array;
  private readonly hashed: Uint8Array;
  private readonly cachedSince: Float64Array;
  /** Releases so far (ReleaseInfo.sequence). */
  private releases = 0;

  // The last prefix lookup of a waiting request, valid while no block was evicted or committed since.
  private hitIds = new Int32Array(1024);
  private memoReq: Request | undefined;
  private memoEpoch = -1;
  private memoHit = 0;
  /** Bumped whenever cached prefixes may have changed (an allocation that evicts, a commit, an eviction). */
  private kvEpoch = 0;

  // Scratch buffers (grown on demand).
  private scratchIds = new Int32Array(1024);
  private scratchIds2 = new Int32Array(1024);
  private scratchSessions = new Int32Array(1024);
  private scratchPositions = new Int32Array(1024);
  private scratchZeroHashes = new BigUint64Array(1024);
  private scratchKeys = new Float64Array(1024);
  private commitIds = new Int32Array(1024);
  private commitHashes = new BigUint64Array(1024);
  private commitCount = 0;
  private readonly counts = new Int32Array(3);

  readonly stats: EngineStats = {
    iterations: 0,
    steps: 0,
    busyS: 0,
    prefillTokens: 0,
    outputTokens: 0,
    preemptions: 0,
    occupiedBlockS: 0,
    referencedBlockS: 0,
    hitCachedBlockS: 0,
  };
  private sampleS = 0;
  private sampleOccupied = 0;
  private sampleReferenced = 0;

  constructor(id: number, kv: KvCache, config: EngineConfig, cost: CostModel, queue: QueuePolicy, eviction: EvictionPolicy, hooks: EngineHooks) {
    this.id = id;
    this.kv = kv;
    this.config = config;
    this.cost = cost;
    this.queue = queue;
    this.dynamicQueue = queue.dynamic === true;
    this.growthAware = queue.expectedOutputTokens !== undefined;
    this.eviction = eviction;
    this.hooks = hooks;
    this.bs = config.blockSize;
    this.holders = new Int32Array(kv.deviceCapacity);
    this.hashed = new Uint8Array(kv.deviceCapacity);
    this.cachedSince = new Float64Array(kv.deviceCapacity);
  }

  // ---- EngineView ----

  outstandingCalls(): number {
    return this.running.length + this.waiting.size;
  }

  queuedTokens(): number {
    return this.waiting.tokens;
  }

  cachedPrefixBlocks(hashes: BigUint64Array): number {
    if (hashes.length === 0) return 0;
    return this.kv.lookup(hashes, this.ids1(hashes.length));
  }

  get blockSize(): number {
    return this.bs;
  }

  get capacityBlocks(): number {
    return this.kv.deviceCapacity;
  }

  waitingCalls(): readonly WaitingInfo[] {
    return this.waiting.list();
  }

  freeBlocks(): number {
    this.readCounts();
    return this.kv.deviceCapacity - this.counts[2];
  }

  prefillEstimateS(promptTokens: number, cachedTokens: number): number {
    return this.cost.prefillS(promptTokens, cachedTokens, this.config.maxNumBatchedTokens);
  }

  /** Takes a waiting call off this engine (to move it elsewhere); undefined when it is not waiting here. */
  takeWaiting(call: CallInfo): Request | undefined {
    for (const r of this.waiting.list()) {
      if (r.call === call) {
        this.waiting.remove(r);
        return r;
      }
    }
    return undefined;
  }

  get idle(): boolean {
    return this.stepKind === STEP_NONE;
  }

  /** Blocks in use or cached right now. */
  occupiedBlocks(): number {
    this.readCounts();
    return this.counts[1] + this.counts[2];
  }

  // ---- driving ----

  /** A request routed here at `nowS`. */
  enqueue(req: Request, nowS: number): void {
    req.engineId = this.id;
    req.enqueuedS = nowS;
    req.priority = this.queue.priority(req.call, nowS);
    if (this.queue.tieBreak !== undefined) req.tieBreak = this.queue.tieBreak(req.call, nowS);
    this.waiting.push(req);
    if (this.stepKind === STEP_NONE) this.startStep(nowS);
    else if (this.stepKind === STEP_BULK) this.interrupt(nowS);
  }

  /** The step that was to end at `nowS` with `version` has ended. Returns the requests it finished. */
  stepEnded(nowS: number, version: number): Request[] | undefined {
    if (version !== this.version || this.stepKind === STEP_NONE) return undefined;
    const finished = this.stepKind === STEP_SINGLE ? this.finishSingle(nowS) : this.finishBulk(nowS);
    this.stepKind = STEP_NONE;
    this.startStep(nowS);
    return finished;
  }

  /** Brings the time integrals up to `nowS` (call once at the end of a run). */
  settle(nowS: number): void {
    this.accumulate(nowS);
  }

  /** Drops every cached block and resets the statistics (the engine must be idle and empty). */
  reset(): void {
    if (this.running.length > 0 || this.waiting.size > 0 || this.stepKind !== STEP_NONE) {
      throw new SagaError('engine reset while it still has requests', 'ERR_SAGA_INTERNAL');
    }
    this.readCounts();
    const cached = this.counts[1];
    if (cached > 0) {
      const ids = this.ids1(cached);
      const n = this.kv.victims(0, ids);
      this.kv.evict(ids.subarray(0, n));
    }
    this.kvEpoch++;
    this.memoReq = undefined;
    this.holders.fill(0);
    this.hashed.fill(0);
    for (const key of Object.keys(this.stats) as (keyof EngineStats)[]) this.stats[key] = 0;
    this.sampleS = 0;
    this.sampleOccupied = 0;
    this.sampleReferenced = 0;
  }

  // ---- steps ----

  private startStep(nowS: number): void {
    this.accumulate(nowS);
    if (this.running.length === 0 && this.waiting.size === 0) {
      this.stepKind = STEP_NONE;
      return;
    }
    this.version++;
    const m = this.bulkDecodeIterations(nowS);
    if (m > 0) {
      let context = 0;
      for (const r of this.running) context += r.numTokens;
      this.bulkIters = m;
      this.bulkBatch = this.running.length;
      this.bulkContext = context;
      this.stepKind = STEP_BULK;
      this.stepStartS = nowS;
      this.stepEndS = nowS + this.cost.decodeRunS(this.bulkBatch, context, m);
    } else {
      let shape = this.planSingle(nowS);
      // An iteration whose every request got preempted schedules nothing; vLLM then admits next time.
      if (shape.tokens === 0) shape = this.planSingle(nowS);
      if (shape.tokens === 0) {
        throw new SagaError(`engine ${this.id} could schedule nothing (${this.running.length} running, ${this.waiting.size} waiting)`, 'ERR_SAGA_INTERNAL');
      }
      this.sample(); // the blocks this iteration holds
      this.stepKind = STEP_SINGLE;
      this.stepStartS = nowS;
      this.stepEndS = nowS + this.cost.iterationS(shape);
    }
    this.hooks.scheduleStepEnd(this.id, this.stepEndS, this.version);
  }

  /** An arrival during a bulk decode run: cut it at the end of the iteration in progress. */
  private interrupt(nowS: number): void {
    const elapsed = nowS - this.stepStartS;
    const done = this.cost.decodeItersWithin(this.bulkBatch, this.bulkContext, this.bulkIters, elapsed);
    let keep = done + 1;
    if (done >= 1 && this.cost.decodeRunS(this.bulkBatch, this.bulkContext, done) === elapsed) keep = done; // at a boundary
    if (keep >= this.bulkIters) return;
    this.bulkIters = keep;
    this.stepEndS = this.stepStartS + this.cost.decodeRunS(this.bulkBatch, this.bulkContext, keep);
    this.version++;
    this.hooks.scheduleStepEnd(this.id, this.stepEndS, this.version);
  }

  /**
   * Decode iterations that can run as one step now (0: plan a single iteration): every running request
   * decoding, the queue's head unable to start before a request finishes, and enough blocks for all.
   */
  private bulkDecodeIterations(nowS: number): number {
    const running = this.running;
    if (running.length === 0) return 0;
    const one = this.config.bulkDecode === false;
    let remaining = Infinity;
    for (const r of running) {
      if (r.numTokens - r.computed !== 1 || r.generated === 0) return 0; // decoding, not a last prefill token
      const left = r.outputTokens - r.generated;
      if (left < remaining) remaining = left;
    }
    if (this.waiting.size > 0 && this.admissionPossible(nowS)) return 0;
    if (one) remaining = 1;
    this.readCounts();
    const available = this.counts[0] + this.counts[1];
    if (this.blocksForDecode(remaining) <= available) return remaining;
    let lo = 0;
    let hi = remaining - 1;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (this.blocksForDecode(mid) <= available) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** New blocks the running requests need to decode `k` more tokens each. */
  private blocksForDecode(k: number): number {
    const bs = this.bs;
    let need = 0;
    for (const r of this.running) {
      const n = Math.ceil((r.computed + k) / bs) - r.numBlocks;
      if (n > 0) need += n;
    }
    return need;
  }

  /** Could the queue's head be admitted at the next iteration (all running requests decoding)? */
  private admissionPossible(nowS: number): boolean {
    if (this.running.length >= this.config.maxNumSeqs) return false;
    const budget = this.config.maxNumBatchedTokens - this.running.length;
    if (budget <= 0) return false;
    if (this.dynamicQueue) this.refreshPriorities(nowS);
    const head = this.waiting.peek() as Request;
    this.readCounts();
    const available = this.counts[0] + this.counts[1];
    const hit = this.lookupHits(head);
    const hitTokens = hit * this.bs;
    const c = Math.min(head.numTokens - hitTokens, budget);
    const need = Math.ceil((hitTokens + c) / this.bs) - hit;
    if (this.growthAware && !this.fitsWithGrowth(head, hit, available - this.evictableAmong(hit), this.growthReserve())) return false;
    return need <= available - this.evictableAmong(hit);
  }

  /** Blocks the running calls are still expected to need: the rest of their prompt and expected output. */
  private growthReserve(): number {
    let reserve = 0;
    for (const r of this.running) {
      const total = Math.ceil(Math.max(r.numTokens + 1, r.promptTokens + r.expectedOutput) / this.bs);
      if (total > r.numBlocks) reserve += total - r.numBlocks;
    }
    return reserve;
  }

  /** Growth-aware admission: `req`'s whole prompt and expected output fit beside the running calls' reserve. */
  private fitsWithGrowth(req: Request, hit: number, available: number, reserve: number): boolean {
    req.expectedOutput = (this.queue.expectedOutputTokens as (call: CallInfo) => number)(req.call);
    if (this.running.length === 0) return true; // nothing to protect: never stall an idle engine
    const total = Math.ceil(Math.max(req.numTokens + 1, req.promptTokens + req.expectedOutput) / this.bs);
    return total - hit <= available - reserve;
  }

  /** Longest usable cached prefix of `req` (block ids left in hitIds); a full hit recomputes the last token. */
  private lookupHits(req: Request): number {
    if (req === this.memoReq && this.memoEpoch === this.kvEpoch) return this.memoHit;
    const limit = Math.floor((req.numTokens - 1) / this.bs);
    let hit = 0;
    if (limit > 0) {
      let hashes: BigUint64Array;
      if (limit <= req.promptHashes.length) hashes = req.promptHashes.subarray(0, limit);
      else if (req.generated === 0) hashes = req.promptHashes;
      else {
        hashes = new BigUint64Array(limit); // re-admission after a preemption: prompt and output blocks
        for (let k = 0; k < limit; k++) hashes[k] = req.hashOf(k);
      }
      if (hashes.length > 0) {
        if (this.hitIds.length < hashes.length) this.hitIds = new Int32Array(Math.max(hashes.length, this.hitIds.length * 2));
        hit = this.kv.lookup(hashes, this.hitIds);
      }
    }
    this.memoReq = req;
    this.memoEpoch = this.kvEpoch;
    this.memoHit = hit;
    return hit;
  }

  /** Of the first `hit` ids in hitIds, those cached with no holder (acquiring them takes them off the free pool). */
  private evictableAmong(hit: number): number {
    const ids = this.hitIds;
    const holders = this.holders;
    let n = 0;
    for (let i = 0; i < hit; i++) if (holders[ids[i]] === 0) n++;
    return n;
  }

  /** Allocates `n` unhashed blocks (ids to `out`), noting whether that evicted cached blocks. */
  private allocateRaw(sessions: Int32Array, positions: Int32Array, n: number, out: Int32Array): void {
    if (this.kv.counts().deviceFree < n) this.kvEpoch++;
    this.kv.allocate(this.zeroHashes(n), sessions.subarray(0, n), positions.subarray(0, n), out);
    const holders = this.holders;
    const hashed = this.hashed;
    for (let i = 0; i < n; i++) {
      const id = out[i];
      holders[id] = 1;
      hashed[id] = 0;
    }
  }

  /** vLLM v1's schedule() for one iteration; returns the batch's shape. */
  private planSingle(nowS: number): BatchShape {
    const bs = this.bs;
    const reqs = this.pieceReqs;
    const toks = this.pieceTokens;
    reqs.length = 0;
    toks.length = 0;
    let budget = this.config.maxNumBatchedTokens;
    this.readCounts();
    let available = this.counts[0] + this.counts[1];
    let preempted = false;
    const running = this.running;
    let i = 0;
    while (i < running.length && budget > 0) {
      const req = running[i];
      const c = Math.min(req.numTokens - req.computed, budget);
      const need = Math.ceil((req.computed + c) / bs) - req.numBlocks;
      let scheduled = true;
      while (need > available) {
        const vi = this.queue.preemptionVictim(running, nowS);
        const victim = running[vi];
        const freed = this.preempt(vi, nowS);
        available += freed;
        preempted = true;
        if (victim === req) {
          scheduled = false;
          break;
        }
        const pi = reqs.indexOf(victim);
        if (pi >= 0) {
          // A policy chose one already scheduled this iteration: drop its piece.
          budget += toks[pi];
          reqs.splice(pi, 1);
          toks.splice(pi, 1);
        }
        if (vi < i) i--;
      }
      if (!scheduled) continue; // running[i] is now the next request
      if (need > 0) {
        this.allocateFor(req, need);
        available -= need;
      }
      reqs.push(req);
      toks.push(c);
      budget -= c;
      i++;
    }
    if (!preempted) {
      let reserve = this.growthAware ? this.growthReserve() : 0;
      while (this.waiting.size > 0 && budget > 0 && running.length < this.config.maxNumSeqs) {
        if (this.dynamicQueue) this.refreshPriorities(nowS); // the last admission may have changed them
        const req = this.waiting.peek() as Request;
        const hit = this.lookupHits(req);
        const evictableHits = this.evictableAmong(hit);
        const hitTokens = hit * bs;
        const c = Math.min(req.numTokens - hitTokens, budget);
        const need = Math.ceil((hitTokens + c) / bs) - hit;
        if (need > available - evictableHits) break;
        if (this.growthAware) {
          if (!this.fitsWithGrowth(req, hit, available - evictableHits, reserve)) break;
          reserve += Math.ceil(Math.max(req.numTokens + 1, req.promptTokens + req.expectedOutput) / bs) - hit - need;
        }
        this.waiting.pop();
        this.admit(req, hit, nowS);
        if (need > 0) this.allocateFor(req, need);
        available -= need + evictableHits;
        running.push(req);
        reqs.push(req);
        toks.push(c);
        budget -= c;
      }
    }
    const shape: BatchShape = { tokens: 0, attentionPairs: 0, kvTokens: 0, sampled: 0 };
    for (let p = 0; p < reqs.length; p++) {
      const r = reqs[p];
      const s = r.computed;
      const c = toks[p];
      shape.tokens += c;
      shape.attentionPairs += c * s + (c * (c + 1)) / 2;
      shape.kvTokens += s + c;
      if (s + c === r.numTokens) shape.sampled++;
    }
    return shape;
  }

  /** A dynamic queue policy's current priorities for every waiting request. */
  private refreshPriorities(nowS: number): void {
    const queue = this.queue;
    const withTie = queue.tieBreak !== undefined;
    this.waiting.reprioritize((r) => {
      r.priority = queue.priority(r.call, nowS);
      if (withTie) r.tieBreak = (queue.tieBreak as (call: CallInfo, nowS: number) => number)(r.call, nowS);
    });
  }

  /** Takes `hit` cached blocks (ids in hitIds) for a request being admitted. */
  private admit(req: Request, hit: number, nowS: number): void {
    const ids = this.hitIds;
    if (hit > 0) {
      const hitIds = ids.subarray(0, hit);
      this.kv.acquire(hitIds);
      const holders = this.holders;
      const cachedSince = this.cachedSince;
      let waited = 0;
      for (let i = 0; i < hit; i++) {
        const id = ids[i];
        if (holders[id]++ === 0) waited += nowS - cachedSince[id];
      }
      this.stats.hitCachedBlockS += waited;
      req.blockIds.set(hitIds, 0);
    }
    this.memoReq = undefined;
    req.numBlocks = hit;
    req.settledBlocks = hit;
    req.computed = hit * this.bs;
    req.admittedS = nowS;
    if (!req.everAdmitted) {
      req.everAdmitted = true;
      req.cachedTokens = Math.min(req.computed, req.promptTokens);
      this.hooks.onAdmit(req, nowS);
    }
  }

  /** Allocates `n` unhashed blocks at the end of `req`'s sequence. */
  private allocateFor(req: Request, n: number): void {
    const sessions = this.sessions(n);
    const positions = this.positions(n);
    sessions.fill(req.call.session, 0, n);
    for (let i = 0; i < n; i++) positions[i] = req.numBlocks + i;
    const out = this.ids2(n);
    this.allocateRaw(sessions, positions, n, out);
    req.blockIds.set(out, req.numBlocks);
    req.numBlocks += n;
  }

  /** Preempts running[index]; returns how many blocks became free or evictable. */
  private preempt(index: number, nowS: number): number {
    const req = this.running[index];
    this.running.splice(index, 1);
    const freed = this.releaseBlocks(req, nowS, 'preempt');
    req.numBlocks = 0;
    req.settledBlocks = 0;
    req.computed = 0;
    req.preemptions++;
    this.stats.preemptions++;
    this.waiting.push(req);
    return freed;
  }

  /** Releases all of `req`'s blocks tail first with the eviction policy's keys; returns blocks no longer held. */
  private releaseBlocks(req: Request, nowS: number, reason: 'finish' | 'preempt'): number {
    const n = req.numBlocks;
    if (n === 0) return 0;
    const ids = this.ids1(n);
    const positions = this.positions(n);
    const keys = this.keys(n);
    const blockIds = req.blockIds;
    const holders = this.holders;
    const cachedSince = this.cachedSince;
    let freed = 0;
    for (let i = 0, k = n - 1; i < n; i++, k--) {
      const id = blockIds[k];
      ids[i] = id;
      positions[i] = k;
      // The mirror of holders: a block no one holds any more is free (unhashed) or cached from now.
      if (--holders[id] === 0) {
        freed++;
        cachedSince[id] = nowS;
      }
    }
    const hashed = this.hashed;
    const info: ReleaseInfo = {
      call: req.call,
      engineId: this.id,
      nowS,
      sequence: this.releases++,
      reason,
      ...(reason === 'finish' && req.stop !== undefined ? { stop: req.stop } : {}),
      ...(reason === 'finish' && req.toolKind !== undefined ? { toolKind: req.toolKind } : {}),
      count: n,
      positions,
      ids,
      committed: (i: number) => hashed[ids[i]] === 1,
      blockHash: (position: number) => req.hashOf(position),
    };
    this.eviction.releaseKeys(info, keys);
    this.kv.release(ids.subarray(0, n), keys.subarray(0, n));
    return freed;
  }

  /** Queues commits for `req`'s blocks that are now full and computed. */
  private settleFullBlocks(req: Request): void {
    const full = Math.min(Math.floor(req.computed / this.bs), req.numBlocks);
    for (let k = req.settledBlocks; k < full; k++) this.queueCommit(req.blockIds[k], req.hashOf(k));
    if (full > req.settledBlocks) req.settledBlocks = full;
  }

  private queueCommit(id: number, hash: bigint): void {
    if (this.commitCount === this.commitIds.length) {
      const ids = new Int32Array(this.commitIds.length * 2);
      ids.set(this.commitIds);
      const hashes = new BigUint64Array(this.commitHashes.length * 2);
      hashes.set(this.commitHashes);
      this.commitIds = ids;
      this.commitHashes = hashes;
    }
    this.commitIds[this.commitCount] = id;
    this.commitHashes[this.commitCount] = hash;
    this.commitCount++;
  }

  /** Commits the queued hashes; those already cached (or twice in the batch) stay uncommitted. */
  private flushCommits(): void {
    const n = this.commitCount;
    if (n === 0) return;
    this.commitCount = 0;
    this.kvEpoch++;
    const ids = this.commitIds.subarray(0, n);
    const hashes = this.commitHashes.subarray(0, n);
    try {
      this.kv.commit(ids, hashes);
      for (let i = 0; i < n; i++) this.hashed[ids[i]] = 1;
      return;
    } catch (err) {
      if (!(err instanceof SagaError) || err.code !== 'ERR_SAGA_DUPLICATE_HASH') throw err;
    }
    // Rare: some content is cached already. Commit one at a time, skipping duplicates.
    const seen = new Set<bigint>();
    const one = new Int32Array(1);
    const probe = this.ids2(1);
    for (let i = 0; i < n; i++) {
      const h = hashes[i];
      if (seen.has(h)) continue;
      seen.add(h);
      if (this.kv.lookup(hashes.subarray(i, i + 1), probe) > 0) continue;
      one[0] = ids[i];
      this.kv.commit(one, hashes.subarray(i, i + 1));
      this.hashed[ids[i]] = 1;
    }
  }

  private finishSingle(nowS: number): Request[] {
    const reqs = this.pieceReqs;
    const toks = this.pieceTokens;
    const finished: Request[] = [];
    this.stats.iterations++;
    this.stats.steps++;
    this.stats.busyS += nowS - this.stepStartS;
    for (let p = 0; p < reqs.length; p++) {
      const r = reqs[p];
      const c = toks[p];
      const wasPrefill = r.numTokens - r.computed > 1 || r.generated === 0;
      r.computed += c;
      if (wasPrefill) this.stats.prefillTokens += c;
      this.settleFullBlocks(r);
      if (r.computed === r.numTokens) {
        r.generated++;
        r.numTokens++;
        this.stats.outputTokens++;
        if (r.generated === 1) r.firstTokenS = nowS;
        if (r.generated >= r.outputTokens) finished.push(r);
      }
    }
    this.flushCommits();
    reqs.length = 0;
    toks.length = 0;
    this.complete(finished, nowS);
    return finished;
  }

  private finishBulk(nowS: number): Request[] {
    const k = this.bulkIters;
    const running = this.running;
    this.stats.iterations += k;
    this.stats.steps++;
    this.stats.busyS += nowS - this.stepStartS;
    this.accumulate(nowS);
    const occupiedBefore = this.sampleOccupied;
    const referencedBefore = this.sampleReferenced;
    // New blocks for all, in one allocation.
    const bs = this.bs;
    let total = 0;
    for (const r of running) {
      const n = Math.ceil((r.computed + k) / bs) - r.numBlocks;
      if (n > 0) total += n;
    }
    if (total > 0) {
      const sessions = this.sessions(total);
      const positions = this.positions(total);
      let j = 0;
      for (const r of running) {
        const n = Math.ceil((r.computed + k) / bs) - r.numBlocks;
        for (let i = 0; i < n; i++) {
          sessions[j] = r.call.session;
          positions[j] = r.numBlocks + i;
          j++;
        }
      }
      const out = this.ids2(total);
      this.allocateRaw(sessions, positions, total, out);
      j = 0;
      for (const r of running) {
        const n = Math.ceil((r.computed + k) / bs) - r.numBlocks;
        for (let i = 0; i < n; i++) r.blockIds[r.numBlocks++] = out[j++];
      }
    }
    const finished: Request[] = [];
    for (const r of running) {
      r.computed += k;
      r.generated += k;
      r.numTokens += k;
      this.settleFullBlocks(r);
      if (r.generated >= r.outputTokens) finished.push(r);
    }
    this.stats.outputTokens += k * running.length;
    this.flushCommits();
    // Blocks grew through the run: count the area as a trapezoid.
    this.sample();
    const d = nowS - this.stepStartS;
    this.stats.occupiedBlockS += ((this.sampleOccupied - occupiedBefore) * d) / 2;
    this.stats.referencedBlockS += ((this.sampleReferenced - referencedBefore) * d) / 2;
    this.complete(finished, nowS);
    return finished;
  }

  /** Releases finished requests, drops them from the running list, and tells the owner. */
  private complete(finished: Request[], nowS: number): void {
    if (finished.length === 0) return;
    for (const r of finished) {
      r.finishS = nowS;
      this.releaseBlocks(r, nowS, 'finish');
      r.numBlocks = 0;
    }
    const running = this.running;
    let w = 0;
    for (let i = 0; i < running.length; i++) {
      const r = running[i];
      if (!(r.generated >= r.outputTokens)) running[w++] = r;
    }
    running.length = w;
    for (const r of finished) this.hooks.onFinish(r, nowS);
  }

  // ---- time integrals ----

  /** counts = [device free, device cached, device referenced]. */
  private readCounts(): void {
    const c = this.kv.counts();
    this.counts[0] = c.deviceFree;
    this.counts[1] = c.deviceCached;
    this.counts[2] = c.deviceReferenced;
  }

  private sample(): void {
    this.readCounts();
    this.sampleReferenced = this.counts[2];
    this.sampleOccupied = this.counts[1] + this.counts[2];
  }

  private accumulate(nowS: number): void {
    const dt = nowS - this.sampleS;
    if (dt > 0) {
      this.stats.occupiedBlockS += dt * this.sampleOccupied;
      this.stats.referencedBlockS += dt * this.sampleReferenced;
    }
    this.sampleS = nowS;
    this.sample();
  }

  // ---- scratch ----

  private ids1(n: number): Int32Array {
    if (this.scratchIds.length < n) this.scratchIds = new Int32Array(Math.max(n, this.scratchIds.length * 2));
    return this.scratchIds;
  }

  private ids2(n: number): Int32Array {
    if (this.scratchIds2.length < n) this.scratchIds2 = new Int32Array(Math.max(n, this.scratchIds2.length * 2));
    return this.scratchIds2.subarray(0, n);
  }

  private sessions(n: number): Int32Array {
    if (this.scratchSessions.length < n) this.scratchSessions = new Int32Array(Math.max(n, this.scratchSessions.length * 2));
    return this.scratchSessions;
  }

  private positions(n: number): Int32Array {
    if (this.scratchPositions.length < n) this.scratchPositions = new Int32Array(Math.max(n, this.scratchPositions.length * 2));
    return this.scratchPositions;
  }

  private keys(n: number): Float64Array {
    if (this.scratchKeys.length < n) this.scratchKeys = new Float64Array(Math.max(n, this.scratchKeys.length * 2));
    return this.scratchKeys;
  }

  private zeroHashes(n: number): BigUint64Array {
    if (this.scratchZeroHashes.length < n) this.scratchZeroHashes = new BigUint64Array(Math.max(n, this.scratchZeroHashes.length * 2));
    return this.scratchZeroHashes.subarray(0, n);
  }
}
