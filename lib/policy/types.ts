/**
 * The policy interfaces shared by the simulator, `saga replay` and (later) the gateway: routing (which
 * engine a call goes to), queue ordering (which waiting call an engine admits first, and which running
 * one it preempts) and eviction (the keys a call's KV blocks leave with; lower keys are evicted first,
 * ties deeper first, as the block core orders them: docs/block-core.md).
 *
 * A policy sees events in time order through its methods and `observe`, and gets no handle on the
 * future: nothing here exposes a workload's later calls (a CallInfo carries no gap, no next call). The
 * one exception is an oracle, which is constructed with the whole workload, says so in `oracle`, and is
 * labelled as a bound in every output.
 *
 * The simulator (lib/sim) and `saga replay` (lib/replay) drive the same interfaces: the simulator all
 * three, the replay eviction alone (it has no timing, so no routing or queue), with the same events.
 */
import type { KvCache } from '../kv/kv_cache';

/** One LLM call as policies see it. */
export interface CallInfo {
  /** Index of the call's task in the workload, and of the call in its task. */
  readonly taskIndex: number;
  readonly callIndex: number;
  /** Dense session number (one per task), as the block core's `session` field holds it. */
  readonly session: number;
  readonly tenant: string;
  /** The task's workflow kind. */
  readonly kind: string;
  /** Seconds (simulated) when the call arrived. */
  readonly arrivalS: number;
  readonly promptTokens: number;
  readonly outputTokens: number;
  /** The prompt's full blocks, prefix-chained hashes. */
  readonly blockHashes: BigUint64Array;
}

/** What a routing policy may ask of an engine. */
export interface EngineView {
  readonly id: number;
  /** Tokens per KV block. */
  readonly blockSize: number;
  /** Optional: KV blocks the engine holds in all (absent where unknown: a gateway's engines without `kvTokens`). */
  readonly capacityBlocks?: number;
  /**
   * Optional: calls it runs at once, where it bounds them by a count (a gateway's capacity per engine: a
   * llama.cpp slot, a saga engine sequence). Absent: bounded by KV blocks alone (a batching engine).
   */
  readonly places?: number;
  /** Calls on the engine: running plus waiting. */
  outstandingCalls(): number;
  /** Prompt tokens of the calls still waiting to be admitted. */
  queuedTokens(): number;
  /**
   * How many leading blocks of `hashes` the engine's KV cache holds (no state changes); `session`, where
   * given, is whose prompt they are (an engine that holds whole sessions caches only its own).
   */
  cachedPrefixBlocks(hashes: BigUint64Array, session?: number): number;
  /** Calls waiting for admission here (in no particular order). */
  waitingCalls(): readonly WaitingInfo[];
  /** KV blocks not held by a running call (free or cached and evictable). */
  freeBlocks(): number;
  /** The engine's cost model: seconds to prefill `promptTokens` of which `cachedTokens` are cached. */
  prefillEstimateS(promptTokens: number, cachedTokens: number): number;
  /**
   * Optional: predicted seconds from `nowS` until `call` starts here: one of this engine's waiting calls,
   * or (undefined, or not waiting here) a new call joining the back of its queue. Engines that cannot
   * predict it leave it out, and routing guesses from how long calls have waited.
   */
  admissionWaitS?(call: CallInfo | undefined, nowS: number): number;
  /**
   * Optional: seconds of recompute that bringing `call`'s session here would cost other sessions (an engine
   * that holds whole sessions gives one up when every slot is taken). Absent: 0.
   */
  displacementS?(call: CallInfo): number;
  /**
   * Optional: calls arriving here per second lately (an online estimate). A move's recompute delays the
   * calls that arrive during it as well as those already here. Absent: the arrivals are not counted.
   */
  arrivalsPerS?(nowS: number): number;
  /**
   * Optional: seconds the calls expected to arrive here would wait, in all, because `call` holds one of
   * the engine's places for its whole expected service (prefill and decode), where the engine bounds its
   * calls in flight. Absent: 0.
   */
  heldPlaceDelayS?(call: CallInfo, nowS: number): number;
  /**
   * Optional: seconds the calls queued here behind `call` (one of its waiting calls) would gain, in all,
   * if it left the queue: each is sent sooner by its share of the place it would have held. Absent: 0.
   */
  departureGainS?(call: CallInfo): number;
}

/** A call waiting in an engine's queue. */
export interface WaitingInfo {
  readonly call: CallInfo;
  /** Seconds when it joined this engine's queue. */
  readonly enqueuedS: number;
}

/** A routing policy's decision to move a waiting call to another engine. */
export interface Steal {
  /** The engine whose queue holds the call, and the call. */
  readonly from: number;
  readonly call: CallInfo;
}

export interface RoutingPolicy {
  readonly name: string;
  /** The id of the engine `call` goes to. */
  route(call: CallInfo, engines: readonly EngineView[], nowS: number): number;
  /**
   * Work stealing, optional: asked now and then (every STEAL_INTERVAL_S of simulated time while calls
   * wait) for each engine with an empty queue, whether it should take a call waiting elsewhere.
   */
  steal?(thief: EngineView, engines: readonly EngineView[], nowS: number): Steal | undefined;
}

/** A running request as a queue policy sees it (in the engine's admission order). */
export interface RunningInfo {
  readonly call: CallInfo;
  /** Seconds when the engine admitted it (this time, after any preemption). */
  readonly admittedS: number;
}

export interface QueuePolicy {
  readonly name: string;
  /**
   * A waiting call's priority in its engine's queue: lower goes first; ties go by `tieBreak` (when the
   * policy has one), then in arrival order.
   */
  priority(call: CallInfo, nowS: number): number;
  /** Optional second key among equal priorities (lower first), before arrival order. */
  tieBreak?(call: CallInfo, nowS: number): number;
  /**
   * True when priorities change while calls wait (attained service, fair-share counters): the engine
   * then recomputes the priority (and tieBreak) of every waiting call before each admission it
   * considers. False or absent: a call's priority is computed once, when it is queued (FCFS).
   */
  readonly dynamic?: boolean;
  /** When KV blocks run out: the index in `running` (admission order) of the request to preempt. */
  preemptionVictim(running: readonly RunningInfo[], nowS: number): number;
  /**
   * Admission with room to grow, optional: the output tokens `call` is expected to produce (learned from
   * calls that finished: an output's length is unknown until it ends). When given, an engine admits a
   * call only if its whole prompt and expected output fit beside what its running calls are still
   * expected to need, so admitted calls are rarely preempted as they grow. Absent: vLLM's rule, admit
   * when the first chunk fits (and preempt the newest call when a running one cannot grow).
   */
  expectedOutputTokens?(call: CallInfo): number;
}

/** A call's blocks being released. */
export interface ReleaseInfo {
  readonly call: CallInfo;
  readonly engineId: number;
  readonly nowS: number;
  /**
   * The engine's release counter: 0, 1, 2, ... in the order its cache receives releases (several may
   * share one `nowS`). vLLM's free queue is in this order.
   */
  readonly sequence: number;
  /** `finish`: the call ended; `preempt`: it was preempted and will be recomputed. */
  readonly reason: 'finish' | 'preempt';
  /** At `finish`: why the call stopped (`tool_use`, `end_turn`, ...) and the tool it invoked, where known. */
  readonly stop?: string;
  readonly toolKind?: string;
  /** At `finish`: when the call ended, where that is after `nowS` (see PolicyEvent's `endS`); absent: `nowS`. */
  readonly endS?: number;
  /** Blocks released, tail first (deepest chain position first). */
  readonly count: number;
  /** Their chain positions (block index in the sequence), tail first. */
  readonly positions: Int32Array;
  /** Their block ids in the engine's cache, tail first (for later KvCache.setKeys). */
  readonly ids: Int32Array;
  /** Whether the i-th released block (tail first) carries a hash; one that does not is freed at once. */
  committed(i: number): boolean;
  /**
   * The prefix-chained hash of the call's block at chain `position` (what it holds, committed or not).
   * Functions, not arrays, so that policies that ignore hashes cost nothing.
   */
  blockHash(position: number): bigint;
}

export interface EvictionPolicy {
  readonly name: string;
  /** True for an oracle (the future in hand): its numbers are a bound, not a policy anyone can run. */
  readonly oracle?: boolean;
  /** Writes the eviction key of each released block (`info.count` of them, tail first) to `out`. */
  releaseKeys(info: ReleaseInfo, out: Float64Array): void;
  /**
   * Called once per engine before the run with its cache, so that a policy can re-key blocks later
   * (KvCache.setKeys / setSessionKeys) as it learns more. Optional.
   */
  attach?(engineId: number, cache: KvCache): void;
  /**
   * Host tier, optional: whether a session's KV leaving GPU memory goes to host memory (true) or is
   * dropped (false). Asked only where a host tier is configured; absent, everything goes (vLLM's
   * offloading connector writes every block through to CPU memory).
   */
  offload?(query: OffloadQuery): boolean;
  /**
   * Engines whose unit of memory is a whole session (a llama.cpp sequence), optional: the time until
   * which an idle session's KV should stay resident even while a call of another session waits for
   * room (a time-to-live, as Continuum pins a program's KV through its tool call). At or before `nowS`,
   * or absent: the session may be displaced now (vLLM keeps nothing against a waiting request).
   */
  holdUntilS?(query: OffloadQuery): number;
  /**
   * Every event, in time order, for a policy that learns (the replay calls it directly; in the
   * simulator the bundle's `observe` forwards). Optional.
   */
  observe?(event: PolicyEvent): void;
}

/** A session's KV about to leave GPU memory, with what keeping it on the host would save. */
export interface OffloadQuery {
  readonly session: number;
  readonly tokens: number;
  /** The eviction key of the session's first block (the policy's own valuation). */
  readonly key: number;
  readonly nowS: number;
  /** Seconds to restore its KV from host memory, and to recompute it (prefill). */
  readonly restoreS: number;
  readonly recomputeS: number;
}

/** Events every policy may observe, in time order. */
export type PolicyEvent =
  | { readonly type: 'call-arrive'; readonly call: CallInfo; readonly engineId: number; readonly nowS: number }
  | { readonly type: 'call-admit'; readonly call: CallInfo; readonly engineId: number; readonly cachedTokens: number; readonly nowS: number }
  | {
      readonly type: 'call-finish';
      readonly call: CallInfo;
      readonly engineId: number;
      readonly nowS: number;
      /** The program ended with this call (the session closes). */
      readonly lastCall: boolean;
      /** Why the call stopped and the tool it invoked, where known (the call's output says so). */
      readonly stop?: string;
      readonly toolKind?: string;
      /**
       * When the call ended, where the driver knows it to be later than `nowS`: a replay has no timing
       * model and serves each call at its start, so it reads the end from the trace (start + the call's
       * `api_time`). What a server knows when a call ends, as its output and stop reason are; a gap to the
       * session's next call counts from here. Absent (the simulator, the gateway): the call ended at `nowS`.
       */
      readonly endS?: number;
    };

/**
 * How much a session homed on an engine counts as live, from 0 to 1 (1 while a call of it is queued or
 * running): its chance of calling again, or a gateway's 0-or-1 judgement. A gateway hears of a program's end
 * only if its client says so; it judges from the AEG that a session away longer than any gap its step has
 * shown has ended (lib/router/policies.ts).
 */
export type SessionLiveness = (session: number, nowS: number) => number;

/** Options of session-affinity routing (SessionAffinityRouting and the saga routing built on it). */
export interface AffinityOptions {
  /** Prefer engines whose live sessions are of the new session's workflow kind (SessionAffinityRouting.otherKindShare). */
  readonly separateKinds?: boolean;
  /**
   * Keep a tenant that floods the fleet off the other tenants' engines while it floods (saga's routing:
   * lib/policy/fair_share_placement.ts). Inert unless every engine reports `capacityBlocks`.
   */
  readonly fairPlacement?: boolean;
}

/** A named set of the three policies, run together. */
export interface PolicyBundle {
  /** Registry name (`vllm`, `belady`, ...). */
  readonly name: string;
  /** How outputs name it; an oracle's label says it is a bound, e.g. `belady (bound)`. */
  readonly label: string;
  /** True for a policy with the future in hand (reported as a bound, never as a runnable policy). */
  readonly oracle: boolean;
  readonly routing: RoutingPolicy;
  readonly queue: QueuePolicy;
  readonly eviction: EvictionPolicy;
  /** Receives every event, in time order. Optional. */
  observe?(event: PolicyEvent): void;
}
