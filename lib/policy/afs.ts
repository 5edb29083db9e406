/**
 * `afs`: Agent Fair Share, DESIGN.md's third mechanism, as a queue policy (and `createAfsBundle`, the
 * AFS-alone ablation: vLLM's routing and eviction with this queue). The definitions, the bound and its
 * proof: docs/fairness.md.
 *
 * - Service unit: tokens. A call is charged `promptTokens - cachedTokens` (the prefill the engine
 *   computes; cached tokens cost nothing) at its first admission (`call-admit`), and `outputTokens` (its
 *   decode) when it finishes (`call-finish`): the default, and the only causal choice, since an output's
 *   length is unknown until the output ends (test/causality.test.ts fails the other). Where the engines'
 *   costs are known (`decodePrice`: the gateway learns them from answer times), the tokens are prefill-token
 *   equivalents: each output token is charged at the engine's price of a decode step in prefill tokens, so
 *   a tenant whose calls hold an engine longer with their answers pays for it. The bound then
 *   grows by the decode of the tenant's calls in flight (docs/fairness.md). `decodeCharge: 'admit'`
 *   charges the whole call at admission, as fair queuing charges a packet's length when it starts, which
 *   makes the bound exact but reads the output length early (a gateway would use max_tokens): it is for
 *   studying the bound, not for runs that claim to be online. A call
 *   recomputed after a preemption is not charged again: recomputing is the engine's cost, not the
 *   tenant's demand.
 * - Virtual counters: per engine and tenant, v += charge / weight (weights default 1, `weights`
 *   configurable). Each engine runs its own fair share over the calls routed to it, as CFS keeps one
 *   vruntime clock per CPU run queue: what an engine can order is its own queue, and the bound holds
 *   per engine.
 * - Backlogged: a tenant with a call waiting (arrived, not yet admitted) on the engine. New-backlog rule:
 *   when a tenant becomes backlogged its counter is raised to at least the engine's virtual time V, the
 *   least counter among backlogged tenants (the last such value while none is backlogged), as start-time
 *   fair queuing and CFS's min_vruntime do: an idle tenant banks no credit.
 * - Order: a waiting call's priority is its tenant's counter on the engine (lower first); among one
 *   tenant's calls, least attained service first (`tieBreak`: tokens its program was charged so far,
 *   Autellix's PLAS within the tenant); then arrival order. Priorities change as calls are admitted, so
 *   the queue is `dynamic` (the engine recomputes them before each admission).
 * - SLO-aware admission: given `remainingWorkS(call)` (predicted remaining isolated work of the call's
 *   program, seconds; e.g. the AEG's), a program whose projected slowdown reaches `urgentAt` x the SLO
 *   is urgent, and its calls' priority is lowered by `urgencyBoostTokens`: it may go ahead of tenants
 *   less than that much virtual service ahead of it, and ahead of its own tenant's other programs.
 *   Projected slowdown = (elapsed + remaining) / (elapsed - time its calls waited in queues + remaining).
 *   The boost is bounded, so the bound survives it (plus the boost). No predictor: nothing is urgent.
 * - Preemption victim: by default vLLM's (the newest running call), which recomputes least.
 *   `victim: 'most-attained'` takes the running call whose tenant has the largest counter on the engine,
 *   then whose program has the most attained service (newest on ties): fairer on paper, but on
 *   memory-bound runs it preempts the longest contexts and recomputes them (docs/fairness.md: 0.84x
 *   against 1.03x for newest on a 16-GPU run).
 */
import { DEFAULT_SLO } from '../metrics/metrics';
import { composeBundle } from './bundle';
import type { CallInfo, PolicyBundle, PolicyEvent, QueuePolicy, RunningInfo } from './types';
import { LruEviction, SessionAffinityRouting } from './vllm';

export interface AfsOptions {
  /** Tenant weights (a tenant of weight w is charged service / w); tenants not listed get `defaultWeight`. */
  readonly weights?: Readonly<Record<string, number>>;
  /** Weight of tenants not in `weights` (default 1). */
  readonly defaultWeight?: number;
  /** When a call's decode tokens are charged: at its finish (default; causal) or at admission (exact bound, reads the output length early). */
  readonly decodeCharge?: 'admit' | 'finish';
  /** Predicted remaining isolated work of the call's program, seconds (undefined: no prediction). */
  readonly remainingWorkS?: (call: CallInfo) => number | undefined;
  /** The SLO on slowdown the urgency rule aims at (default DEFAULT_SLO, 2.0). */
  readonly sloSlowdown?: number;
  /** Tenants' own SLOs on slowdown, where they differ (others: `sloSlowdown`). */
  readonly tenantSlos?: Readonly<Record<string, number>>;
  /** A program is urgent when its projected slowdown reaches this share of the SLO (default 0.75). */
  readonly urgentAt?: number;
  /** Virtual service (tokens) an urgent program's calls move ahead by (default 16384). */
  readonly urgencyBoostTokens?: number;
  /** Growth-aware admission (QueuePolicy.expectedOutputTokens): the output a call is expected to write. */
  readonly expectedOutputTokens?: (call: CallInfo) => number;
  /** Preemption victim: vLLM's newest running call (default) or the most attained service. */
  readonly victim?: 'most-attained' | 'newest';
  /** Prefill tokens an output token is charged on an engine: a decode step's cost over a prefill token's (default 1: plain tokens). */
  readonly decodePrice?: (engineId: number) => number;
}

export const AFS_DEFAULT_URGENT_AT = 0.75;
export const AFS_DEFAULT_URGENCY_BOOST_TOKENS = 16384;

/** A tenant on one engine. */
interface Lane {
  readonly tenant: string;
  readonly weight: number;
  /** Virtual service counter (tokens / weight). */
  v: number;
  /** Its calls waiting on the engine (arrived, never admitted). */
  waiting: number;
  /** Largest single charge so far, divided by the weight (the bound's L). */
  maxChargeV: number;
  /** decodeCharge 'finish': decode tokens of its admitted, unfinished calls, and the most of them / weight. */
  inflightDecode: number;
  maxInflightV: number;
}

/** One engine's tenants and virtual time. */
class Ledger {
  readonly lanes = new Map<string, Lane>();
  /** Virtual time: the least counter among backlogged tenants (kept while none is). */
  virtualTime = 0;

  /** Least counter among backlogged tenants, or the last virtual time when none is. */
  currentMin(): number {
    let min = Infinity;
    for (const lane of this.lanes.values()) if (lane.waiting > 0 && lane.v < min) min = lane.v;
    return min === Infinity ? this.virtualTime : min;
  }
}

interface Program {
  readonly firstArrivalS: number;
  /** Tokens charged to the program so far (unweighted): its attained service. */
  attained: number;
  /** Seconds its admitted calls waited in queues. */
  waitedS: number;
}

/** A counter snapshot of one backlogged tenant (tests, reports). */
export interface BackloggedCounter {
  readonly tenant: string;
  readonly v: number;
  readonly maxChargeV: number;
}

export class AfsQueue implements QueuePolicy {
  readonly name = 'afs';
  readonly dynamic = true;
  /** Present only when the options give one (the engine then admits with room to grow). */
  readonly expectedOutputTokens?: (call: CallInfo) => number;
  private readonly weights: Readonly<Record<string, number>>;
  private readonly defaultWeight: number;
  private readonly decodeAtAdmit: boolean;
  private remainingWorkS: ((call: CallInfo) => number | undefined) | undefined;
  private readonly slo: number;
  private readonly tenantSlos: ReadonlyMap<string, number>;
  private readonly urgentAt: number;
  readonly urgencyBoostTokens: number;
  private readonly victimNewest: boolean;
  private readonly decodePrice: ((engineId: number) => number) | undefined;
  private readonly ledgers: Ledger[] = [];
  /** decodeCharge 'finish': each program's decode charge added to its lane's in-flight sum at admission. */
  private readonly inflightCharge = new Map<number, number>();
  /** Engine of each task's current call. */
  private readonly engineOf = new Map<number, number>();
  private readonly programs = new Map<number, Program>();
  /** Largest gap between two backlogged tenants' counters on one engine, over the run so far. */
  maxBackloggedGap = 0;
  /** Whether any call was boosted as urgent (the bound then includes the boost). */
  boostedAny = false;
  /**
   * Worst ratio, over every event and backlogged tenant i, of (v_i - V) to the bound docs/fairness.md
   * proves for it: L_i (+ the boost once any call was urgent; + its most decode in flight / weight under
   * decodeCharge 'finish'). At most 1 when the theorem holds.
   */
  worstBoundRatio = 0;

  constructor(options: AfsOptions = {}) {
    if (options.expectedOutputTokens !== undefined) this.expectedOutputTokens = options.expectedOutputTokens;
    this.weights = options.weights ?? {};
    for (const [tenant, w] of Object.entries(this.weights)) {
      if (!(w > 0) || !Number.isFinite(w)) throw new RangeError(`afs: weight of tenant ${tenant} must be a positive number, got ${String(w)}`);
    }
    this.defaultWeight = options.defaultWeight ?? 1;
    if (!(this.defaultWeight > 0)) throw new RangeError('afs: defaultWeight must be positive');
    this.decodeAtAdmit = options.decodeCharge === 'admit';
    this.remainingWorkS = options.remainingWorkS;
    this.slo = options.sloSlowdown ?? DEFAULT_SLO;
    this.tenantSlos = new Map(Object.entries(options.tenantSlos ?? {}));
    this.urgentAt = options.urgentAt ?? AFS_DEFAULT_URGENT_AT;
    this.urgencyBoostTokens = options.urgencyBoostTokens ?? AFS_DEFAULT_URGENCY_BOOST_TOKENS;
    this.victimNewest = (options.victim ?? 'newest') === 'newest';
    this.decodePrice = options.decodePrice;
  }

  /** Plugs in (or removes) the predictor of a program's remaining work (seconds). */
  setRemainingWork(fn: ((call: CallInfo) => number | undefined) | undefined): void {
    this.remainingWorkS = fn;
  }

  weightOf(tenant: string): number {
    return Object.prototype.hasOwnProperty.call(this.weights, tenant) ? this.weights[tenant] : this.defaultWeight;
  }

  // ---- QueuePolicy ----

  priority(call: CallInfo, nowS: number): number {
    const lane = this.laneOf(call);
    const v = lane === undefined ? 0 : lane.v;
    return this.urgent(call, nowS) ? v - this.urgencyBoostTokens : v;
  }

  tieBreak(call: CallInfo, _nowS: number): number {
    const program = this.programs.get(call.taskIndex);
    return program === undefined ? 0 : program.attained;
  }

  preemptionVictim(running: readonly RunningInfo[], _nowS: number): number {
    let best = running.length - 1;
    if (this.victimNewest) return best;
    let bestV = -Infinity;
    let bestAttained = -Infinity;
    for (let i = 0; i < running.length; i++) {
      const call = running[i].call;
      const lane = this.laneOf(call);
      const v = lane === undefined ? 0 : lane.v;
      const program = this.programs.get(call.taskIndex);
      const attained = program === undefined ? 0 : program.attained;
      if (v > bestV || (v === bestV && attained >= bestAttained)) {
        best = i;
        bestV = v;
        bestAttained = attained;
      }
    }
    return best;
  }

  // ---- events ----

  observe(event: PolicyEvent): void {
    const call = event.call;
    if (event.type === 'call-arrive') {
      this.engineOf.set(call.taskIndex, event.engineId);
      if (!this.programs.has(call.taskIndex)) this.programs.set(call.taskIndex, { firstArrivalS: event.nowS, attained: 0, waitedS: 0 });
      this.join(this.ledger(event.engineId), call.tenant);
    } else if (event.type === 'call-admit') {
      const ledger = this.ledger(event.engineId);
      const lane = ledger.lanes.get(call.tenant);
      const program = this.programs.get(call.taskIndex);
      const decode = call.outputTokens * this.priceOf(event.engineId);
      const charge = Math.max(0, call.promptTokens - event.cachedTokens) + (this.decodeAtAdmit ? decode : 0);
      if (lane !== undefined) {
        this.charge(lane, charge);
        if (lane.waiting > 0) lane.waiting--;
        if (!this.decodeAtAdmit) {
          lane.inflightDecode += decode;
          this.inflightCharge.set(call.taskIndex, decode);
          lane.maxInflightV = Math.max(lane.maxInflightV, lane.inflightDecode / lane.weight);
        }
      }
      if (program !== undefined) {
        program.attained += charge;
        program.waitedS += Math.max(0, event.nowS - call.arrivalS);
      }
      this.settle(ledger);
    } else if (event.type === 'call-finish') {
      if (!this.decodeAtAdmit) {
        const ledger = this.ledger(event.engineId);
        const lane = ledger.lanes.get(call.tenant);
        const decode = call.outputTokens * this.priceOf(event.engineId);
        if (lane !== undefined) {
          this.charge(lane, decode);
          // What admission added (a gateway learns the output's length only now, and admits with 0).
          lane.inflightDecode -= this.inflightCharge.get(call.taskIndex) ?? 0;
          this.inflightCharge.delete(call.taskIndex);
        }
        const program = this.programs.get(call.taskIndex);
        if (program !== undefined) program.attained += decode;
        this.settle(ledger);
      }
      if (event.lastCall) {
        this.programs.delete(call.taskIndex);
        this.engineOf.delete(call.taskIndex);
        this.inflightCharge.delete(call.taskIndex);
      }
    } else {
      // A waiting call moved to another engine (work stealing, `call-steal`): it leaves one backlog and
      // joins the other (with the new-backlog rule there).
      const moved = event as { readonly type: string; readonly fromEngineId?: number; readonly engineId?: number; readonly call: CallInfo };
      if (moved.type !== 'call-steal' || moved.fromEngineId === undefined || moved.engineId === undefined) return;
      const from = this.ledger(moved.fromEngineId);
      const left = from.lanes.get(call.tenant);
      if (left !== undefined && left.waiting > 0) left.waiting--;
      this.settle(from);
      this.engineOf.set(call.taskIndex, moved.engineId);
      this.join(this.ledger(moved.engineId), call.tenant);
    }
  }

  // ---- inspection (tests, reports) ----

  /** The backlogged tenants' counters on `engineId`. */
  backloggedCounters(engineId: number): BackloggedCounter[] {
    const ledger = this.ledgers[engineId];
    if (ledger === undefined) return [];
    const out: BackloggedCounter[] = [];
    for (const lane of ledger.lanes.values()) if (lane.waiting > 0) out.push({ tenant: lane.tenant, v: lane.v, maxChargeV: lane.maxChargeV });
    return out;
  }

  /** A tenant's counter on an engine (undefined if it never had a call there). */
  counter(engineId: number, tenant: string): number | undefined {
    return this.ledgers[engineId]?.lanes.get(tenant)?.v;
  }

  /** The engine's virtual time V. */
  virtualTime(engineId: number): number {
    return this.ledgers[engineId]?.virtualTime ?? 0;
  }

  // ---- internals ----

  private ledger(engineId: number): Ledger {
    while (this.ledgers.length <= engineId) this.ledgers.push(new Ledger());
    return this.ledgers[engineId];
  }

  /** A call of `tenant` joins the engine's queue: the new-backlog rule, then one more waiting. */
  private join(ledger: Ledger, tenant: string): void {
    let lane = ledger.lanes.get(tenant);
    const min = ledger.currentMin();
    if (lane === undefined) {
      lane = { tenant, weight: this.weightOf(tenant), v: min, waiting: 0, maxChargeV: 0, inflightDecode: 0, maxInflightV: 0 };
      ledger.lanes.set(tenant, lane);
    }
    // New-backlog rule: no credit for time spent with nothing waiting.
    if (lane.waiting === 0 && lane.v < min) lane.v = min;
    lane.waiting++;
    this.settle(ledger);
  }

  private priceOf(engineId: number): number {
    return this.decodePrice === undefined ? 1 : this.decodePrice(engineId);
  }

  private laneOf(call: CallInfo): Lane | undefined {
    const engineId = this.engineOf.get(call.taskIndex);
    if (engineId === undefined) return undefined;
    return this.ledgers[engineId]?.lanes.get(call.tenant);
  }

  private charge(lane: Lane, tokens: number): void {
    const dv = tokens / lane.weight;
    lane.v += dv;
    if (dv > lane.maxChargeV) lane.maxChargeV = dv;
  }

  /** Advances the engine's virtual time and records the gap between backlogged counters. */
  private settle(ledger: Ledger): void {
    let min = Infinity;
    let max = -Infinity;
    for (const lane of ledger.lanes.values()) {
      if (lane.waiting === 0) continue;
      if (lane.v < min) min = lane.v;
      if (lane.v > max) max = lane.v;
    }
    if (min === Infinity) return;
    if (min > ledger.virtualTime) ledger.virtualTime = min;
    if (max - min > this.maxBackloggedGap) this.maxBackloggedGap = max - min;
    const boost = this.boostedAny ? this.urgencyBoostTokens : 0;
    for (const lane of ledger.lanes.values()) {
      if (lane.waiting === 0 || lane.v === min) continue;
      const allowed = boost + lane.maxChargeV + (this.decodeAtAdmit ? 0 : lane.maxInflightV);
      const ratio = allowed > 0 ? (lane.v - min) / allowed : Infinity;
      if (ratio > this.worstBoundRatio) this.worstBoundRatio = ratio;
    }
  }

  /** Whether the call's program is near its SLO (needs a predictor). */
  private urgent(call: CallInfo, nowS: number): boolean {
    const predict = this.remainingWorkS;
    if (predict === undefined) return false;
    const remaining = predict(call);
    if (remaining === undefined || !(remaining >= 0)) return false;
    const program = this.programs.get(call.taskIndex);
    if (program === undefined) return false;
    const elapsed = Math.max(0, nowS - program.firstArrivalS);
    const waited = program.waitedS + Math.max(0, nowS - call.arrivalS);
    const isolated = Math.max(elapsed - waited + remaining, 1e-9);
    const urgent = (elapsed + remaining) / isolated >= this.urgentAt * (this.tenantSlos.get(call.tenant) ?? this.slo);
    if (urgent) this.boostedAny = true;
    return urgent;
  }
}

/** The AFS-alone ablation: vLLM's session-affinity routing and LRU eviction with the afs queue. */
export function createAfsBundle(options: AfsOptions = {}): PolicyBundle {
  return composeBundle({ name: 'afs', routing: new SessionAffinityRouting(), queue: new AfsQueue(options), eviction: new LruEviction() });
}
