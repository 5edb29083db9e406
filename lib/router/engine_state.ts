/**
 * One upstream engine as the gateway tracks it: up or down, the calls it has in flight, the gateway's queue
 * of calls for it not yet sent, the prompt blocks sent to it, the models it serves, and (llama.cpp) which
 * slot each session uses. It is the EngineView the routing policies ask (lib/policy/types.ts): the same
 * questions the simulator's engines answer, answered from what a gateway can see.
 */
import { GATEWAY } from '../constants';
import type { CallInfo, EngineView, WaitingInfo } from '../policy/types';
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
}

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

  constructor(
    readonly id: number,
    readonly config: EngineConfig,
  ) {
    this.rates = new EngineRates(config.prefillTokensPerS);
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

  cachedPrefixBlocks(hashes: BigUint64Array): number {
    return this.up ? this.blocks.prefixBlocks(hashes) : 0;
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

  // ---- what the gateway records ----

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
  }
}
