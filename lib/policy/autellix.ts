/**
 * `autellix`: the peer from Luo et al., 2025, "Autellix: An Efficient Serving Engine for LLM Agents as
 * General Programs" (arXiv 2502.13965), for single-threaded programs (the agents here are: one call at a
 * time per task), as its Section 4 describes its scheduler and load balancer:
 *
 * - Queue: Program-Level Attained Service (PLAS). A call's priority is its program's attained service:
 *   the cumulative service time of the program's completed calls (plus, for a running call, its time in
 *   service so far), lower first. Non-clairvoyant: nothing about a call's length is used.
 *   Priorities are discretised into K queues Q1..QK (paper, Fig. 10 "LLM call lifecycle based on
 *   discretized prioritization"): a call goes to the queue whose service range holds its program's
 *   attained service, FCFS within a queue, and a call that exhausts its queue's quantum is demoted.
 *   Anti-starvation (same figure and text): a program whose total waiting time over total service time
 *   reaches beta is promoted to Q1. The paper leaves K, the ranges and beta as parameters; ours: K = 8,
 *   Q1 = [0, q), Qk = [q 2^(k-2), q 2^(k-1)) with q = 2 s (MLFQ's doubling quanta; a coding agent's call
 *   takes seconds isolated), the last queue unbounded, beta = 2.
 * - Preemption: Autellix preempts lower-priority running calls for higher ones (swapping their KV to
 *   host memory). The engine here preempts only when KV blocks run out (vLLM's recompute preemption),
 *   and then picks the running call in the lowest-priority queue (a running call's attained service
 *   includes its time in service, i.e. it has been demoted), newest on ties. Demotion thus shows in
 *   preemption and, for a preempted call, in its place in the queue; running calls are not preempted
 *   for priority alone (a documented deviation: our engine has no swap).
 * - Routing: data-locality-aware load balancing. A call whose prompt exceeds 2048 tokens goes to the
 *   engine that ran its program's previous call (where the program's KV cache lives); a shorter call,
 *   and a program's first call, goes to the least used engine (fewest outstanding calls, then fewest
 *   queued prompt tokens, then lowest id), since for short prompts recomputing is cheaper than waiting.
 *   The engine chosen becomes the program's home.
 * - Eviction: vLLM's LRU (Autellix runs on vLLM's block manager).
 * Priorities depend on time (waiting grows), so the queue is `dynamic`: the engine recomputes them
 * before each admission.
 */
import { composeBundle } from './bundle';
import type { CallInfo, EngineView, PolicyBundle, PolicyEvent, QueuePolicy, RoutingPolicy, RunningInfo } from './types';
import { LruEviction } from './vllm';

export interface AutellixOptions {
  /** Number of discretised queues K (default 8). */
  readonly queues?: number;
  /** Upper end of Q1, seconds of attained service (default 2); each later queue's range doubles. */
  readonly baseQuantumS?: number;
  /** Anti-starvation: promote to Q1 when waiting time / service time reaches this (default 2). */
  readonly starvationRatio?: number;
  /** Prompts longer than this (tokens) stay on their program's engine (default 2048). */
  readonly localityThresholdTokens?: number;
}

export const AUTELLIX_DEFAULTS = { queues: 8, baseQuantumS: 2, starvationRatio: 2, localityThresholdTokens: 2048 } as const;

interface ProgramRecord {
  /** Seconds its completed calls spent in service (first admission to finish). */
  serviceS: number;
  /** Seconds its admitted calls waited (arrival to first admission). */
  waitedS: number;
  /** First admission of its current call (NaN while it waits). */
  admittedS: number;
}

/** PLAS with discretised queues and anti-starvation. */
export class PlasQueue implements QueuePolicy {
  readonly name = 'plas';
  readonly dynamic = true;
  private readonly k: number;
  private readonly q: number;
  private readonly beta: number;
  private readonly programs = new Map<number, ProgramRecord>();

  constructor(options: AutellixOptions = {}) {
    this.k = options.queues ?? AUTELLIX_DEFAULTS.queues;
    this.q = options.baseQuantumS ?? AUTELLIX_DEFAULTS.baseQuantumS;
    this.beta = options.starvationRatio ?? AUTELLIX_DEFAULTS.starvationRatio;
    if (!Number.isInteger(this.k) || this.k < 1) throw new RangeError(`autellix: queues must be a positive integer, got ${String(this.k)}`);
    if (!(this.q > 0)) throw new RangeError('autellix: baseQuantumS must be positive');
  }

  /** The queue (0 = Q1) of a program with `attainedS` seconds of service. */
  queueOf(attainedS: number): number {
    if (attainedS < this.q) return 0;
    return Math.min(this.k - 1, Math.floor(Math.log2(attainedS / this.q)) + 1);
  }

  priority(call: CallInfo, nowS: number): number {
    const p = this.programs.get(call.taskIndex);
    if (p === undefined || p.serviceS === 0) return 0;
    const waited = p.waitedS + Math.max(0, nowS - call.arrivalS);
    if (waited / p.serviceS >= this.beta) return 0; // anti-starvation: promoted to Q1
    return this.queueOf(p.serviceS);
  }

  preemptionVictim(running: readonly RunningInfo[], nowS: number): number {
    let best = running.length - 1;
    let bestQueue = -1;
    for (let i = 0; i < running.length; i++) {
      const r = running[i];
      const p = this.programs.get(r.call.taskIndex);
      const attained = (p === undefined ? 0 : p.serviceS) + Math.max(0, nowS - r.admittedS);
      const queue = this.queueOf(attained);
      if (queue >= bestQueue) {
        best = i;
        bestQueue = queue;
      }
    }
    return best;
  }

  observe(event: PolicyEvent): void {
    const task = event.call.taskIndex;
    if (event.type === 'call-arrive') {
      if (!this.programs.has(task)) this.programs.set(task, { serviceS: 0, waitedS: 0, admittedS: NaN });
      return;
    }
    const p = this.programs.get(task);
    if (p === undefined) return;
    if (event.type === 'call-admit') {
      p.admittedS = event.nowS;
      p.waitedS += Math.max(0, event.nowS - event.call.arrivalS);
    } else if (event.type === 'call-finish') {
      if (!Number.isNaN(p.admittedS)) p.serviceS += Math.max(0, event.nowS - p.admittedS);
      p.admittedS = NaN;
      if (event.lastCall) this.programs.delete(task);
    }
  }
}

/** Autellix's data-locality-aware load balancer. */
export class LocalityAwareRouting implements RoutingPolicy {
  readonly name = 'locality-aware';
  private readonly threshold: number;
  private readonly home = new Map<number, number>();

  constructor(options: AutellixOptions = {}) {
    this.threshold = options.localityThresholdTokens ?? AUTELLIX_DEFAULTS.localityThresholdTokens;
  }

  route(call: CallInfo, engines: readonly EngineView[], _nowS: number): number {
    const known = this.home.get(call.session);
    if (known !== undefined && call.promptTokens > this.threshold) return known;
    let best = engines[0];
    let bestCalls = best.outstandingCalls();
    let bestTokens = best.queuedTokens();
    for (let i = 1; i < engines.length; i++) {
      const engine = engines[i];
      const calls = engine.outstandingCalls();
      if (calls > bestCalls) continue;
      const tokens = engine.queuedTokens();
      if (calls < bestCalls || tokens < bestTokens || (tokens === bestTokens && engine.id < best.id)) {
        best = engine;
        bestCalls = calls;
        bestTokens = tokens;
      }
    }
    this.home.set(call.session, best.id);
    return best.id;
  }

  observe(event: PolicyEvent): void {
    if (event.type === 'call-finish' && event.lastCall) this.home.delete(event.call.session);
  }
}

export function createAutellixBundle(options: AutellixOptions = {}): PolicyBundle {
  return composeBundle({ name: 'autellix', routing: new LocalityAwareRouting(options), queue: new PlasQueue(options), eviction: new LruEviction() });
}
