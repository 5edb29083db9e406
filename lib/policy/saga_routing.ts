/**
 * `saga` routing: session-affinity batching with work stealing (DESIGN.md, mechanism 2).
 *
 * - Affinity: a session's calls go to its home engine, where its KV lives; a new session goes, among the
 *   engines within ROUTING.newSessionSlack live sessions of the least loaded, to the one caching the
 *   longest prefix of its prompt (so calls sharing a system prompt or tool schema batch on one engine),
 *   as vllm's routing does (lib/policy/vllm.ts). With `separateKinds` (the gateway's saga), first to the
 *   engines whose live sessions are least of other workflow kinds (size-based assignment, the kind standing
 *   in for the size of its calls), and no home moves among more sessions of other kinds than it leaves.
 * - The home moves by the stealing test: a returning call whose home has calls waiting goes instead to
 *   an engine that can admit it at once when the queueing delay it saves exceeds the cost of recomputing
 *   the part of its context that only the home caches.
 * - Stealing: every ROUTING.stealIntervalS, an engine with an empty queue and room for the call takes the
 *   waiting call elsewhere that gains most: the delay saved minus the cost of the move. The delay saved is
 *   the call's predicted wait at its engine (EngineView.admissionWaitS: the calls running there and ahead
 *   of it against their expected service) where the engine predicts one, else a guess from its wait so far
 *   (a call that has waited w in a queue that is not moving expects to wait about w more). The cost: the
 *   recompute (prefill on the thief with what it caches, minus prefill at home with what the home caches,
 *   from the engine's cost model, times one plus the calls on the thief and half those expected to arrive
 *   there during it: they share the iterations the recompute takes), plus what the move costs the sessions
 *   already on the thief (EngineView.displacementS: an engine holding whole sessions gives one up), less
 *   what staying would cost those at home (a session that lost its place at home pushes another out there
 *   when it comes back); plus the wait of the calls arriving on the thief while the moved call holds one of
 *   its places for its whole service, prefill and decode (EngineView.heldPlaceDelayS), less what the calls
 *   queued behind it at home gain when it leaves (EngineView.departureGainS). A stolen call's session is
 *   homed on the thief from then on (its KV is built there).
 * - Under-loaded means fewer sessions, where places are few: onto an engine that bounds its calls by a count
 *   of places (EngineView.places, a gateway's capacity) fewer than its live sessions and the newcomer, a
 *   session moves (at arrival or by a steal) only when the move balances them. Such an engine looks idle
 *   while its sessions are in tool calls; on the gateway's three-engine bench, moves onto it cost its own
 *   sessions more than they saved (bench/RESULTS.md). The simulator's batching engines have no such count.
 *   Live sessions are counted, or, given a liveness estimate (a gateway's, from the AEG: nothing over HTTP
 *   says a program ended), summed by it.
 *
 * - Fair-share placement (`fairPlacement`: saga's, in the simulator and at a gateway whose engines' KV sizes
 *   are configured): while one tenant floods the fleet (over its max-min share of the KV and opening
 *   sessions several times as fast as the others), the other tenants' sessions are homed on engines of
 *   their own, which it is kept off, and no move crosses between the two (./fair_share_placement.ts says
 *   why and how many engines each side gets).
 *
 * Load bound: a new session is never homed on an engine with more than ROUTING.newSessionSlack live
 * sessions over the least loaded, and homes move only to engines with an empty queue, so the spread of
 * live sessions grows only by returning sessions; on batching engines, queued calls never sit while an
 * engine able to admit them is idle for longer than the recompute cost of moving them (plus one stealing
 * interval).
 */
import type { CallInfo, EngineView, RoutingPolicy, Steal, WaitingInfo } from './types';
import { SessionAffinityRouting } from './vllm';
import type { AffinityOptions, PolicyEvent, SessionLiveness } from './types';

export class AffinityStealingRouting implements RoutingPolicy {
  readonly name = 'saga-routing';
  private readonly affinity: SessionAffinityRouting;

  /**
   * `liveness`: where given, an engine's sessions count by it; `options.separateKinds`: new sessions prefer
   * engines of their own workflow kind, and no home moves among more sessions of other kinds than it leaves
   * (both SessionAffinityRouting).
   */
  constructor(liveness?: SessionLiveness, options: AffinityOptions = {}) {
    this.affinity = new SessionAffinityRouting(liveness, options);
  }

  route(call: CallInfo, engines: readonly EngineView[], nowS: number): number {
    this.affinity.newDecision();
    const home = this.affinity.route(call, engines, nowS);
    const homeEngine = engines[home];
    const waitS = homeEngine.admissionWaitS?.(undefined, nowS) ?? queueDelayS(homeEngine, nowS);
    if (waitS <= 0) return home;
    // The same test as stealing, at arrival: move home if an engine that can take the call now saves more
    // queueing delay than the move costs.
    let best = home;
    let bestGain = 0;
    for (const engine of engines) {
      if (engine === homeEngine || engine.waitingCalls().length > 0 || engine.freeBlocks() < blocksFor(engine, call) || !this.mayMove(engine, home, call, nowS)) continue;
      const gain = waitS - (engine.admissionWaitS?.(undefined, nowS) ?? 0) - moveCostS(engine, homeEngine, call, nowS);
      if (gain > bestGain) {
        best = engine.id;
        bestGain = gain;
      }
    }
    if (best !== home) this.affinity.moveHome(call.session, best);
    return best;
  }

  steal(thief: EngineView, engines: readonly EngineView[], nowS: number): Steal | undefined {
    this.affinity.newDecision();
    let best: Steal | undefined;
    let bestGain = 0;
    const room = thief.freeBlocks();
    for (const victim of engines) {
      if (victim === thief) continue;
      const waiting = victim.waitingCalls();
      if (waiting.length === 0) continue;
      for (const w of victim.admissionWaitS === undefined ? [oldestOf(waiting)] : waiting) {
        const savedS = victim.admissionWaitS?.(w.call, nowS) ?? nowS - w.enqueuedS;
        // A steal rehomes the call's session (homed on the victim, unless its home went down meanwhile).
        if (blocksFor(thief, w.call) > room || !this.mayMove(thief, this.affinity.homeOf(w.call.session) ?? victim.id, w.call, nowS)) continue;
        const gain = savedS - moveCostS(thief, victim, w.call, nowS);
        if (gain > bestGain) {
          best = { from: victim.id, call: w.call };
          bestGain = gain;
        }
      }
    }
    if (best !== undefined) this.affinity.moveHome(best.call.session, thief.id);
    return best;
  }

  /**
   * Whether a session may move from engine `home` to `target`. Where the target bounds its calls by a
   * count of places (EngineView.places) that its live sessions and the newcomer would outnumber, only
   * when the move balances load: the target, with the session, still homes fewer live sessions than the
   * home did. Such an engine is idle only while its sessions are in tool calls; they come back to find
   * the moved session holding a place for its whole service. A batching engine shares its iterations
   * instead, which the price counts. Where kinds are kept apart, never among more sessions of other
   * workflow kinds than it leaves: a moved session takes all its later calls there, and a long-call kind
   * moved among short calls slows every one of them (SessionAffinityRouting.otherKindShare).
   */
  private mayMove(target: EngineView, home: number, call: CallInfo, nowS: number): boolean {
    const session = call.session;
    if (!this.affinity.mayHome(call.tenant, target.id) || this.affinity.movesAmongOtherKinds(session, home, target.id, nowS)) return false;
    if (target.places === undefined) return true;
    const sessions = this.affinity.liveSessions(target.id, nowS) + 1;
    return sessions <= target.places || sessions < this.affinity.liveSessions(home, nowS, session);
  }

  observe(event: PolicyEvent): void {
    this.affinity.observe(event);
  }

  /** Moves a live session's home (a gateway does when the home engine goes down). */
  moveHome(session: number, engineId: number): void {
    this.affinity.moveHome(session, engineId);
  }
}

/** Without a prediction, how long a call joining `engine`'s queue now should expect to wait: as long as its oldest waiter has. */
function queueDelayS(engine: EngineView, nowS: number): number {
  let oldest = Infinity;
  for (const w of engine.waitingCalls()) if (w.enqueuedS < oldest) oldest = w.enqueuedS;
  return oldest === Infinity ? 0 : nowS - oldest;
}

/** The longest-waiting call: without a prediction, the one whose wait says most about the queue not moving. */
function oldestOf(waiting: readonly WaitingInfo[]): WaitingInfo {
  let oldest = waiting[0];
  for (const w of waiting) if (w.enqueuedS < oldest.enqueuedS || (w.enqueuedS === oldest.enqueuedS && w.call.arrivalS < oldest.call.arrivalS)) oldest = w;
  return oldest;
}

/**
 * What moving `call` from `home` to `engine` costs: the prefill it needs there beyond what it needs at home,
 * which delays the moved call, every call already there (they share its iterations), and the calls that
 * arrive there while it runs (at the engine's recent arrival rate, each delayed half of it on average);
 * plus the session it may push out there, less the one it would push out at home (a session that lost its
 * place at home displaces another there too); plus what the place it holds there for its whole service
 * makes the calls arriving there wait, less what leaving the home queue gives the calls behind it there.
 */
function moveCostS(engine: EngineView, home: EngineView, call: CallInfo, nowS: number): number {
  const extraPrefillS = costAt(engine, call) - costAt(home, call);
  const arrivingDuring = Math.max(0, extraPrefillS) * (engine.arrivalsPerS?.(nowS) ?? 0);
  const recomputeS = extraPrefillS * (1 + engine.outstandingCalls() + arrivingDuring / 2);
  const sessionsS = (engine.displacementS?.(call) ?? 0) - (home.displacementS?.(call) ?? 0);
  const placesS = (engine.heldPlaceDelayS?.(call, nowS) ?? 0) - (home.departureGainS?.(call) ?? 0);
  return recomputeS + sessionsS + placesS;
}

/** Prefill seconds of `call` on `engine`, given what that engine caches of its prompt. */
function costAt(engine: EngineView, call: CallInfo): number {
  const cached = call.blockHashes.length === 0 ? 0 : engine.cachedPrefixBlocks(call.blockHashes, call.session) * engine.blockSize;
  return engine.prefillEstimateS(call.promptTokens, Math.min(cached, call.promptTokens));
}

/** KV blocks the call's prompt and first output token need. */
function blocksFor(engine: EngineView, call: CallInfo): number {
  return Math.ceil((call.promptTokens + 1) / engine.blockSize);
}
