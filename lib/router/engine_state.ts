/**
 * One upstream engine as the gateway tracks it: up or down, the calls it has in flight, the gateway's queue
 * of calls for it not yet sent, the prompt blocks sent to it, the models it serves, and (llama.cpp) which
 * slot each session uses. It is the EngineView the routing policies ask (lib/policy/types.ts): the same
 * questions the simulator's engines answer, answered from what a gateway can see.
 */
import { GATEWAY, ROUTING } from '../constants';
import type { CallInfo, EngineView, WaitingInfo } from '../policy/types';
import { ArrivalRate } from '../util/arrival_rate';
import { poissonExcess } from '../util/poisson_excess';
import { BlockRecord } from './block_record';
import type { EngineConfig } from './config';
import { EngineRates } from './engine_rates';
import { BLOCK_TOKENS } from './prompt_estimate';

/** A call waiting in the gateway's queue for an engine, as the queue policy orders it. */
export interface QueuedCall extends WaitingInfo {
  readonly call: CallInfo;
  enqueuedS: number;
  priority: number;
  tieBreak: number;
  /** Arrival order at the gateway: the last tie-break (FCFS among equals). */
  readonly order: number;
  /** The request's bound on its output tokens (max_tokens), if it gave one. */
  readonly maxTokens: number | undefined;
}

/** Queue order: priority, then tie-break, then arrival at the gateway. */
export function queuedBefore(a: QueuedCall, b: QueuedCall): boolean {
  return a.priority < b.priority || (a.priority === b.priority && (a.tieBreak < b.tieBreak || (a.tieBreak === b.tieBreak && a.order < b.order)));
}

/** A call in flight on an engine, as the wait predictions need it. */
interface RunningCall<Q> {
  readonly job: Q;
  readonly session: number;
  /** Gateway seconds it was sent. */
  readonly sentS: number;
  /** Seconds it was expected to take when sent (EngineRates.serviceS). */
  readonly serviceS: number;
}

/** Engine kinds that hold whole sessions, one per slot (a llama.cpp slot, a saga engine sequence). */
const SESSION_SLOT_KINDS: ReadonlySet<string> = new Set(['llama.cpp', 'saga-engine']);

export class EngineState<Q extends QueuedCall = QueuedCall> implements EngineView {
  readonly blockSize = BLOCK_TOKENS;
  up = true;
  inFlight = 0;
  /** Why it was last marked down (for logs and /healthz). */
  downReason: string | undefined;
  /** Model ids from its /v1/models; undefined until known. */
  models: readonly string[] | undefined;
  readonly queue: Q[] = [];
  /** Its characters per token and prefill rate, learned from its answers (the config's rate as the prior). */
  readonly rates: EngineRates;
  private readonly blocks = new BlockRecord(GATEWAY.blockRecordPerEngine);
  /** llama.cpp: session -> slot, most recently used last; slots in use by calls in flight. */
  private readonly slotOf = new Map<number, number>();
  private readonly busySlots = new Set<number>();
  /**
   * Calls in flight (an array, not a Map keyed by job: a Map's delete and set on every call leave tables
   * that outlive the young generation, old-generation garbage at a gateway's rates).
   */
  private readonly running: RunningCall<Q>[] = [];
  /**
   * Engines that hold whole sessions (SESSION_SLOT_KINDS): the `slots` sessions sent here last, which hold
   * its slots -> their last call's prompt tokens (gateway estimate), least recently sent first.
   */
  private readonly resident = new Map<number, number>();
  private readonly holdsSessions: boolean;
  /** Calls placed here lately (routed, retried, moved or stolen here). */
  private readonly arrivals = new ArrivalRate(ROUTING.arrivalRateTimeConstantS);

  constructor(
    readonly id: number,
    readonly config: EngineConfig,
  ) {
    this.rates = new EngineRates(config.prefillTokensPerS);
    this.holdsSessions = SESSION_SLOT_KINDS.has(config.kind);
  }

  /**
   * Its KV cache in blocks of the gateway's token estimates (EngineView.capacityBlocks), from the config's
   * kvTokens converted by the characters per token learned from its answers; undefined where not configured.
   */
  get capacityBlocks(): number | undefined {
    const kvTokens = this.config.kvTokens;
    return kvTokens === undefined ? undefined : this.rates.estimatedTokens(kvTokens) / this.blockSize;
  }

  /** Calls in flight it may have: the gateway's bound (EngineView.places). */
  get places(): number {
    return this.config.capacity;
  }

  get name(): string {
    return this.config.name;
  }

  /** Up, and fewer calls in flight than its capacity: a queued call may be sent now. */
  hasRoom(): boolean {
    return this.up && this.inFlight < this.config.capacity;
  }

  serves(model: string | undefined): boolean {
    return model === undefined || this.models === undefined || this.models.includes(model);
  }

  // ---- EngineView ----

  outstandingCalls(): number {
    return this.inFlight + this.queue.length;
  }

  queuedTokens(): number {
    let tokens = 0;
    for (const q of this.queue) tokens += q.call.promptTokens;
    return tokens;
  }

  /** The blocks sent here; on an engine that holds whole sessions, none of a session that holds no slot. */
  cachedPrefixBlocks(hashes: BigUint64Array, session?: number): number {
    if (!this.up || (this.holdsSessions && session !== undefined && !this.resident.has(session))) return 0;
    return this.blocks.prefixBlocks(hashes);
  }

  waitingCalls(): readonly WaitingInfo[] {
    return this.queue;
  }

  /**
   * The gateway does not see an engine's KV blocks; what it bounds is calls in flight. So: room for any
   * call while a call can be sent now, none otherwise (routing's "can admit it at once" test).
   */
  freeBlocks(): number {
    return this.hasRoom() ? Number.MAX_SAFE_INTEGER : 0;
  }

  /**
   * Prefill seconds of the uncached part of a prompt, in the gateway's token estimates: converted to the
   * engine's tokens by its learned characters per token, at its learned prefill rate (lib/router/engine_rates.ts).
   */
  prefillEstimateS(promptTokens: number, cachedTokens: number): number {
    return this.rates.prefillS(Math.max(0, promptTokens - cachedTokens));
  }

  /**
   * Seconds from `nowS` until `call` would be sent here: one of this engine's queued calls (after those
   * ahead of it in queue order), or, if not queued here, a call joining behind every queued one. Each call
   * in flight frees its place when its expected service (EngineRates.serviceS, from when it was sent) is
   * over; one that has run past it is expected to run as long again as it has overrun (the evidence that
   * the prediction was short, as a wait so far predicts as much again). Each call ahead then takes the
   * place that frees first, for its own expected service (list scheduling over `capacity` places).
   */
  admissionWaitS(call: CallInfo | undefined, nowS: number): number {
    if (!this.up) return Infinity;
    const target = call === undefined ? undefined : this.queue.find((q) => q.call === call);
    const isAhead = (q: Q) => q !== target && (target === undefined || queuedBefore(q, target));
    let ahead = 0;
    for (const q of this.queue) if (isAhead(q)) ahead++;
    // A place is free for it (the common case, and no array to build for a large capacity).
    if (this.running.length + ahead < this.config.capacity) return 0;
    const frees: number[] = [];
    for (const r of this.running) frees.push(Math.abs(r.sentS + r.serviceS - nowS));
    while (frees.length < this.config.capacity) frees.push(0);
    for (const q of this.queue) if (isAhead(q)) frees[earliest(frees)] += this.expectedServiceS(q.call, q.maxTokens);
    return frees[earliest(frees)];
  }

  /**
   * Seconds of recompute that bringing `call`'s session here costs the sessions already here: an engine
   * that holds whole sessions (SESSION_SLOT_KINDS) keeps the `slots` sessions it was sent last; with every
   * slot taken by another session it gives one up (the least recently used not running, as llama.cpp and
   * saga engine's vllm policy do), whose next call then prefills its context again. Paged engines (vLLM,
   * SGLang) evict blocks, not sessions, and the gateway does not know their KV size: 0.
   */
  displacementS(call: CallInfo): number {
    if (!this.holdsSessions || this.resident.size < this.config.slots || this.resident.has(call.session)) return 0;
    for (const [session, promptTokens] of this.resident) if (!this.running.some((r) => r.session === session)) return this.rates.prefillS(promptTokens);
    return 0;
  }

  arrivalsPerS(nowS: number): number {
    return this.arrivals.perS(nowS);
  }

  /**
   * `call` holds one of the `capacity` places for its expected service S; the calls arriving meanwhile (at
   * the recent rate, taken as Poisson) beyond the places still free then wait, each about S/2 (it ends at
   * a uniform point of their wait). Calls ending here during S free places too, so this errs high.
   */
  heldPlaceDelayS(call: CallInfo, nowS: number): number {
    const serviceS = this.expectedServiceS(call, undefined);
    const freeAfter = Math.max(0, this.config.capacity - this.running.length - this.queue.length - 1);
    return (poissonExcess(this.arrivalsPerS(nowS) * serviceS, freeAfter) * serviceS) / 2;
  }

  /** Each call queued behind `call` is sent sooner by about its expected service over the places that serve the queue. */
  departureGainS(call: CallInfo): number {
    const target = this.queue.find((q) => q.call === call);
    if (target === undefined) return 0;
    let behind = 0;
    for (const q of this.queue) if (q !== target && queuedBefore(target, q)) behind++;
    return behind === 0 ? 0 : (behind * this.expectedServiceS(call, target.maxTokens)) / this.config.capacity;
  }

  /** Seconds `call` is expected to take here: prefill of what this engine does not cache, and its output. */
  private expectedServiceS(call: CallInfo, maxTokens: number | undefined): number {
    const cached = Math.min(call.promptTokens, this.cachedPrefixBlocks(call.blockHashes, call.session) * this.blockSize);
    const completion = Math.min(maxTokens ?? Infinity, this.rates.meanCompletionTokens);
    return this.rates.serviceS(call.promptTokens - cached, completion);
  }

  // ---- what the gateway records ----

  /** A call was placed in this engine's queue at `nowS`. */
  recordArrival(nowS: number): void {
    this.arrivals.record(nowS);
  }

  /** `job` was sent here at `nowS` (before its blocks are recorded: its expected service counts what was cached). */
  recordRunning(job: Q, nowS: number): void {
    const call = job.call;
    this.running.push({ job, session: call.session, sentS: nowS, serviceS: this.expectedServiceS(call, job.maxTokens) });
    if (!this.holdsSessions) return;
    this.resident.delete(call.session);
    this.resident.set(call.session, call.promptTokens);
    // The least recently sent session lost its slot to this one.
    for (const session of this.resident.keys()) {
      if (this.resident.size <= this.config.slots) break;
      this.resident.delete(session);
    }
  }

  /** `job`'s attempt here ended. */
  recordEnded(job: Q): void {
    const i = this.running.findIndex((r) => r.job === job);
    if (i < 0) return;
    // Order does not matter: the last entry takes its place.
    const last = this.running.pop() as RunningCall<Q>;
    if (i < this.running.length) this.running[i] = last;
  }

  /** The session's KV here no longer matters (it moved to another engine, or it ended). */
  forgetSession(session: number): void {
    this.resident.delete(session);
  }

  /** A call's prompt went to this engine: its blocks are (probably) cached there now. */
  recordSent(hashes: BigUint64Array): void {
    this.blocks.sent(hashes);
  }

  /**
   * llama.cpp's `id_slot` for a call of `session`: the session's slot when free (its KV is there), else the
   * free slot used least recently. Some slot is free while inFlight < capacity <= slots.
   */
  takeSlot(session: number): number {
    let slot = this.slotOf.get(session);
    if (slot === undefined || this.busySlots.has(slot)) {
      const used = new Set(this.slotOf.values());
      slot = -1;
      for (let s = 0; s < this.config.slots && slot < 0; s++) if (!used.has(s)) slot = s;
      if (slot < 0) {
        // Every slot has held a session: take the least recently used free one from its session.
        for (const [owner, s] of this.slotOf) {
          if (this.busySlots.has(s)) continue;
          this.slotOf.delete(owner);
          slot = s;
          break;
        }
      }
    }
    this.slotOf.delete(session);
    this.slotOf.set(session, slot);
    this.busySlots.add(slot);
    return slot;
  }

  releaseSlot(slot: number): void {
    this.busySlots.delete(slot);
  }

  /** The engine went away: whatever it cached is gone with it. */
  forgetCache(): void {
    this.blocks.clear();
    this.slotOf.clear();
    this.resident.clear();
  }
}

/** The index of the smallest entry (the first of equals). */
function earliest(times: readonly number[]): number {
  let first = 0;
  for (let i = 1; i < times.length; i++) if (times[i] < times[first]) first = i;
  return first;
}
