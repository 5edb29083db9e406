/**
 * Fair-share placement (saga's routing, in the simulator and at a gateway that knows its engines' KV sizes;
 * DESIGN.md's third mechanism carried into routing):
 * while one tenant floods the fleet, the other tenants are served on engines it is kept off.
 *
 * Why routing and not only the queue: Agent Fair Share orders each engine's queue, but an admitted call
 * shares every decode iteration with the engine's batch, and a memory-bound decode step reads the whole
 * batch's context. A tenant that floods the fleet fills every engine's KV with its contexts, and the light
 * tenants' calls, admitted first by AFS, still decode 6-7x slower per token than alone (docs/fairness.md,
 * "What a flood does"): a slowdown of at most 2 is out of reach from the queue. Partitioning servers by
 * max-min fair share is what fair sharing does when a job cannot be split across servers.
 *
 * The rule, at each new session's routing:
 * - A tenant's demand, in engines: the KV its live sessions will hold, over one engine's KV. A live session
 *   counts its context as last known (its latest call's prompt, plus the output once the call finished:
 *   nothing before the engine would know it), or, if more, the mean context that ended sessions of its
 *   workflow kind came to hold (a backlog of new sessions is a demand for what they will grow to).
 * - Max-min fair shares of the N engines over the tenants with live sessions (equal weights): the water
 *   level L with sum(min(demand, L)) = N; none while the demands fit the fleet.
 * - A tenant floods when its demand is over L and it opens sessions more than FAIR_PLACEMENT.floodFactor
 *   times as fast as the other live tenants on average (each rate an exponentially weighted one, memory
 *   FAIR_PLACEMENT.rateMemoryS). It stops flooding once its demand is within L (hysteresis: the groups do
 *   not flap). The rate test keeps a tenant that is merely the largest (on `mixed`, coding-0 opens about
 *   2.4 times as many sessions as the other two on average) sharing the fleet as before: splitting the
 *   fleet costs the sessions that would have spread over it.
 * - While some tenant floods and some does not, the others ("protected") get enough engines to hold their
 *   demand with each engine's KV FAIR_PLACEMENT.protectedFill full (the rest is headroom: a decode step
 *   reads the batch's whole context, so a full engine decodes each of its calls several times slower than
 *   a light one), at least one, at most their equal shares of the fleet (N times their number over the
 *   live tenants', rounded down) and N - 1: the engines homing most of their context (their KV is there,
 *   so the set moves little from one decision to the next). A protected tenant's sessions are homed among
 *   them, a flooding tenant's among the rest; a session homed in the other group's engines moves to its
 *   own at its next call, and no steal moves one across.
 * - Otherwise every engine is open to every session, as without the placement.
 */
import { FAIR_PLACEMENT } from '../constants';
import { ArrivalRate } from '../util/arrival_rate';
import type { CallInfo, EngineView, PolicyEvent, SessionLiveness } from './types';

interface LiveSession {
  readonly tenant: string;
  readonly kind: string;
  /** Its context, tokens, as last known. */
  tokens: number;
}

/** Which engines the tenants' sessions may be homed on, while a tenant floods. */
export interface PlacementGroups {
  /** The engines of the tenants that do not flood; the flooding tenants use the rest. */
  readonly protectedEngines: ReadonlySet<number>;
  readonly protectedTenants: ReadonlySet<string>;
}

export class FairSharePlacement {
  private readonly sessions = new Map<number, LiveSession>();
  /** Per tenant, how fast it has opened sessions lately. */
  private readonly opening = new Map<string, ArrivalRate>();
  /** Per workflow kind, its ended sessions and the contexts they ended with, summed. */
  private readonly ended = new Map<string, { sessions: number; tokens: number }>();
  /** Tenants flooding: kept on engines of their own until their demand is within their max-min share. */
  private readonly flooding = new Set<string>();
  private groups: PlacementGroups | undefined;

  /**
   * `homeOf`: where a live session is homed (the routing's record). `liveness`: how much a session counts
   * (a gateway's judgement that a session long away has ended, before its idle expiry ends it); all
   * sessions count whole without it.
   */
  constructor(
    private readonly homeOf: (session: number) => number | undefined,
    private readonly liveness?: SessionLiveness,
  ) {}

  /** A call arrives: its session is live, with at least its prompt as context; a new one is counted opening. */
  arrive(call: CallInfo, nowS: number): void {
    const s = this.sessions.get(call.session);
    if (s !== undefined) {
      s.tokens = Math.max(s.tokens, call.promptTokens);
      return;
    }
    this.sessions.set(call.session, { tenant: call.tenant, kind: call.kind, tokens: call.promptTokens });
    let rate = this.opening.get(call.tenant);
    if (rate === undefined) this.opening.set(call.tenant, (rate = new ArrivalRate(FAIR_PLACEMENT.rateMemoryS)));
    rate.record(nowS);
  }

  /** A call finishes: its output joins its session's context; a program's last call ends the session. */
  observe(event: PolicyEvent): void {
    if (event.type !== 'call-finish') return;
    const s = this.sessions.get(event.call.session);
    if (s === undefined) return;
    s.tokens = Math.max(s.tokens, event.call.promptTokens + event.call.outputTokens);
    if (!event.lastCall) return;
    this.sessions.delete(event.call.session);
    const kind = this.ended.get(s.kind) ?? { sessions: 0, tokens: 0 };
    kind.sessions++;
    kind.tokens += s.tokens;
    this.ended.set(s.kind, kind);
  }

  /** Recomputes the groups, at each new session's routing (demand changes with every arrival and end). */
  update(engines: readonly EngineView[], nowS: number): void {
    this.groups = undefined;
    const n = engines.length;
    let capacityTokens = 0;
    for (const e of engines) capacityTokens += (e.capacityBlocks ?? NaN) * e.blockSize;
    // Every engine's KV is needed (one unknown would count as none): else the placement is inert.
    if (n < 2 || !(capacityTokens > 0)) return;
    const demand = this.demandInEngines(capacityTokens / n, nowS);
    const level = waterLevel([...demand.values()], n);
    for (const tenant of this.flooding) if (!((demand.get(tenant) ?? 0) > level)) this.flooding.delete(tenant);
    if (level === Infinity || demand.size < 2) return;
    let allRates = 0;
    for (const tenant of demand.keys()) allRates += this.openingPerS(tenant, nowS);
    for (const [tenant, d] of demand) {
      const rate = this.openingPerS(tenant, nowS);
      if (d > level && rate > (FAIR_PLACEMENT.floodFactor * (allRates - rate)) / (demand.size - 1)) this.flooding.add(tenant);
    }
    if (this.flooding.size === 0) return;
    const protectedTenants = new Set<string>();
    let protectedDemand = 0;
    for (const [tenant, d] of demand) {
      if (this.flooding.has(tenant)) continue;
      protectedTenants.add(tenant);
      protectedDemand += d;
    }
    if (protectedTenants.size === 0) return;
    const entitled = Math.floor((n * protectedTenants.size) / demand.size);
    const count = Math.min(n - 1, entitled, Math.max(1, Math.ceil(protectedDemand / FAIR_PLACEMENT.protectedFill)));
    // The engines homing most of the protected tenants' context; ties to those homing least of the others'.
    const mine = new Float64Array(n);
    const others = new Float64Array(n);
    for (const [session, s] of this.sessions) {
      const home = this.homeOf(session);
      if (home === undefined || home >= n) continue;
      if (protectedTenants.has(s.tenant)) mine[home] += s.tokens;
      else others[home] += s.tokens;
    }
    const order = engines.map((e) => e.id).sort((a, b) => mine[b] - mine[a] || others[a] - others[b] || a - b);
    this.groups = { protectedEngines: new Set(order.slice(0, count)), protectedTenants };
  }

  /** The groups as last updated (undefined: every engine is open to every tenant). */
  current(): PlacementGroups | undefined {
    return this.groups;
  }

  /** Whether a session of `tenant` may be homed on engine `engineId`, by the groups as last updated. */
  allows(tenant: string, engineId: number): boolean {
    const g = this.groups;
    return g === undefined || g.protectedTenants.has(tenant) === g.protectedEngines.has(engineId);
  }

  /** Each live tenant's demand, in engines of `engineTokens` KV tokens. */
  private demandInEngines(engineTokens: number, nowS: number): Map<string, number> {
    const demand = new Map<string, number>();
    for (const [session, s] of this.sessions) {
      const live = this.liveness?.(session, nowS) ?? 1;
      if (live <= 0) continue;
      const kind = this.ended.get(s.kind);
      const tokens = kind === undefined ? s.tokens : Math.max(s.tokens, kind.tokens / kind.sessions);
      demand.set(s.tenant, (demand.get(s.tenant) ?? 0) + (live * tokens) / engineTokens);
    }
    return demand;
  }

  private openingPerS(tenant: string, nowS: number): number {
    return this.opening.get(tenant)?.perS(nowS) ?? 0;
  }
}

/**
 * The max-min fair water level: the share L with sum(min(d, L)) = capacity, or Infinity when the demands
 * fit (their sum is at most the capacity).
 */
export function waterLevel(demands: readonly number[], capacity: number): number {
  const sorted = [...demands].sort((a, b) => a - b);
  let left = capacity;
  for (let i = 0; i < sorted.length; i++) {
    const share = left / (sorted.length - i);
    if (sorted[i] > share) return share;
    left -= sorted[i];
  }
  return Infinity;
}
