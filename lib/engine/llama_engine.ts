/**
 * `saga engine`'s inference engine: one llama.cpp model and context (node-llama-cpp) with a fixed number
 * of sequences, run under a SAGA policy bundle, the same objects the simulator drives:
 *
 * - queue: which waiting call is admitted next (`priority`, `tieBreak`, recomputed while calls wait when
 *   the policy is dynamic: AFS's fair-share counters);
 * - eviction: the keys a session's KV leaves with when its call ends, re-keys as the AEG learns, and the
 *   host-tier choice (lib/engine/session_residency.ts);
 * - every event (`call-arrive`, `call-admit`, `call-finish`) is observed, so the AEG learns from live
 *   traffic. Nothing tells the engine when a program ends; `lastCall` is always false and the policy
 *   learns that a session has ended from its absence (overdue re-checks).
 *
 * A call runs in its session's sequence: the part of its prompt that matches the sequence's tokens is
 * reused (cached tokens), the rest prefilled, then tokens are generated. Sequences of one context are
 * batched together by node-llama-cpp.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { SagaError, badArgument } from '../errors';
import { createPolicy, isOraclePolicy, policyNames } from '../policy';
import type { CallInfo, PolicyBundle, PolicyEvent } from '../policy/types';
import type { Workload } from '../workloads/types';
import { type LlamaContext, type LlamaContextSequence, type LlamaModel, loadLlamaRuntime, probeModelFile } from './llama_runtime';
import { SessionResidency } from './session_residency';
import type { CompletionRequest, CompletionResult, EngineStats, FinishReason, InferenceEngine } from './types';

type Token = LlamaContextSequence['contextTokens'][number];

export const ENGINE_DEFAULTS = {
  /** Sequences (concurrent sessions with resident KV). */
  sequences: 4,
  /** Tokens per sequence. */
  contextSize: 2048,
  /** One thread: two on these 2-core machines made decode collapse (3000 -> 56 tokens/s, issue 5). */
  threads: 1,
  /** KvCache block size for the policies' keys (vLLM's default block size). */
  blockSize: 16,
  /** Host tier in MiB (0: none, vLLM's default). */
  hostTierMiB: 0,
  policy: 'vllm',
} as const;

/**
 * Restore and recompute costs for the host-tier and hold decisions. Recompute: the prefill rate this
 * engine measures on its own calls (prefill tokens over the seconds to the first output token, over its
 * calls with at least PREFILL_SAMPLE_MIN_TOKENS to prefill, so it includes what concurrent sequences cost
 * it), starting from what the `small` preset does here (2-core Xeon, one thread: 1,500 tokens/s on a
 * 1,001-token prompt, 1,015 on 2,751). Restore: a 2,751-token sequence's 22.6 MB state was written in
 * 11-12 ms and read back in 9-10 ms from /dev/shm (~2.3 GB/s), taken at 1 GB/s to stay on the safe side
 * of a slower disk.
 */
const PRIOR_PREFILL_TOKENS_PER_S = 1100;
const PREFILL_SAMPLE_MIN_TOKENS = 64;
/** Weight of the newest call in the prefill rate's moving average. */
const PREFILL_RATE_SMOOTHING = 0.2;
const RESTORE_BYTES_PER_S = 1e9;

export interface LlamaEngineOptions {
  readonly modelPath: string;
  /** Model id for /v1/models (default: the file's base name without `.gguf`). */
  readonly modelId?: string | undefined;
  readonly sequences?: number;
  readonly contextSize?: number;
  readonly threads?: number;
  /** A policy bundle name from lib/policy (oracles cannot run online). */
  readonly policy?: string;
  readonly hostTierMiB?: number;
  /** Directory for host-tier state files (default: /dev/shm when present, else the OS temp dir). */
  readonly hostDir?: string;
  readonly blockSize?: number;
}

interface Waiting {
  readonly request: CompletionRequest;
  readonly tokens: Token[];
  readonly call: CallInfo;
  readonly arrivalOrder: number;
  readonly onText: ((delta: string) => void) | undefined;
  priority: number;
  tieBreak: number;
  resolve(result: CompletionResult): void;
  reject(err: Error): void;
}

/** An empty workload: what non-oracle policies are built from (they never read it). */
const NO_WORKLOAD: Workload = { name: 'live', blockSize: ENGINE_DEFAULTS.blockSize, tasks: [] };

function checkInteger(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) throw badArgument(`${name} must be an integer >= ${min}, got ${String(value)}`);
  return value;
}

export class LlamaEngine implements InferenceEngine {
  readonly modelId: string;
  readonly contextSize: number;
  readonly policyName: string;
  /** Tokens per KvCache block: a call's full blocks are what its CallInfo hashes. */
  private readonly blockSize: number;
  private readonly bundle: PolicyBundle;
  private readonly residency: SessionResidency;
  private readonly waiting: Waiting[] = [];
  private readonly sessionNumbers = new Map<string, number>();
  private readonly callCounts: number[] = [];
  private readonly started = performance.now();
  private arrivals = 0;
  private running = 0;
  private closing = false;
  private scheduling = false;
  private idle: (() => void) | undefined;
  private holdTimer: NodeJS.Timeout | undefined;
  private readonly totals = { requests: 0, promptTokens: 0, cachedTokens: 0, completionTokens: 0 };
  /** Measured prefill rate (tokens/s), a moving average over calls (PRIOR_PREFILL_TOKENS_PER_S at first). */
  private prefillTokensPerS = PRIOR_PREFILL_TOKENS_PER_S;

  private constructor(
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    sequences: LlamaContextSequence[],
    options: Required<Omit<LlamaEngineOptions, 'modelId' | 'hostDir'>> & { modelId: string; hostDir: string },
  ) {
    this.modelId = options.modelId;
    this.contextSize = options.contextSize;
    this.policyName = options.policy;
    this.blockSize = options.blockSize;
    this.bundle = createPolicy(options.policy, { workload: NO_WORKLOAD });
    const bytesPerToken = context.stateSize / Math.max(1, options.contextSize * options.sequences);
    this.residency = new SessionResidency({
      sequences,
      blockSize: options.blockSize,
      contextSize: options.contextSize,
      eviction: this.bundle.eviction,
      hostDir: options.hostDir,
      hostTokens: Math.floor((options.hostTierMiB * 1024 * 1024) / Math.max(1, bytesPerToken)),
      restoreS: (tokens) => (tokens * bytesPerToken) / RESTORE_BYTES_PER_S,
      recomputeS: (tokens) => tokens / this.prefillTokensPerS,
    });
  }

  /** Checks the model file in a child process, then loads it. */
  static async create(options: LlamaEngineOptions): Promise<LlamaEngine> {
    const sequences = checkInteger('sequences', options.sequences ?? ENGINE_DEFAULTS.sequences, 1);
    const threads = checkInteger('threads', options.threads ?? ENGINE_DEFAULTS.threads, 1);
    const blockSize = checkInteger('blockSize', options.blockSize ?? ENGINE_DEFAULTS.blockSize, 1);
    const hostTierMiB = options.hostTierMiB ?? ENGINE_DEFAULTS.hostTierMiB;
    if (!Number.isFinite(hostTierMiB) || hostTierMiB < 0) throw badArgument(`hostTierMiB must be >= 0, got ${String(hostTierMiB)}`);
    const policy = options.policy ?? ENGINE_DEFAULTS.policy;
    if (!policyNames().includes(policy)) throw new SagaError(`unknown policy "${policy}"; policies: ${policyNames().join(', ')}`, 'ERR_SAGA_UNKNOWN_POLICY');
    if (isOraclePolicy(policy)) throw new SagaError(`policy "${policy}" is an oracle (it needs the future) and cannot serve live traffic`, 'ERR_SAGA_UNKNOWN_POLICY');
    const info = await probeModelFile(options.modelPath);
    const contextSize = checkInteger('contextSize', options.contextSize ?? Math.min(ENGINE_DEFAULTS.contextSize, info.trainContextSize), 16);
    const llama = await loadLlamaRuntime();
    const model = await llama.loadModel({ modelPath: options.modelPath });
    let context: LlamaContext;
    try {
      context = await model.createContext({ contextSize, sequences, threads, batchSize: Math.min(512, contextSize) });
    } catch (err) {
      await model.dispose();
      throw new SagaError(`cannot create a context of ${sequences} x ${contextSize} tokens: ${(err as Error).message}`, 'ERR_SAGA_BAD_ARGUMENT');
    }
    const seqs = Array.from({ length: sequences }, () => context.getSequence());
    const hostDir = options.hostDir ?? path.join(defaultHostRoot(), `saga-engine-${process.pid}-${Math.floor(performance.now())}`);
    const modelId = options.modelId ?? path.basename(options.modelPath).replace(/\.gguf$/i, '');
    return new LlamaEngine(model, context, seqs, { modelId, sequences, contextSize, threads, blockSize, hostTierMiB, policy, hostDir, modelPath: options.modelPath });
  }

  countTokens(prompt: string): number {
    return this.tokenize(prompt).length;
  }

  complete(request: CompletionRequest, onText?: (delta: string) => void): Promise<CompletionResult> {
    if (this.closing) return Promise.reject(new SagaError('the engine is shutting down', 'ERR_SAGA_ENGINE_CLOSED'));
    if (!Number.isSafeInteger(request.maxTokens) || request.maxTokens < 1) return Promise.reject(badArgument(`max_tokens must be an integer >= 1, got ${String(request.maxTokens)}`));
    const tokens = this.tokenize(request.prompt);
    if (tokens.length + request.maxTokens > this.contextSize) {
      return Promise.reject(
        new SagaError(`the prompt (${tokens.length} tokens) and max_tokens (${request.maxTokens}) exceed the context of ${this.contextSize} tokens`, 'ERR_SAGA_CONTEXT_LENGTH'),
      );
    }
    if (request.signal?.aborted) return Promise.reject(new SagaError('the request was aborted', 'ERR_SAGA_BAD_ARGUMENT'));
    const session = this.sessionNumber(request.session);
    const callIndex = this.callCounts[session]++;
    const nowS = this.nowS();
    const call: CallInfo = {
      taskIndex: session,
      callIndex,
      session,
      tenant: request.tenant,
      kind: request.kind,
      arrivalS: nowS,
      promptTokens: tokens.length,
      outputTokens: 0, // unknown until the call ends
      blockHashes: this.residency.blockHashes(session, tokens).subarray(0, Math.floor(tokens.length / this.blockSize)),
    };
    return new Promise<CompletionResult>((resolve, reject) => {
      const w: Waiting = { request, tokens, call, arrivalOrder: this.arrivals++, onText, priority: 0, tieBreak: 0, resolve, reject };
      w.priority = this.bundle.queue.priority(call, nowS);
      w.tieBreak = this.bundle.queue.tieBreak?.(call, nowS) ?? 0;
      this.waiting.push(w);
      this.observe({ type: 'call-arrive', call, engineId: 0, nowS });
      if (process.env.SAGA_DEBUG_EVICT) console.error(`ARRIVE ${nowS.toFixed(3)} session=${session} call=${callIndex} kind=${request.kind}`);
      request.signal?.addEventListener('abort', () => this.cancelWaiting(w), { once: true });
      this.schedule();
    });
  }

  stats(): EngineStats {
    return {
      requestsTotal: this.totals.requests,
      requestsRunning: this.running,
      requestsWaiting: this.waiting.length,
      promptTokensTotal: this.totals.promptTokens,
      cachedTokensTotal: this.totals.cachedTokens,
      completionTokensTotal: this.totals.completionTokens,
      residentSessions: this.residency.residentSessions,
      hostTierSessions: this.residency.hostSessions,
      offloadsTotal: this.residency.counters.offloads,
      dropsTotal: this.residency.counters.drops,
      restoresTotal: this.residency.counters.restores,
    };
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.holdTimer);
    for (const w of this.waiting.splice(0)) w.reject(new SagaError('the engine is shutting down', 'ERR_SAGA_ENGINE_CLOSED'));
    if (this.running > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    this.residency.close();
    await this.context.dispose();
    await this.model.dispose();
  }

  private nowS(): number {
    return (performance.now() - this.started) / 1000;
  }

  private tokenize(prompt: string): Token[] {
    const tokens = this.model.tokenize(prompt) as Token[];
    const bos = this.model.tokens.bos;
    return bos !== null && this.model.tokens.shouldPrependBosToken && tokens[0] !== bos ? [bos, ...tokens] : tokens;
  }

  private sessionNumber(id: string): number {
    let n = this.sessionNumbers.get(id);
    if (n === undefined) {
      n = this.sessionNumbers.size;
      this.sessionNumbers.set(id, n);
      this.callCounts.push(0);
    }
    return n;
  }

  private observe(event: PolicyEvent): void {
    this.bundle.observe?.(event);
  }

  private cancelWaiting(w: Waiting): void {
    const i = this.waiting.indexOf(w);
    if (i < 0) return; // already running: the generation loop sees the signal
    this.waiting.splice(i, 1);
    w.reject(new SagaError('the request was aborted', 'ERR_SAGA_BAD_ARGUMENT'));
  }

  /** Admits waiting calls, best priority first, while sequences can be had. */
  private schedule(): void {
    if (this.scheduling || this.closing) return;
    this.scheduling = true;
    try {
      const nowS = this.nowS();
      if (this.bundle.queue.dynamic) {
        for (const w of this.waiting) {
          w.priority = this.bundle.queue.priority(w.call, nowS);
          w.tieBreak = this.bundle.queue.tieBreak?.(w.call, nowS) ?? 0;
        }
      }
      this.waiting.sort((a, b) => a.priority - b.priority || a.tieBreak - b.tieBreak || a.arrivalOrder - b.arrivalOrder);
      for (let i = 0; i < this.waiting.length; ) {
        const w = this.waiting[i];
        if (!this.residency.canPlace(w.call.session, nowS) || this.residency.isRunning(w.call.session)) {
          i++;
          continue;
        }
        this.waiting.splice(i, 1);
        this.running++;
        void this.run(w, nowS);
      }
      this.wakeAtHoldExpiry(nowS);
    } finally {
      this.scheduling = false;
    }
  }

  /**
   * Calls still wait while the policy holds idle sessions' sequences: look again when the first hold
   * ends (a call finishing or arriving looks again sooner).
   */
  private wakeAtHoldExpiry(nowS: number): void {
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    if (this.waiting.length === 0) return;
    const untilS = this.residency.nextHoldExpiryS(nowS);
    if (!Number.isFinite(untilS)) return;
    this.holdTimer = setTimeout(() => this.schedule(), Math.max(1, Math.ceil((untilS - nowS) * 1000)));
  }

  private measurePrefill(tokens: number, seconds: number): void {
    if (tokens < PREFILL_SAMPLE_MIN_TOKENS || !(seconds > 0)) return;
    this.prefillTokensPerS += PREFILL_RATE_SMOOTHING * (tokens / seconds - this.prefillTokensPerS);
  }

  private async run(w: Waiting, admittedS: number): Promise<void> {
    let slot = -1;
    try {
      const placement = await this.residency.place(w.call.session, admittedS);
      slot = placement.slot;
      const result = await this.generate(w, slot);
      w.resolve(result);
    } catch (err) {
      if (slot >= 0) await this.residency.abandon(slot).catch(() => undefined);
      w.reject(err instanceof SagaError ? err : new SagaError(`inference failed: ${(err as Error).message}`, 'ERR_SAGA_INTERNAL'));
    } finally {
      this.running--;
      if (this.running === 0) this.idle?.();
      this.schedule();
    }
  }

  private async generate(w: Waiting, slot: number): Promise<CompletionResult> {
    const seq = this.residency.sequence(slot);
    const { request, tokens, call } = w;
    // Reuse the sequence's tokens that match the prompt; at least the last prompt token is evaluated
    // (its logits give the first output token).
    const common = Math.min(seq.compareContextTokens(tokens).firstDifferentIndex, tokens.length - 1);
    if (common < seq.nextTokenIndex) await seq.eraseContextTokenRanges([{ start: common, end: seq.nextTokenIndex }]);
    const admitS = this.nowS();
    this.observe({ type: 'call-admit', call, engineId: 0, cachedTokens: common, nowS: admitS });

    const eos = this.model.tokens.eos;
    const output: Token[] = [];
    let text = '';
    let finishReason: FinishReason = 'length';
    const stops = request.stop ?? [];
    const iterator = seq.evaluate(tokens.slice(common), {
      temperature: request.temperature,
      ...(request.seed === undefined ? {} : { seed: request.seed }),
    });
    const prefillTokens = tokens.length - common;
    const prefillStart = performance.now();
    let first = true;
    for await (const token of iterator) {
      if (first) {
        first = false;
        this.measurePrefill(prefillTokens, (performance.now() - prefillStart) / 1000);
      }
      if (request.signal?.aborted) throw new SagaError('the request was aborted', 'ERR_SAGA_BAD_ARGUMENT');
      if (token === eos && request.ignoreEos !== true) {
        finishReason = 'stop';
        break;
      }
      output.push(token);
      const full = this.model.detokenize(output);
      const stopAt = firstStop(full, stops);
      if (stopAt >= 0) {
        const delta = full.slice(text.length, stopAt);
        if (delta.length > 0) w.onText?.(delta);
        text = full.slice(0, stopAt);
        finishReason = 'stop';
        break;
      }
      // Hold back text that could still become a stop string, and a trailing partial UTF-8 character.
      const safe = full.length - holdBack(full, stops);
      if (safe > text.length) {
        w.onText?.(full.slice(text.length, safe));
        text = full.slice(0, safe);
      }
      if (output.length >= request.maxTokens) break;
    }
    if (finishReason === 'length') {
      const full = this.model.detokenize(output);
      if (full.length > text.length) w.onText?.(full.slice(text.length));
      text = full;
    }

    const nowS = this.nowS();
    const finished: CallInfo = { ...call, outputTokens: output.length };
    this.residency.release(slot, finished, seq.contextTokens, nowS, finishReason);
    if (process.env.SAGA_DEBUG_EVICT) console.error(`FINISH ${nowS.toFixed(3)} session=${call.session} call=${call.callIndex} cached=${common}/${tokens.length}`);
    this.observe({ type: 'call-finish', call: finished, engineId: 0, nowS, lastCall: false, stop: finishReason });
    this.totals.requests++;
    this.totals.promptTokens += tokens.length;
    this.totals.cachedTokens += common;
    this.totals.completionTokens += output.length;
    return { text, finishReason, usage: { promptTokens: tokens.length, completionTokens: output.length, cachedTokens: common } };
  }
}

/** Index where the first stop string starts in `text`, or -1. */
function firstStop(text: string, stops: readonly string[]): number {
  let at = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

/** Characters at the end of `text` to hold back: a prefix of a stop string, or U+FFFD of a split character. */
function holdBack(text: string, stops: readonly string[]): number {
  let hold = text.endsWith('\ufffd') ? 1 : 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > hold; k--) {
      if (text.endsWith(s.slice(0, k))) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

function defaultHostRoot(): string {
  try {
    fs.accessSync('/dev/shm', fs.constants.W_OK);
    return '/dev/shm';
  } catch {
    return os.tmpdir();
  }
}
