/**
 * What the gateway learns of one engine's speed and tokenizer from the answers it passes on, online and
 * from past answers only, so that the stealing test prices a moved call's recompute in the engine's own
 * terms rather than by the config's guess:
 *
 * - Characters per token: the gateway sees text, the engine counts tokens. Each answer's
 *   `usage.prompt_tokens` against the characters of the prompt text the gateway estimated from (the same
 *   text its block hashes cover) gives the engine's ratio; a running ratio of sums (exponentially
 *   forgotten, ENGINE_RATES.decay per answer), starting from GATEWAY.charsPerToken with the weight of
 *   ENGINE_RATES.priorTokens tokens. It converts the gateway's estimates (characters / GATEWAY.charsPerToken)
 *   into the engine's tokens.
 * - Prefill seconds per token: a least-squares fit of each answered call's time at the engine (sent to
 *   answer's end) against its uncached prompt tokens (prompt - cached, as the engine reported them) and its
 *   completion tokens, plus a constant: time = a + b * uncached + c * completion. Same forgetting; a ridge
 *   prior pulls b towards 1 / the config's `prefillTokensPerS` with the weight of ENGINE_RATES.priorCalls
 *   calls of ENGINE_RATES.priorUncachedTokens uncached tokens, so the config rules until answers say
 *   otherwise. Calls running together on the engine share its iterations, so b is the prefill cost the
 *   engine showed under its load, not its speed alone. The whole fit (a, b, c) predicts how long a call
 *   will take there (`serviceS`), for the stealing test's wait at a call's home.
 * - Completion tokens per call: a running mean (same forgetting, ENGINE_RATES.priorCompletionTokens as a
 *   one-call prior), the length a call is expected to generate when its request does not bound it lower.
 * Answers without usage (an engine that reports none) teach nothing: the config's values stay.
 */
import { ENGINE_RATES, GATEWAY } from '../constants';

export class EngineRates {
  private chars: number;
  private tokens: number;
  /** X'X and X'y of the fit over (1, uncached tokens, completion tokens), forgotten by ENGINE_RATES.decay. */
  private readonly xx = new Float64Array(9);
  private readonly xy = new Float64Array(3);
  private observations = 0;
  private secondsPerToken: number;
  /** The fit's constant (seconds per call) and seconds per completion token, never negative. */
  private constantS = 0;
  private secondsPerCompletionToken = 0;
  private completionTokens: number = ENGINE_RATES.priorCompletionTokens;
  private completionCalls = 1;
  /** Scratch space (no allocation per answer): one row of the fit, and its augmented normal equations. */
  private readonly x = new Float64Array(3);
  private readonly system = new Float64Array(12);
  private readonly solution = new Float64Array(3);

  constructor(readonly priorTokensPerS: number) {
    this.tokens = ENGINE_RATES.priorTokens;
    this.chars = ENGINE_RATES.priorTokens * GATEWAY.charsPerToken;
    this.secondsPerToken = 1 / priorTokensPerS;
  }

  /** The engine's characters per token (of the gateway's prompt text). */
  get charsPerToken(): number {
    return this.chars / this.tokens;
  }

  /** The engine's prefill rate, tokens per second, as fitted (the prior before any answer). */
  get prefillTokensPerS(): number {
    return 1 / this.secondsPerToken;
  }

  /** Answers the fit has learned from. */
  get answers(): number {
    return this.observations;
  }

  /** Engine tokens of `estimatedTokens` of the gateway's estimate (characters / GATEWAY.charsPerToken). */
  engineTokens(estimatedTokens: number): number {
    return (estimatedTokens * GATEWAY.charsPerToken) / this.charsPerToken;
  }

  /** The gateway's estimate of `engineTokens` of the engine's tokens (engineTokens' inverse). */
  estimatedTokens(engineTokens: number): number {
    return (engineTokens * this.charsPerToken) / GATEWAY.charsPerToken;
  }

  /** Seconds the engine takes to prefill `estimatedTokens` (the gateway's estimate) it does not cache. */
  prefillS(estimatedTokens: number): number {
    return this.engineTokens(estimatedTokens) * this.secondsPerToken;
  }

  /**
   * An output token's price in prefill tokens (the gateway's estimate), for Agent Fair Share: the fit's
   * seconds per completion token over an estimated prompt token's. A decode step is never cheaper than a
   * prefill token (each is a forward pass of its own), so it weighs at least 1, as before any answer.
   * (The fit's constant is not charged: with the prefill term pulled towards the config's prior, the
   * constant takes up what the prior gets wrong.)
   */
  get decodePrice(): number {
    return Math.max(1, this.secondsPerCompletionToken / this.prefillS(1));
  }

  /** Completion tokens an answer has had, on average (forgotten as the fit is). */
  get meanCompletionTokens(): number {
    return this.completionTokens / this.completionCalls;
  }

  /**
   * Seconds a call is expected to take at the engine, sent to answered: the fit's constant, the prefill of
   * `uncachedEstimatedTokens` (the gateway's estimate) and `completionTokens` of decoding.
   */
  serviceS(uncachedEstimatedTokens: number, completionTokens: number): number {
    return this.constantS + this.prefillS(uncachedEstimatedTokens) + completionTokens * this.secondsPerCompletionToken;
  }

  /**
   * One answered call: the characters of its prompt text, what the engine reported (prompt tokens, of them
   * cached, completion tokens), and seconds from sending it to its answer's end.
   */
  observe(promptChars: number, promptTokens: number, cachedTokens: number, completionTokens: number, seconds: number): void {
    if (!(promptTokens > 0) || !(seconds >= 0) || !Number.isFinite(seconds)) return;
    const d = ENGINE_RATES.decay;
    if (promptChars > 0) {
      this.chars = this.chars * d + promptChars;
      this.tokens = this.tokens * d + promptTokens;
    }
    this.completionTokens = this.completionTokens * d + Math.max(0, completionTokens);
    this.completionCalls = this.completionCalls * d + 1;
    const x = this.x;
    x[0] = 1;
    x[1] = Math.max(0, promptTokens - Math.min(cachedTokens, promptTokens));
    x[2] = Math.max(0, completionTokens);
    for (let i = 0; i < 3; i++) {
      this.xy[i] = this.xy[i] * d + x[i] * seconds;
      for (let j = 0; j < 3; j++) this.xx[3 * i + j] = this.xx[3 * i + j] * d + x[i] * x[j];
    }
    this.observations++;
    this.refit();
  }

  /** Solves the ridge-regularised normal equations; keeps the previous fit if they are singular. */
  private refit(): void {
    const prior = 1 / this.priorTokensPerS;
    const u = ENGINE_RATES.priorUncachedTokens;
    const a = this.system;
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) a[4 * i + j] = this.xx[3 * i + j];
      a[4 * i + 3] = this.xy[i];
    }
    // Ridge: the constant and the completion term pulled towards 0, the prefill term towards the prior.
    a[0] += ENGINE_RATES.ridgeConstant;
    const lambda = ENGINE_RATES.priorCalls * u * u;
    a[5] += lambda;
    a[7] += lambda * prior;
    a[10] += ENGINE_RATES.ridgeCompletion;
    const fit = this.solution;
    if (!solve3(a, fit) || !fit.every(Number.isFinite)) return;
    // A cost cannot be negative or free: bounded to a hundredth .. a hundred times the prior.
    this.secondsPerToken = Math.min(prior * 100, Math.max(prior / 100, fit[1]));
    this.constantS = Math.max(0, fit[0]);
    this.secondsPerCompletionToken = Math.max(0, fit[2]);
  }
}

/**
 * Gaussian elimination with partial pivoting on a 3x4 augmented matrix (row-major, overwritten), the
 * unknowns into `out`; false if singular.
 */
function solve3(m: Float64Array, out: Float64Array): boolean {
  for (let col = 0; col < 3; col++) {
    let pivot = col;
    for (let r = col + 1; r < 3; r++) if (Math.abs(m[4 * r + col]) > Math.abs(m[4 * pivot + col])) pivot = r;
    if (Math.abs(m[4 * pivot + col]) < 1e-300) return false;
    if (pivot !== col) {
      for (let k = 0; k < 4; k++) {
        const t = m[4 * col + k];
        m[4 * col + k] = m[4 * pivot + k];
        m[4 * pivot + k] = t;
      }
    }
    for (let r = 0; r < 3; r++) {
      if (r === col) continue;
      const f = m[4 * r + col] / m[4 * col + col];
      if (f === 0) continue;
      for (let k = col; k < 4; k++) m[4 * r + k] -= f * m[4 * col + k];
    }
  }
  for (let i = 0; i < 3; i++) out[i] = m[4 * i + 3] / m[4 * i + i];
  return true;
}
