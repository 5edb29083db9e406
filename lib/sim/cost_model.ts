/**
 * Roofline cost model of one engine iteration (docs/cost-model.md).
 *
 * An iteration runs a batch of pieces: each piece computes `c` new tokens of one sequence whose first `s`
 * tokens already have KV (a prefill chunk: c >= 1 from s; a decode step: c = 1 from s = tokens - 1).
 * Per tensor-parallel GPU (work divides evenly by the TP degree `tp`):
 *
 *   FLOPs  dense   = 2 x (dense parameters) x (batch tokens) + 2 x (LM head parameters) x (sampled sequences)
 *          attn    = 4 x layers x heads x headDim x (query-key pairs), pairs of a piece = c*s + c(c+1)/2
 *   bytes          = weights (dense + LM head) + KV bytes/token x (s + c per piece: its context read, its new KV written)
 *   compute time   = (dense / EFFICIENCY.gemm + attn / EFFICIENCY.attention) / (peak x tp)
 *   memory time    = bytes / (HBM bandwidth x EFFICIENCY.bandwidth x tp)
 *   iteration time = max(compute, memory) + ITERATION_OVERHEAD_S + all-reduce
 *   all-reduce     = (tp > 1) 2 per layer, each ALLREDUCE_LATENCY_S + 2(tp-1)/tp x tokens x hidden x 2 bytes
 *                    / (NVLink one-way bandwidth x EFFICIENCY.nvlink)   (ring all-reduce)
 *
 * Activation traffic, norms, rotary embeddings and sampling are not counted (they are small next to the
 * weight stream in decode and next to the GEMMs in prefill); the overhead constant absorbs what is fixed.
 * A run of pure decode iterations has a closed form (decodeRunS), so the engine can advance many decode
 * iterations in one step.
 */
import { ALLREDUCE_LATENCY_S, EFFICIENCY, ITERATION_OVERHEAD_S, type GpuPreset, type ModelPreset } from '../constants';
import { badArgument } from '../errors';

/** What an iteration computes, summed over its pieces. */
export interface BatchShape {
  /** New tokens computed (sum of c). */
  tokens: number;
  /** Query-key pairs of attention (sum of c*s + c(c+1)/2). */
  attentionPairs: number;
  /** KV tokens read or written (sum of s + c). */
  kvTokens: number;
  /** Sequences that sample a token this iteration (their last piece reaches the end of their tokens). */
  sampled: number;
}

/** Overrides of the constants, for tests and calibration studies. */
export interface CostConstants {
  gemmEfficiency: number;
  attentionEfficiency: number;
  bandwidthEfficiency: number;
  nvlinkEfficiency: number;
  iterationOverheadS: number;
  allreduceLatencyS: number;
}

export const DEFAULT_COST_CONSTANTS: Readonly<CostConstants> = {
  gemmEfficiency: EFFICIENCY.gemm,
  attentionEfficiency: EFFICIENCY.attention,
  bandwidthEfficiency: EFFICIENCY.bandwidth,
  nvlinkEfficiency: EFFICIENCY.nvlink,
  iterationOverheadS: ITERATION_OVERHEAD_S,
  allreduceLatencyS: ALLREDUCE_LATENCY_S,
};

/** Parameter counts of a Llama-architecture model from its config. */
export function parameterCounts(model: ModelPreset): { dense: number; lmHead: number; embedding: number; total: number } {
  const h = model.hiddenSize;
  const q = model.attentionHeads * model.headDim;
  const kv = model.kvHeads * model.headDim;
  const perLayer = h * q + 2 * h * kv + q * h + 3 * h * model.intermediateSize + 2 * h; // QKV, O, MLP, 2 norms
  const dense = model.layers * perLayer + h; // + final norm
  const lmHead = model.vocabSize * h;
  const embedding = model.vocabSize * h;
  return { dense, lmHead, embedding, total: dense + lmHead + embedding };
}

/** KV bytes of one token across all layers (K and V), for the whole model (all TP ranks together). */
export function kvBytesPerToken(model: ModelPreset): number {
  return 2 * model.layers * model.kvHeads * model.headDim * model.dtypeBytes;
}

/** Sum over i in [lo, hi) of a + b*i. */
function linearSum(a: number, b: number, lo: number, hi: number): number {
  const n = hi - lo;
  if (n <= 0) return 0;
  return n * a + (b * n * (hi + lo - 1)) / 2;
}

/** Sum over i in [0, m) of max(a0 + a1*i, b0 + b1*i). */
function sumOfMaxLinear(a0: number, a1: number, b0: number, b1: number, m: number): number {
  if (m <= 0) return 0;
  // d(i) = (a0 - b0) + (a1 - b1) i; the sign changes at most once.
  const d0 = a0 - b0;
  const d1 = a1 - b1;
  if (d1 === 0) return d0 >= 0 ? linearSum(a0, a1, 0, m) : linearSum(b0, b1, 0, m);
  // First integer index where the order flips.
  const cross = Math.min(m, Math.max(0, Math.ceil(-d0 / d1)));
  if (d0 >= 0 && d1 > 0) return linearSum(a0, a1, 0, m);
  if (d0 < 0 && d1 < 0) return linearSum(b0, b1, 0, m);
  if (d1 > 0) return linearSum(b0, b1, 0, cross) + linearSum(a0, a1, cross, m); // b first, then a
  return linearSum(a0, a1, 0, cross) + linearSum(b0, b1, cross, m); // a first, then b
}

export class CostModel {
  readonly model: ModelPreset;
  readonly gpu: GpuPreset;
  readonly tp: number;
  readonly constants: Readonly<CostConstants>;
  /** Bytes of weights streamed per iteration per GPU (dense + LM head; embedding rows are gathers). */
  readonly weightBytesPerGpu: number;
  readonly kvBytesPerTokenPerGpu: number;
  // Per-GPU coefficients, seconds per unit.
  private readonly sPerDenseToken: number;
  private readonly sPerSampled: number;
  private readonly sPerPair: number;
  private readonly sWeights: number;
  private readonly sPerKvToken: number;
  private readonly arFixedS: number;
  private readonly arPerTokenS: number;

  constructor(model: ModelPreset, gpu: GpuPreset, tp = 1, constants: Partial<CostConstants> = {}) {
    if (!Number.isInteger(tp) || tp < 1 || model.kvHeads % tp !== 0 && tp % model.kvHeads !== 0) {
      throw badArgument(`tensor parallelism must be a positive integer that divides or is divided by ${model.kvHeads} KV heads, got ${String(tp)}`);
    }
    this.model = model;
    this.gpu = gpu;
    this.tp = tp;
    this.constants = { ...DEFAULT_COST_CONSTANTS, ...constants };
    const c = this.constants;
    const params = parameterCounts(model);
    const dt = model.dtypeBytes;
    this.weightBytesPerGpu = ((params.dense + params.lmHead) * dt) / tp;
    // KV heads are sharded across ranks; with tp > kvHeads each rank keeps a replica of one head.
    this.kvBytesPerTokenPerGpu = kvBytesPerToken(model) / Math.min(tp, model.kvHeads);
    const flops = gpu.peakBf16FlopsPerS * tp;
    this.sPerDenseToken = (2 * params.dense) / (flops * c.gemmEfficiency);
    this.sPerSampled = (2 * params.lmHead) / (flops * c.gemmEfficiency);
    this.sPerPair = (4 * model.layers * model.attentionHeads * model.headDim) / (flops * c.attentionEfficiency);
    const bw = gpu.hbmBytesPerS * c.bandwidthEfficiency;
    this.sWeights = this.weightBytesPerGpu / bw;
    this.sPerKvToken = this.kvBytesPerTokenPerGpu / bw;
    if (tp > 1) {
      const oneWay = (gpu.nvlinkBytesPerS / 2) * c.nvlinkEfficiency;
      const perAllReduceBytesPerToken = ((2 * (tp - 1)) / tp) * model.hiddenSize * dt;
      this.arFixedS = 2 * model.layers * c.allreduceLatencyS;
      this.arPerTokenS = (2 * model.layers * perAllReduceBytesPerToken) / oneWay;
    } else {
      this.arFixedS = 0;
      this.arPerTokenS = 0;
    }
  }

  /** Compute-bound time of a batch (seconds). */
  computeS(shape: BatchShape): number {
    return shape.tokens * this.sPerDenseToken + shape.sampled * this.sPerSampled + shape.attentionPairs * this.sPerPair;
  }

  /** Memory-bound time of a batch (seconds). */
  memoryS(shape: BatchShape): number {
    return this.sWeights + shape.kvTokens * this.sPerKvToken;
  }

  /** All-reduce time of a batch of `tokens` tokens (0 without tensor parallelism). */
  allReduceS(tokens: number): number {
    return this.tp > 1 ? this.arFixedS + tokens * this.arPerTokenS : 0;
  }

  /** Wall time of one iteration (seconds). An empty batch takes no time. */
  iterationS(shape: BatchShape): number {
    if (shape.tokens <= 0) return 0;
    return Math.max(this.computeS(shape), this.memoryS(shape)) + this.constants.iterationOverheadS + this.allReduceS(shape.tokens);
  }

  /**
   * Total time of `m` consecutive decode iterations of `batch` sequences whose contexts (tokens attended,
   * the new one included) sum to `contextTokens` in the first iteration and grow by `batch` per iteration.
   */
  decodeRunS(batch: number, contextTokens: number, m: number): number {
    if (m <= 0 || batch <= 0) return 0;
    const a0 = batch * (this.sPerDenseToken + this.sPerSampled) + contextTokens * this.sPerPair;
    const a1 = batch * this.sPerPair;
    const b0 = this.sWeights + contextTokens * this.sPerKvToken;
    const b1 = batch * this.sPerKvToken;
    return sumOfMaxLinear(a0, a1, b0, b1, m) + m * (this.constants.iterationOverheadS + this.allReduceS(batch));
  }

  /**
   * How many of those decode iterations (at most `m`) have finished within `elapsedS` of the run's start:
   * the largest k <= m with decodeRunS(batch, contextTokens, k) <= elapsedS.
   */
  decodeItersWithin(batch: number, contextTokens: number, m: number, elapsedS: number): number {
    let lo = 0;
    let hi = m;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (this.decodeRunS(batch, contextTokens, mid) <= elapsedS) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The shape of one sequence computing `c` tokens after `s` cached ones (sampling if `samples`). */
  static piece(s: number, c: number, samples: boolean): BatchShape {
    return { tokens: c, attentionPairs: c * s + (c * (c + 1)) / 2, kvTokens: s + c, sampled: samples ? 1 : 0 };
  }

  /**
   * Time to first token of one request alone on an idle engine: `promptTokens` tokens of which the first
   * `cachedTokens` have KV, computed in chunks of at most `chunkTokens` (chunked prefill), the last chunk
   * sampling the first output token.
   */
  prefillS(promptTokens: number, cachedTokens: number, chunkTokens: number): number {
    let s = cachedTokens;
    let total = 0;
    while (s < promptTokens) {
      const c = Math.min(chunkTokens, promptTokens - s);
      total += this.iterationS(CostModel.piece(s, c, s + c === promptTokens));
      s += c;
    }
    return total;
  }

  /** Time of the decode iterations after the first token: `outputTokens - 1` iterations of one sequence. */
  decodeAloneS(promptTokens: number, outputTokens: number): number {
    return this.decodeRunS(1, promptTokens + 1, outputTokens - 1);
  }
}
