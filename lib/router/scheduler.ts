/**
 * The gateway's scheduler: per engine, a queue of calls not yet sent, ordered by the queue policy; a call
 * is sent to an engine only while the engine has fewer than `capacity` calls in flight. Routing picks the
 * engine (the policy's choice, unless that engine is down or does not serve the model), work stealing moves
 * waiting calls to engines that can take them at once, and every event goes to the policies as the
 * simulator sends them (call-arrive when queued, call-admit when sent, call-finish when answered).
 *
 * Faults: a call that fails before its first byte reached the client is tried on another engine (at most
 * GATEWAY.maxAttempts engines); an engine that refuses, times out or dies is marked down and its queued
 * calls go elsewhere. Admission: a call whose engine has no room and `maxQueuedPerEngine` calls waiting is
 * refused (429, Retry-After); with no engine up, 503.
 */
import { performance } from 'node:perf_hooks';
import { GATEWAY, ROUTING } from '../constants';
import { OpenAiError, STATUS } from '../engine/openai_errors';
import type { CallInfo } from '../policy/types';
import type { GatewayConfig } from './config';
import { queuedBefore, type EngineState } from './engine_state';
import type { GatewayCall } from './gateway_call';
import type { GatewayMetrics } from './metrics';
import type { GatewayPolicies } from './policies';
import { BLOCK_TOKENS } from './prompt_estimate';

/** How an upstream attempt ended. */
export type AttemptOutcome =
  /**
   * The call is over for the client: answered, or left, or its stream broken after its first byte
   * (`failure`). Tokens as the engine reported them, else estimated.
   */
  | {
      readonly type: 'answered';
      readonly promptTokens: number;
      readonly completionTokens: number;
      readonly cachedTokens: number | undefined;
      readonly finishReason: string | undefined;
      /** The engine reported prompt and completion tokens (usage), so the engine's rates may learn from them. */
      readonly usageReported: boolean;
      readonly failure?: { readonly reason: string; readonly engineDown: boolean };
    }
  /** Failed before any byte went to the client: may be tried elsewhere; `engineDown` when the engine itself failed. */
  | { readonly type: 'retry'; readonly reason: string; readonly engineDown: boolean; readonly error: OpenAiError };

export type RunAttempt = (call: GatewayCall, engine: EngineState<GatewayCall>) => Promise<AttemptOutcome>;

export class Scheduler {
  private readonly startMs = performance.now();
  private stealTimer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];
  private active = 0;
  /** The engine each session's last call was sent to. */
  private readonly lastEngine = new Map<number, number>();
  private slos: Map<string, number> | undefined;

  constructor(
    private readonly engines: readonly EngineState<GatewayCall>[],
    private readonly policies: GatewayPolicies,
    private readonly config: GatewayConfig,
    private readonly metrics: GatewayMetrics,
    private readonly runAttempt: RunAttempt,
  ) {}

  /** Seconds since the gateway started: the policies' clock. */
  nowS(): number {
    return (performance.now() - this.startMs) / 1000;
  }

  /** Calls admitted and not yet finished (queued or in flight). */
  get activeCalls(): number {
    return this.active;
  }

  /**
   * Admits a new call: routes it and queues it (or refuses it with a 429 or 503 OpenAiError, thrown). From
   * then on the call settles exactly once.
   */
  submit(job: GatewayCall): void {
    this.place(job, 'arrive');
    this.active++;
    job.clientGone.once('abort', () => this.clientLeft(job));
  }

  /** Resolves once no call is queued or in flight (graceful drain). */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    if (this.stealTimer !== undefined) clearInterval(this.stealTimer);
    this.stealTimer = undefined;
  }

  /** An engine failed: it takes no calls until a probe finds it up; its queued calls go elsewhere. */
  markDown(engine: EngineState<GatewayCall>, reason: string): void {
    if (!engine.up) return;
    engine.up = false;
    engine.downReason = reason;
    engine.forgetCache();
    for (const job of engine.queue.splice(0)) {
      try {
        this.place(job, 'moved', engine);
      } catch (error) {
        this.finishWithError(job, error as OpenAiError);
      }
    }
  }

  markUp(engine: EngineState<GatewayCall>): void {
    if (engine.up) return;
    engine.up = true;
    engine.downReason = undefined;
    // Calls may be waiting on other engines: stealing may move some here.
    this.stealTick();
  }

  /** A session ended (idle past its time): the routing and queue policies and the AEG let it go. */
  sessionEnded(lastCall: CallInfo, nowS: number): void {
    const engineId = this.lastEngine.get(lastCall.session);
    this.lastEngine.delete(lastCall.session);
    this.policies.graph?.forgetSession(lastCall.session);
    if (engineId === undefined) return;
    this.engines[engineId].forgetSession(lastCall.session);
    this.policies.observeQueueing({ type: 'call-finish', call: lastCall, engineId, nowS, lastCall: true });
  }

  // ---- placing calls ----

  /**
   * Routes `job` and queues it on the chosen engine. `arrive`: a new call (every policy observes it);
   * `retry`: a call failed on an engine before its first byte (the queue policy sees a new arrival);
   * `moved`: a queued call whose engine went down (a steal from `from`).
   */
  private place(job: GatewayCall, how: 'arrive' | 'retry' | 'moved', from?: EngineState<GatewayCall>): void {
    const nowS = this.nowS();
    // An engine that does not list the model answers for itself (its 404 passes through).
    const candidates = this.engines.every((e) => e.up && e.serves(job.model)) ? this.engines : this.candidates(job.model);
    if (candidates.length === 0) {
      this.metrics.rejected.inc({ reason: 'no_engine' });
      throw new OpenAiError(STATUS.unavailable, 'No engine is up to serve this request; try again later.', null, 'no_engine_available');
    }
    let engine = this.engines[this.policies.routing.route(job.call, this.engines, nowS)];
    if (engine === undefined || !candidates.includes(engine)) {
      engine = fallback(job.call, candidates);
      this.policies.routing.moveHome?.(job.call.session, engine.id);
    }
    if (how !== 'moved' && !engine.hasRoom() && engine.queue.length >= this.config.admission.maxQueuedPerEngine) {
      this.metrics.rejected.inc({ reason: 'queue_full' });
      throw new OpenAiError(STATUS.tooManyRequests, `The engine serving this session has ${engine.queue.length} calls waiting; try again later.`, null, 'queue_full');
    }
    job.engine = engine;
    job.enqueuedS = nowS;
    engine.recordArrival(nowS);
    if (how === 'arrive') this.policies.observe({ type: 'call-arrive', call: job.call, engineId: engine.id, nowS });
    else if (how === 'retry') this.policies.observeQueueing({ type: 'call-arrive', call: job.call, engineId: engine.id, nowS });
    else if (from !== undefined) this.policies.observe({ type: 'call-steal', call: job.call, fromEngineId: from.id, engineId: engine.id, nowS });
    job.priority = this.policies.queue.priority(job.call, nowS);
    job.tieBreak = this.policies.queue.tieBreak?.(job.call, nowS) ?? 0;
    engine.queue.push(job);
    this.pump(engine);
    this.armStealing();
  }

  /** The engines up that serve `model`, else all those up. */
  private candidates(model: string | undefined): readonly EngineState<GatewayCall>[] {
    const eligible = this.engines.filter((e) => e.up && e.serves(model));
    return eligible.length > 0 ? eligible : this.engines.filter((e) => e.up);
  }

  /** Sends queued calls to `engine`, best first, while it has room. */
  private pump(engine: EngineState<GatewayCall>): void {
    while (engine.hasRoom() && engine.queue.length > 0) {
      const nowS = this.nowS();
      const queue = this.policies.queue;
      if (queue.dynamic) {
        for (const job of engine.queue) {
          job.priority = queue.priority(job.call, nowS);
          job.tieBreak = queue.tieBreak?.(job.call, nowS) ?? 0;
        }
      }
      let best = 0;
      for (let i = 1; i < engine.queue.length; i++) if (queuedBefore(engine.queue[i], engine.queue[best])) best = i;
      const [job] = engine.queue.splice(best, 1);
      this.send(job, engine, nowS);
    }
  }

  private send(job: GatewayCall, engine: EngineState<GatewayCall>, nowS: number): void {
    engine.inFlight++;
    const last = this.lastEngine.get(job.call.session);
    if (job.attempts === 0) this.metrics.sessionRoute(last === undefined ? 'new' : last === engine.id ? 'home' : 'moved');
    if (last !== undefined && last !== engine.id) this.engines[last].forgetSession(job.call.session);
    this.lastEngine.set(job.call.session, engine.id);
    job.attempts++;
    job.sentAtMs = performance.now();
    const cachedTokens = Math.min(job.call.promptTokens, engine.cachedPrefixBlocks(job.call.blockHashes, job.call.session) * BLOCK_TOKENS);
    job.estimatedCachedTokens = cachedTokens;
    engine.recordRunning(job, nowS);
    engine.recordSent(job.call.blockHashes);
    if (engine.config.kind === 'llama.cpp') job.slot = engine.takeSlot(job.call.session);
    this.policies.observe({ type: 'call-admit', call: job.call, engineId: engine.id, cachedTokens, nowS });
    this.runAttempt(job, engine).then(
      (outcome) => this.attemptEnded(job, engine, outcome),
      (error: unknown) => this.attemptEnded(job, engine, { type: 'retry', reason: 'internal', engineDown: false, error: toServerError(error) }),
    );
  }

  private attemptEnded(job: GatewayCall, engine: EngineState<GatewayCall>, outcome: AttemptOutcome): void {
    engine.inFlight--;
    engine.recordEnded(job);
    if (job.slot !== undefined) engine.releaseSlot(job.slot);
    job.slot = undefined;
    if (outcome.type === 'answered') {
      if (outcome.failure !== undefined) {
        this.metrics.upstreamErrors.inc({ engine: engine.name, reason: outcome.failure.reason });
        if (outcome.failure.engineDown) this.markDown(engine, outcome.failure.reason);
      }
      this.finished(job, engine, outcome);
    } else {
      this.metrics.upstreamErrors.inc({ engine: engine.name, reason: outcome.reason });
      if (outcome.engineDown) this.markDown(engine, outcome.reason);
      if (job.answered) this.done(job);
      else if (job.attempts >= GATEWAY.maxAttempts) this.finishWithError(job, outcome.error);
      else {
        this.metrics.retries.inc({ engine: engine.name });
        try {
          this.place(job, 'retry');
        } catch {
          // No engine left to try: the client hears what went wrong upstream.
          this.finishWithError(job, outcome.error);
        }
      }
    }
    this.pump(engine);
    if (engine.queue.length === 0) this.stealTick();
  }

  /** An answered call: the policies learn from it, the metrics count it. */
  private finished(job: GatewayCall, engine: EngineState<GatewayCall>, outcome: Extract<AttemptOutcome, { type: 'answered' }>): void {
    const nowS = this.nowS();
    const call: CallInfo = { ...job.call, outputTokens: outcome.completionTokens };
    this.policies.observe({ type: 'call-finish', call, engineId: engine.id, nowS, lastCall: false, ...(outcome.finishReason === undefined ? {} : { stop: outcome.finishReason }) });
    const tenant = job.identity.tenant;
    const tenantMetrics = this.metrics.tenant(tenant);
    this.metrics.usage(engine.name, outcome.promptTokens, outcome.cachedTokens);
    tenantMetrics.serviceTokens.inc(outcome.promptTokens + outcome.completionTokens);
    tenantMetrics.calls.inc();
    const endMs = performance.now();
    if (outcome.usageReported && outcome.failure === undefined && outcome.finishReason !== 'abort') {
      // The engine's rates learn from its own counts (cached: its report, else what the gateway expected it to cache).
      const cached = outcome.cachedTokens ?? engine.rates.engineTokens(job.estimatedCachedTokens);
      engine.rates.observe(job.promptChars, outcome.promptTokens, cached, outcome.completionTokens, (endMs - job.sentAtMs) / 1000);
    }
    const slowdown = (endMs - job.arrivalMs) / Math.max(endMs - job.sentAtMs, 1e-3);
    tenantMetrics.slowdown.observe(slowdown);
    const slo = this.sloOf(tenant);
    if (slo === undefined || slowdown <= slo) tenantMetrics.sloMet.inc();
    this.done(job);
  }

  /** The tenant's SLO slowdown (undefined for a tenant the config does not name). */
  private sloOf(tenant: string): number | undefined {
    if (this.slos === undefined) this.slos = new Map(this.config.tenants.map((t) => [t.name, t.slo.slowdown]));
    return this.slos.get(tenant);
  }

  private finishWithError(job: GatewayCall, error: OpenAiError): void {
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
    if (error.status === STATUS.unavailable || error.status === STATUS.tooManyRequests) headers['retry-after'] = String(this.config.admission.retryAfterS);
    job.settle({ kind: 'reply', status: error.status, headers, body: JSON.stringify(error.body()) });
    this.done(job);
  }

  private done(job: GatewayCall): void {
    job.engine = undefined;
    this.active--;
    if (this.active === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** The client left: a queued call leaves its queue; a call in flight is aborted by its attempt. */
  private clientLeft(job: GatewayCall): void {
    const engine = job.engine;
    if (engine === undefined) return;
    const i = engine.queue.indexOf(job);
    if (i < 0) return;
    engine.queue.splice(i, 1);
    job.settle({ kind: 'gone' });
    this.done(job);
  }

  // ---- work stealing ----

  private armStealing(): void {
    if (this.stealTimer !== undefined || this.policies.routing.steal === undefined) return;
    this.stealTimer = setInterval(() => this.stealTick(), ROUTING.stealIntervalS * 1000);
    this.stealTimer.unref();
  }

  /** Each engine that could send a call now and has none queued may take one waiting elsewhere. */
  private stealTick(): void {
    const steal = this.policies.routing.steal;
    if (steal === undefined) return;
    if (!this.engines.some((e) => e.queue.length > 0)) {
      if (this.stealTimer !== undefined) clearInterval(this.stealTimer);
      this.stealTimer = undefined;
      return;
    }
    const nowS = this.nowS();
    for (const thief of this.engines) {
      if (!thief.hasRoom() || thief.queue.length > 0) continue;
      const choice = steal.call(this.policies.routing, thief, this.engines, nowS);
      if (choice === undefined) continue;
      const victim = this.engines[choice.from];
      const i = victim.queue.findIndex((job) => job.call === choice.call);
      if (i < 0) continue;
      const [job] = victim.queue.splice(i, 1);
      job.engine = thief;
      job.enqueuedS = nowS;
      thief.recordArrival(nowS);
      this.policies.observe({ type: 'call-steal', call: job.call, fromEngineId: victim.id, engineId: thief.id, nowS });
      this.metrics.steals.inc();
      thief.queue.push(job);
      this.pump(thief);
    }
  }
}

/** When the policy's engine cannot take a call: the candidate with the fewest calls, then the longest cached prefix, then the lowest id. */
function fallback(call: CallInfo, candidates: readonly EngineState<GatewayCall>[]): EngineState<GatewayCall> {
  let best = candidates[0];
  let bestPrefix = best.cachedPrefixBlocks(call.blockHashes);
  for (const engine of candidates) {
    const prefix = engine.cachedPrefixBlocks(call.blockHashes);
    const load = engine.outstandingCalls() - best.outstandingCalls();
    if (load < 0 || (load === 0 && prefix > bestPrefix)) {
      best = engine;
      bestPrefix = prefix;
    }
  }
  return best;
}

function toServerError(error: unknown): OpenAiError {
  return error instanceof OpenAiError ? error : new OpenAiError(STATUS.internalError, `The gateway failed: ${error instanceof Error ? error.message : String(error)}`);
}
