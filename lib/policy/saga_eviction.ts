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
import { AgentExecutionGraph, type Prediction } from '../graph/aeg';
import { FULL_REUSE } from '../graph/step_stats';
import type { KvCache } from '../kv/kv_cache';
import type { EvictionPolicy, PolicyEvent, ReleaseInfo } from './types';

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
  private readonly caches: KvCache[] = [];
  private readonly paused = new Map<number, Paused>();
  /** Min-heap of re-checks by due time. */
  private readonly checks: Check[] = [];
  // Batched re-keys, per engine: sessions, keys and first positions, for the live and the dead pass.
  private readonly rekeys = new Map<number, { live: number[]; liveKeys: number[]; livePos: number[]; dead: number[]; deadKeys: number[]; deadPos: number[] }>();

  constructor(graph: AgentExecutionGraph = new AgentExecutionGraph()) {
    this.graph = graph;
  }

  attach(engineId: number, cache: KvCache): void {
    this.caches[engineId] = cache;
  }

  releaseKeys(info: ReleaseInfo, out: Float64Array): void {
    const now = info.nowS;
    const call = info.call;
    if (info.reason === 'preempt') {
      out.fill(-now, 0, info.count);
      return;
    }
    const prediction = this.graph.predict(this.graph.stepOf(call, info.stop, info.toolKind));
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
      this.pushCheck({ dueS: now + Math.max(MIN_RECHECK_S, prediction.remainingGapS), session: call.session, version });
    }
  }

  observe(event: PolicyEvent): void {
    this.graph.observe(event);
    const session = event.call.session;
    if (event.type === 'call-arrive') {
      this.paused.delete(session); // it is back: its next release keys it afresh
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
    const checks = this.checks;
    while (checks.length > 0 && checks[0].dueS < nowS) {
      const check = this.popCheck();
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
      this.pushCheck({ dueS: nowS + Math.max(MIN_RECHECK_S, prediction.remainingGapS), session: check.session, version: check.version });
    }
  }

  private queue(engineId: number, pass: 'live' | 'dead', session: number, key: number, fromPosition: number): void {
    let batch = this.rekeys.get(engineId);
    if (batch === undefined) {
      batch = { live: [], liveKeys: [], livePos: [], dead: [], deadKeys: [], deadPos: [] };
      this.rekeys.set(engineId, batch);
    }
    if (pass === 'live') {
      batch.live.push(session);
      batch.liveKeys.push(key);
      batch.livePos.push(fromPosition);
    } else {
      batch.dead.push(session);
      batch.deadKeys.push(key);
      batch.deadPos.push(fromPosition);
    }
  }

  /** One setSessionKeys per engine and pass: live regions first, then the dead tails over them. */
  private flush(): void {
    for (const [engineId, batch] of this.rekeys) {
      const cache = this.caches[engineId];
      if (cache !== undefined) {
        if (batch.live.length > 0) cache.setSessionKeys(Int32Array.from(batch.live), Float64Array.from(batch.liveKeys), Int32Array.from(batch.livePos));
        if (batch.dead.length > 0) cache.setSessionKeys(Int32Array.from(batch.dead), Float64Array.from(batch.deadKeys), Int32Array.from(batch.deadPos));
      }
    }
    this.rekeys.clear();
  }

  private pushCheck(check: Check): void {
    const h = this.checks;
    h.push(check);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent].dueS <= h[i].dueS) break;
      [h[parent], h[i]] = [h[i], h[parent]];
      i = parent;
    }
  }

  private popCheck(): Check {
    const h = this.checks;
    const top = h[0];
    const last = h.pop() as Check;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l].dueS < h[m].dueS) m = l;
        if (r < h.length && h[r].dueS < h[m].dueS) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}

/** -(now + remaining gap / P(next call)), or the dead key when a next call is unlikely or unseen. */
function liveKey(nowS: number, prediction: Prediction): number {
  const p = prediction.nextCallProbability;
  if (prediction.remainingGapS === undefined || p < DEAD_PROBABILITY) return nowS - DEAD_S;
  return -(nowS + prediction.remainingGapS / p);
}

