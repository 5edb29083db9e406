/**
 * A simulated `saga engine`: one llama.cpp context of a few sequences, each holding one whole session's
 * KV (lib/engine/session_residency.ts), as opposed to ./engine.ts's vLLM with paged blocks. It predicts
 * what the real engine does with a policy bundle (bench/engine.ts), with the same decisions:
 *
 * - memory: a call runs in its session's sequence; a session without one takes a free sequence, or the
 *   idle session's with the lowest key of its first block, among those the policy does not hold
 *   (`EvictionPolicy.holdUntilS`); the displaced session is dropped (no host tier here) and its next call
 *   recomputes its whole prompt. A session's cached tokens are its previous prompt's blocks that the new
 *   prompt starts with (the previous output is recomputed: the model's tokens are not what the agent
 *   appends), at most all but the last prompt token;
 * - queue: waiting calls in the queue policy's order (re-ranked before each admission when dynamic);
 *   a call whose session runs, or that cannot get a sequence, is passed over;
 * - time: each step gives every running sequence one piece, a prefill chunk (up to `batchTokens`) or one
 *   decode token, and lasts the sum of the pieces' times alone (`CostModel.iterationS`): llama.cpp on one
 *   CPU thread streams the weights once per sequence, not once per batch (bench/engine.ts calibration:
 *   3 sequences' decode step 29 ms against 9.6 ms for one);
 * - the policies observe call-arrive, call-admit and call-finish (stop `length`, never a last call), as
 *   they do from the real engine; a call's next call arrives its gap after its end.
 */
import { SagaError } from '../errors';
import { commonPrefixBlocks } from '../graph/aeg';
import { KvCache } from '../kv/kv_cache';
import { type IdleSession, type SessionVictim, chooseSessionVictim, releaseSessionBlocks } from '../policy/session_release';
import type { CallInfo, PolicyBundle, PolicyEvent } from '../policy/types';
import { GOLDEN_GAMMA, MASK64, fmix64 } from '../workloads/hashing';
import type { Call, Workload } from '../workloads/types';
import { CostModel } from './cost_model';

export interface SequenceEngineConfig {
  readonly sequences: number;
  /** Tokens per sequence. */
  readonly contextTokens: number;
  /** Most prompt tokens one sequence prefills in one step (llama.cpp's batch size). */
  readonly batchTokens: number;
  readonly cost: CostModel;
}

export interface SequenceTaskRecord {
  readonly arrivalS: number;
  endS: number;
  promptTokens: number;
  cachedTokens: number;
  outputTokens: number;
}

export interface SequenceEngineResult {
  readonly tasks: SequenceTaskRecord[];
  readonly makespanS: number;
  /** Sessions displaced from a sequence (their next call recomputes them). */
  readonly drops: number;
}

/** Stop reason of every call: the engine generates to max_tokens. */
const STOP = 'length';

/**
 * A task's block hashes as the engine's policies see them: salted per session, since llama.cpp
 * sequences share no KV (even a scaffold common to every task is computed once per session). fmix64 is
 * a bijection, so a task's equal prefixes stay equal.
 */
function saltedHashes(hashes: BigUint64Array, task: number): BigUint64Array {
  const salt = (BigInt(task + 1) * GOLDEN_GAMMA) & MASK64;
  return hashes.map((h) => fmix64(h ^ salt) || 1n);
}

interface Pending {
  readonly task: number;
  readonly callIndex: number;
  readonly call: CallInfo;
  readonly order: number;
  priority: number;
  tieBreak: number;
}

interface Running {
  readonly pending: Pending;
  /** Tokens in the sequence so far and prompt tokens still to prefill, output tokens still to decode. */
  context: number;
  prefillLeft: number;
  decodeLeft: number;
}

interface Slot {
  session: number;
  running: Running | undefined;
}

interface SessionState {
  slot: number;
  /** The previous prompt's block hashes (what a resident session can reuse) and its KvCache blocks. */
  hashes: BigUint64Array;
  blocks: Int32Array;
  /** Tokens the sequence holds (previous prompt and output). */
  tokens: number;
}

export function simulateSequenceEngine(workload: Workload, bundle: PolicyBundle, config: SequenceEngineConfig): SequenceEngineResult {
  return new SequenceEngineSim(workload, bundle, config).run();
}

class SequenceEngineSim {
  private readonly slots: Slot[];
  private readonly sessions = new Map<number, SessionState>();
  private readonly cache: KvCache;
  private readonly waiting: Pending[] = [];
  /** Calls not yet arrived: (time, task, call index), kept sorted by time then order posted. */
  private readonly arrivals: { atS: number; task: number; callIndex: number; order: number }[] = [];
  private readonly records: SequenceTaskRecord[];
  private nowS = 0;
  private posted = 0;
  private drops = 0;
  private releases = 0;

  constructor(
    private readonly workload: Workload,
    private readonly bundle: PolicyBundle,
    private readonly config: SequenceEngineConfig,
  ) {
    if (!Number.isSafeInteger(config.sequences) || config.sequences < 1) throw new SagaError(`sequences must be an integer >= 1, got ${String(config.sequences)}`, 'ERR_SAGA_BAD_ARGUMENT');
    this.slots = Array.from({ length: config.sequences }, () => ({ session: -1, running: undefined }));
    const blocksPerSequence = Math.ceil(config.contextTokens / workload.blockSize);
    this.cache = new KvCache({ deviceCapacity: (config.sequences + 1) * blocksPerSequence, hostCapacity: 0 });
    bundle.eviction.attach?.(0, this.cache);
    this.records = workload.tasks.map((t) => ({ arrivalS: t.arrivalS, endS: NaN, promptTokens: 0, cachedTokens: 0, outputTokens: 0 }));
    workload.tasks.forEach((t, i) => this.post(t.arrivalS, i, 0));
  }

  run(): SequenceEngineResult {
    for (;;) {
      this.arrive();
      this.admit();
      const running = this.slots.filter((s) => s.running !== undefined);
      if (running.length > 0) {
        this.step(running);
        continue;
      }
      const next = Math.min(this.arrivals[0]?.atS ?? Infinity, this.waiting.length > 0 ? this.holdExpiryS() : Infinity);
      if (next === Infinity) break;
      this.nowS = Math.max(this.nowS, next);
    }
    if (this.waiting.length > 0) throw new SagaError('sequence engine simulation stalled with calls waiting', 'ERR_SAGA_INTERNAL');
    return { tasks: this.records, makespanS: this.nowS, drops: this.drops };
  }

  private post(atS: number, task: number, callIndex: number): void {
    const entry = { atS, task, callIndex, order: this.posted++ };
    let i = this.arrivals.length;
    while (i > 0 && this.arrivals[i - 1].atS > atS) i--;
    this.arrivals.splice(i, 0, entry);
  }

  private callInfo(task: number, callIndex: number, arrivalS: number): CallInfo {
    const t = this.workload.tasks[task];
    const c: Call = t.calls[callIndex];
    return { taskIndex: task, callIndex, session: task, tenant: t.tenant, kind: t.kind, arrivalS, promptTokens: c.promptTokens, outputTokens: 0, blockHashes: saltedHashes(c.blockHashes, task) };
  }

  private observe(event: PolicyEvent): void {
    this.bundle.observe?.(event);
  }

  private arrive(): void {
    while (this.arrivals.length > 0 && this.arrivals[0].atS <= this.nowS) {
      const a = this.arrivals.shift() as (typeof this.arrivals)[number];
      const call = this.callInfo(a.task, a.callIndex, a.atS);
      const queue = this.bundle.queue;
      const p: Pending = { task: a.task, callIndex: a.callIndex, call, order: a.order, priority: queue.priority(call, this.nowS), tieBreak: queue.tieBreak?.(call, this.nowS) ?? 0 };
      this.waiting.push(p);
      this.observe({ type: 'call-arrive', call, engineId: 0, nowS: this.nowS });
    }
  }

  private admit(): void {
    const queue = this.bundle.queue;
    if (queue.dynamic) {
      for (const p of this.waiting) {
        p.priority = queue.priority(p.call, this.nowS);
        p.tieBreak = queue.tieBreak?.(p.call, this.nowS) ?? 0;
      }
    }
    this.waiting.sort((a, b) => a.priority - b.priority || a.tieBreak - b.tieBreak || a.order - b.order);
    for (let i = 0; i < this.waiting.length; ) {
      const p = this.waiting[i];
      const slot = this.place(p.call.session);
      if (slot < 0) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      this.start(p, slot);
    }
  }

  /** The sequence `session` gets now (its own, a free one, or a displaced idle session's), or -1. */
  private place(session: number): number {
    const state = this.sessions.get(session);
    if (state !== undefined && state.slot >= 0) return this.slots[state.slot].running === undefined ? state.slot : -1;
    const free = this.slots.findIndex((s) => s.session < 0);
    if (free >= 0) return free;
    const { slot } = this.victim();
    if (slot < 0) return -1;
    const victim = this.sessions.get(this.slots[slot].session) as SessionState;
    this.forget(victim);
    victim.slot = -1;
    this.slots[slot].session = -1;
    this.drops++;
    return slot;
  }

  /** The idle session a waiting call would displace now (lib/policy/session_release.ts's rule, as the engine's). */
  private victim(): SessionVictim {
    const idle: IdleSession[] = [];
    this.slots.forEach((s, slot) => {
      if (s.running !== undefined || s.session < 0) return;
      const state = this.sessions.get(s.session) as SessionState;
      idle.push({ slot, session: s.session, firstBlock: state.blocks.length === 0 ? -1 : state.blocks[0], tokens: state.tokens });
    });
    return chooseSessionVictim(this.cache, this.bundle.eviction, idle, this.nowS, this.costs);
  }

  /** No host tier: restoring is never an option; recomputing is a cold prefill at the engine's batch. */
  private readonly costs = {
    restoreS: (): number => Infinity,
    recomputeS: (tokens: number): number => this.config.cost.prefillS(tokens, 0, this.config.batchTokens),
  };

  private holdExpiryS(): number {
    return this.victim().heldUntilS;
  }

  private start(p: Pending, slot: number): void {
    let state = this.sessions.get(p.call.session);
    if (state === undefined) {
      state = { slot: -1, hashes: new BigUint64Array(0), blocks: new Int32Array(0), tokens: 0 };
      this.sessions.set(p.call.session, state);
    }
    const bs = this.workload.blockSize;
    const resident = state.slot === slot;
    const cached = resident ? Math.min(commonPrefixBlocks(state.hashes, p.call.blockHashes) * bs, p.call.promptTokens - 1) : 0;
    state.slot = slot;
    this.slots[slot].session = p.call.session;
    const output = this.workload.tasks[p.task].calls[p.callIndex].outputTokens;
    this.slots[slot].running = { pending: p, context: cached, prefillLeft: p.call.promptTokens - cached, decodeLeft: output };
    const record = this.records[p.task];
    record.promptTokens += p.call.promptTokens;
    record.cachedTokens += cached;
    this.observe({ type: 'call-admit', call: p.call, engineId: 0, cachedTokens: cached, nowS: this.nowS });
  }

  private step(running: Slot[]): void {
    const cost = this.config.cost;
    let stepS = 0;
    for (const s of running) {
      const r = s.running as Running;
      if (r.prefillLeft > 0) {
        const chunk = Math.min(r.prefillLeft, this.config.batchTokens);
        const last = chunk === r.prefillLeft;
        stepS += cost.iterationS(CostModel.piece(r.context, chunk, last));
        r.context += chunk;
        r.prefillLeft -= chunk;
        if (last) r.decodeLeft--; // the last prefill chunk samples the first output token
      } else {
        stepS += cost.iterationS(CostModel.piece(r.context, 1, true));
        r.context++;
        r.decodeLeft--;
      }
    }
    this.nowS += stepS;
    for (const s of running) {
      const r = s.running as Running;
      if (r.prefillLeft > 0 || r.decodeLeft > 0) continue;
      s.running = undefined;
      this.finish(r);
    }
  }

  private finish(r: Running): void {
    const { task, callIndex, call } = r.pending;
    const t = this.workload.tasks[task];
    const outputTokens = t.calls[callIndex].outputTokens;
    const finished: CallInfo = { ...call, outputTokens };
    const state = this.sessions.get(call.session) as SessionState;
    this.forget(state);
    state.hashes = call.blockHashes;
    state.tokens = r.context;
    state.blocks = releaseSessionBlocks(this.cache, this.bundle.eviction, { call: finished, hashes: call.blockHashes, nowS: this.nowS, sequence: this.releases++, stop: STOP });
    this.observe({ type: 'call-finish', call: finished, engineId: 0, nowS: this.nowS, lastCall: false, stop: STOP });
    const record = this.records[task];
    record.outputTokens += outputTokens;
    if (callIndex + 1 < t.calls.length) this.post(this.nowS + t.calls[callIndex].gapAfterS, task, callIndex + 1);
    else record.endS = this.nowS;
  }

  private forget(state: SessionState): void {
    if (state.blocks.length > 0) this.cache.evict(state.blocks);
    state.blocks = new Int32Array(0);
  }
}
