/**
 * `saga` eviction: an online approximation of Bélády's MIN from the Agent Execution Graph (lib/graph).
 * Keys follow the oracle's convention (lower = evicted first; key = -(next use)), with predicted next
 * uses in place of the future:
 *
 * - When a call ends, its blocks take key -(now + remaining gap / P(next call)) from the step its stop
 *   reason, tool and call index leave the session in: a session that returns soon and surely keeps its
 *   blocks over one that returns late or perhaps never. (Dividing by the probability is the expected time
 *   to a use when a miss costs the same as a wait.)
 * - Blocks past the predicted reuse depth (agents that replace observations read only part of their
 *   context again), and blocks of programs predicted or known to have ended, are dead: key now - DEAD_S,
 *   below every live key, oldest death first. A program that has ended (its session closes with its
 *   last call) is re-keyed dead at once.
 * - A kind's shared prefix (system prompt, tool schema: learned by the graph) is read by the next call of
 *   any of the kind's sessions, the earliest next use over them, which is "now" while the kind is active:
 *   key -now, refreshed by every release that holds it.
 * - A preempted call's blocks are read again as soon as it is re-admitted: key -now.
 * - Predictions age: a session still away when its predicted return has passed is re-predicted given how
 *   long it has been away (the gap sketch's conditional median and a lower return probability), and its
 *   blocks re-keyed in one batched KvCache.setSessionKeys per engine. One away past every gap seen dies.
 *
 * Within a session the block core's tie rule evicts deeper blocks first, so a cached prefix never gets a
 * hole. Causal: every key comes from what the graph learned from past events.
 */
import { Heap } from 'heap-js';
import { AgentExecutionGraph, callEndS, type Prediction } from '../graph/aeg';
import { FULL_REUSE } from '../graph/step_stats';
import type { KvCache } from '../kv/kv_cache';
import { EngineKeys, SessionRekeys } from './engine_keys';
import type { EvictionPolicy, OffloadQuery, PolicyEvent, ReleaseInfo } from './types';

/** Dead keys sit this far below the clock: below any live key -(now + gap / p) of a run. */
const DEAD_S = 1e12;
/** Probability of a next call under which a session is treated as ended. */
const DEAD_PROBABILITY = 0.02;
/** Re-check a paused session at most this often (seconds), so a busy cluster does not re-key constantly. */
const MIN_RECHECK_S = 1;

interface Paused {
  engineId: number;
  /** Bumped by every release of the session, so stale heap entries are skipped. */
  version: number;
  /** Blocks of the kind's shared prefix (kept at -now) and the predicted reuse depth (blocks). */
  sharedBlocks: number;
  reuseBlocks: number;
}

interface Check {
  dueS: number;
  session: number;
  version: number;
}

export class SagaEviction implements EvictionPolicy {
  readonly name = 'saga';
  readonly graph: AgentExecutionGraph;
  private readonly engines = new EngineKeys();
  private readonly paused = new Map<number, Paused>();
  /** Re-checks by due time (then session, version); stale ones are skipped when popped. */
  private readonly checks = new Heap<Check>((a, b) => a.dueS - b.dueS || a.session - b.session || a.version - b.version);
  // Batched re-keys, per engine: sessions, keys and first positions, for the live and the dead pass.
  private readonly rekeys = new Map<number, { live: SessionRekeys; dead: SessionRekeys }>();

  constructor(graph: AgentExecutionGraph = new AgentExecutionGraph()) {
    this.graph = graph;
  }

  attach(engineId: number, cache: KvCache): void {
    this.engines.attach(engineId, cache);
  }

  releaseKeys(info: ReleaseInfo, out: Float64Array): void {
    const now = info.nowS;
    const call = info.call;
    if (info.reason === 'preempt') {
      out.fill(-now, 0, info.count);
      return;
    }
    // Away from the call's end: 0, or less while a replay's call has yet to end (ReleaseInfo's endS).
    const prediction = this.graph.predict(this.graph.stepOf(call, info.stop, info.toolKind), now - callEndS(info), call.outputTokens);
    const shared = this.graph.sharedPrefixBlocks(call.tenant, call.kind);
    const promptBlocks = call.blockHashes.length;
    const reuse = prediction.reuseRatio >= FULL_REUSE ? Infinity : Math.ceil(prediction.reuseRatio * promptBlocks);
    const live = liveKey(now, prediction);
    const dead = now - DEAD_S;
    for (let i = 0; i < info.count; i++) {
      const p = info.positions[i];
      out[i] = p < shared ? -now : p < reuse ? live : dead;
    }
    const state = this.paused.get(call.session);
    const version = (state?.version ?? 0) + 1;
    this.paused.set(call.session, { engineId: info.engineId, version, sharedBlocks: shared, reuseBlocks: reuse });
    if (live !== dead && prediction.remainingGapS !== undefined) {
      this.checks.push({ dueS: now + Math.max(MIN_RECHECK_S, prediction.remainingGapS), session: call.session, version });
    }
  }

  /**
   * Host tier: keep a session that will be read again (its key is live, not dead) when restoring it
   * costs less than recomputing it; a program predicted or known to have ended is dropped.
   */
  offload(query: OffloadQuery): boolean {
    const dead = query.key <= query.nowS - DEAD_S / 2;
    return !dead && query.restoreS < query.recomputeS;
  }

  /**
   * A whole-session engine: hold an idle session whose next call is expected (its live key, -(next
   * use)) sooner than recomputing its context would take, since the waiting call then loses less by
   * waiting than the session would lose, and the engine's compute spend, on a recompute. The hold lasts
   * until one recompute's time past that expected use (a call that has arrived is keyed "next use now",
   * so it is held while it waits), then lapses whatever the session does: a fixed time-to-live, so a
   * session that never returns cannot hold a sequence for ever. Dead sessions are never held.
   */
  holdUntilS(query: OffloadQuery): number {
    if (query.key <= query.nowS - DEAD_S / 2) return 0;
    const nextUseS = -query.key;
    if (nextUseS - query.nowS > query.recomputeS) return 0;
    return nextUseS + query.recomputeS;
  }

  observe(event: PolicyEvent): void {
    this.graph.observe(event);
    const session = event.call.session;
    if (event.type === 'call-arrive') {
      // It is back: the blocks its call will read are next used now, as a waiting call's are (its next
      // release keys them afresh); those past the predicted reuse depth stay dead.
      const state = this.paused.get(session);
      if (state !== undefined) {
        this.paused.delete(session);
        this.queue(state.engineId, 'live', session, -event.nowS, 0);
        if (Number.isFinite(state.reuseBlocks)) this.queue(state.engineId, 'dead', session, event.nowS - DEAD_S, state.reuseBlocks);
      }
    } else if (event.type === 'call-finish' && event.lastCall) {
      const state = this.paused.get(session);
      if (state !== undefined) {
        // The program ended: everything past the shared prefix is dead now.
        this.queue(state.engineId, 'dead', session, event.nowS - DEAD_S, state.sharedBlocks);
        this.paused.delete(session);
      }
    }
    this.recheck(event.nowS);
    this.flush();
  }

  /** Re-predicts sessions whose predicted return has passed, and queues their re-keys. */
  private recheck(nowS: number): void {
    for (let check = this.checks.peek(); check !== undefined && check.dueS < nowS; check = this.checks.peek()) {
      this.checks.pop();
      const state = this.paused.get(check.session);
      if (state === undefined || state.version !== check.version) continue;
      const prediction = this.graph.predictSession(check.session, nowS);
      if (prediction === undefined) continue;
      const live = liveKey(nowS, prediction);
      const dead = nowS - DEAD_S;
      if (live === dead || prediction.remainingGapS === undefined) {
        this.queue(state.engineId, 'dead', check.session, dead, state.sharedBlocks);
        this.paused.delete(check.session);
        continue;
      }
      this.queue(state.engineId, 'live', check.session, live, state.sharedBlocks);
      if (Number.isFinite(state.reuseBlocks)) this.queue(state.engineId, 'dead', check.session, dead, Math.max(state.sharedBlocks, state.reuseBlocks));
      this.checks.push({ dueS: nowS + Math.max(MIN_RECHECK_S, prediction.remainingGapS), session: check.session, version: check.version });
    }
  }

  private queue(engineId: number, pass: 'live' | 'dead', session: number, key: number, fromPosition: number): void {
    let batch = this.rekeys.get(engineId);
    if (batch === undefined) {
      batch = { live: new SessionRekeys(), dead: new SessionRekeys() };
      this.rekeys.set(engineId, batch);
    }
    batch[pass].add(session, key, fromPosition);
  }

  /**
   * One setSessionKeys per engine and pass: live regions first, then the dead tails over them (two calls,
   * so no batch names a session twice: backends need not agree on the order within one call).
   */
  private flush(): void {
    for (const [engineId, batch] of this.rekeys) {
      const cache = this.engines.cache(engineId);
      batch.live.applyTo(cache);
      batch.dead.applyTo(cache);
    }
  }
}

/** -(now + remaining gap / P(next call)), or the dead key when a next call is unlikely or unseen. */
function liveKey(nowS: number, prediction: Prediction): number {
  const p = prediction.nextCallProbability;
  if (prediction.remainingGapS === undefined || p < DEAD_PROBABILITY) return nowS - DEAD_S;
  return -(nowS + prediction.remainingGapS / p);
}

