/**
 * Hardware and model constants: the one place where numbers about GPUs, models, vLLM's defaults and the
 * cost model's efficiencies live, each with its source next to it. `docs/cost-model.md` explains how the
 * cost model uses them and holds the calibration table (published vLLM measurements vs the simulator).
 *
 * Units are in the names: bytes, FLOP/s, bytes/s, seconds. "GB" in a source is 10^9 bytes.
 */

/** One GPU model. */
export interface GpuPreset {
  /** Name on the command line (`--gpu`). */
  readonly name: string;
  readonly label: string;
  /** Peak dense BF16 tensor-core rate (the datasheet's figure "with sparsity" halved). */
  readonly peakBf16FlopsPerS: number;
  /** GPU memory (HBM). */
  readonly hbmBytes: number;
  /** Peak HBM bandwidth. */
  readonly hbmBytesPerS: number;
  /** NVLink bandwidth per GPU, both directions together. */
  readonly nvlinkBytesPerS: number;
  readonly source: string;
}

/**
 * GPU presets. Sources: NVIDIA's datasheets.
 * - H100 SXM5 80GB: "NVIDIA H100 Tensor Core GPU" datasheet (nvidia.com/en-us/data-center/h100): BF16 Tensor
 *   Core 1,979 TFLOPS (with sparsity) -> 989.5 dense; GPU memory 80 GB; bandwidth 3.35 TB/s; NVLink 900 GB/s.
 * - H200 SXM 141GB: "NVIDIA H200 Tensor Core GPU" datasheet (nvidia.com/en-us/data-center/h200): BF16 Tensor
 *   Core 1,979 TFLOPS (with sparsity) -> 989.5 dense; GPU memory 141 GB; bandwidth 4.8 TB/s; NVLink 900 GB/s.
 * - A100 SXM4 40GB: "NVIDIA A100 Tensor Core GPU" datasheet (nvidia.com/en-us/data-center/a100): BF16 Tensor
 *   Core 312 TFLOPS dense; GPU memory 40 GB HBM2; bandwidth 1,555 GB/s; NVLink 600 GB/s. Kept because one
 *   published vLLM decode measurement we calibrate against ran on it.
 * - A100 SXM4 80GB: same datasheet: BF16 Tensor Core 312 TFLOPS dense; GPU memory 80 GB HBM2e; bandwidth
 *   2,039 GB/s; NVLink 600 GB/s. Kept because the published single-request vLLM prefill measurement we
 *   calibrate against (AccelMark suite D, docs/cost-model.md) ran on it.
 */
export const GPUS: Readonly<Record<string, GpuPreset>> = {
  h100: {
    name: 'h100',
    label: 'H100 SXM 80GB',
    peakBf16FlopsPerS: 989.5e12,
    hbmBytes: 80e9,
    hbmBytesPerS: 3.35e12,
    nvlinkBytesPerS: 900e9,
    source: 'NVIDIA H100 Tensor Core GPU datasheet (SXM5): 1,979 TFLOPS BF16 with sparsity, 80 GB, 3.35 TB/s, NVLink 900 GB/s',
  },
  h200: {
    name: 'h200',
    label: 'H200 SXM 141GB',
    peakBf16FlopsPerS: 989.5e12,
    hbmBytes: 141e9,
    hbmBytesPerS: 4.8e12,
    nvlinkBytesPerS: 900e9,
    source: 'NVIDIA H200 Tensor Core GPU datasheet (SXM): 1,979 TFLOPS BF16 with sparsity, 141 GB, 4.8 TB/s, NVLink 900 GB/s',
  },
  'a100-40gb': {
    name: 'a100-40gb',
    label: 'A100 SXM4 40GB',
    peakBf16FlopsPerS: 312e12,
    hbmBytes: 40e9,
    hbmBytesPerS: 1.555e12,
    nvlinkBytesPerS: 600e9,
    source: 'NVIDIA A100 Tensor Core GPU datasheet (SXM4 40GB): 312 TFLOPS BF16 dense, 40 GB HBM2, 1,555 GB/s, NVLink 600 GB/s',
  },
  'a100-80gb': {
    name: 'a100-80gb',
    label: 'A100 SXM4 80GB',
    peakBf16FlopsPerS: 312e12,
    hbmBytes: 80e9,
    hbmBytesPerS: 2.039e12,
    nvlinkBytesPerS: 600e9,
    source: 'NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB): 312 TFLOPS BF16 dense, 80 GB HBM2e, 2,039 GB/s, NVLink 600 GB/s',
  },
};

/** One model: a Llama-architecture decoder (GQA attention, SwiGLU MLP, untied embeddings). */
export interface ModelPreset {
  /** Name on the command line (`--model`). */
  readonly name: string;
  readonly label: string;
  readonly layers: number;
  readonly hiddenSize: number;
  readonly attentionHeads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly intermediateSize: number;
  readonly vocabSize: number;
  /** Parameters as the model card states them (checked against the count from the config in tests). */
  readonly parameters: number;
  /** Bytes per weight and per KV element: BF16. */
  readonly dtypeBytes: number;
  readonly source: string;
}

/**
 * Model presets. Sources: each model's `config.json` on Hugging Face (meta-llama/Llama-3.1-8B and
 * meta-llama/Llama-3.1-70B) and the model cards (parameter counts; the safetensors totals
 * 8,030,261,248 and 70,553,706,496). head_dim = hidden_size / num_attention_heads = 128 for both.
 */
export const MODELS: Readonly<Record<string, ModelPreset>> = {
  'llama-3.1-8b': {
    name: 'llama-3.1-8b',
    label: 'Llama-3.1-8B',
    layers: 32,
    hiddenSize: 4096,
    attentionHeads: 32,
    kvHeads: 8,
    headDim: 128,
    intermediateSize: 14336,
    vocabSize: 128256,
    parameters: 8_030_261_248,
    dtypeBytes: 2,
    source: 'meta-llama/Llama-3.1-8B config.json: 32 layers, hidden 4096, 32 heads, 8 KV heads, intermediate 14336, vocab 128256; 8.03B parameters',
  },
  'llama-3.1-70b': {
    name: 'llama-3.1-70b',
    label: 'Llama-3.1-70B',
    layers: 80,
    hiddenSize: 8192,
    attentionHeads: 64,
    kvHeads: 8,
    headDim: 128,
    intermediateSize: 28672,
    vocabSize: 128256,
    parameters: 70_553_706_496,
    dtypeBytes: 2,
    source: 'meta-llama/Llama-3.1-70B config.json: 80 layers, hidden 8192, 64 heads, 8 KV heads, intermediate 28672, vocab 128256; 70.6B parameters',
  },
};

/**
 * Achieved fractions of peak. These are the cost model's free constants; `docs/cost-model.md` gives the
 * calibration against published vLLM measurements (decode) and says which ones could not be calibrated.
 */
export const EFFICIENCY = {
  /**
   * Fraction of peak BF16 rate reached by the dense layers (QKV/O projections, MLP, LM head) of a batch.
   * Bounded above by the matrix rate measured on an H200 here: 769-798 TFLOP/s for an 8192^3 BF16 product
   * (0.78-0.81 of 989.5; /work/.library/device/KINDS.md). 0.6 is an assumption, checked (not fitted)
   * together with `attention` against the one published single-request vLLM prefill found: AccelMark suite D
   * (Llama-3.1-8B, A100 80GB, vLLM 0.6.6, ~32.7k-token prompts one at a time), TTFT p50 3.86 s against
   * 4.27 s simulated, +10.6% (docs/cost-model.md). None was found on H100/H200.
   */
  gemm: 0.6,
  /**
   * Fraction of peak reached by attention's QK^T and PV products (FlashAttention on Hopper). Upper bound:
   * FlashAttention-3 (Shah et al., 2024, arXiv:2407.08608) reports up to 740 TFLOP/s in FP16 forward on
   * H100 (75% of peak) at long sequences; vLLM's shorter, paged, mixed batches reach less. Assumption: 0.5,
   * checked with `gemm` against the published long-context prefill above (attention is 42% of its simulated
   * time; 0.6 would bring its error from +10.6% to +3%; one row cannot separate the two efficiencies).
   */
  attention: 0.5,
  /**
   * Fraction of peak HBM bandwidth reached while streaming weights and KV (decode). The copy bandwidth
   * measured on an H200 here is 4.3 TB/s of 4.8 (0.90; KINDS.md); 0.80 is calibrated against vLLM's
   * published decode latencies (docs/cost-model.md).
   */
  bandwidth: 0.8,
  /**
   * Fraction of NVLink bandwidth (one direction = half the datasheet figure) reached by a ring all-reduce
   * (NCCL's bus bandwidth on NVSwitch H100/H200 systems is typically 70-80% of it; assumption 0.75).
   */
  nvlink: 0.75,
} as const;

/**
 * Fixed cost of one engine iteration (scheduler, input preparation, kernel launches, sampling), seconds.
 * Calibrated with EFFICIENCY.bandwidth against vLLM's published decode latencies (docs/cost-model.md).
 */
export const ITERATION_OVERHEAD_S = 2e-3;

/**
 * Latency of one all-reduce between tensor-parallel GPUs (two per layer), seconds. Calibrated against the
 * Llama-70B TP=4 decode latency of vLLM's benchmark (docs/cost-model.md).
 */
export const ALLREDUCE_LATENCY_S = 25e-6;

/** vLLM's engine defaults, with where they come from. */
export const VLLM = {
  /** `gpu_memory_utilization` default 0.9 (vLLM engine arguments / CacheConfig). */
  gpuMemoryUtilization: 0.9,
  /** `block_size` default 16 tokens on CUDA (vLLM CacheConfig). */
  blockSize: 16,
  /**
   * `max_num_batched_tokens` for the OpenAI-compatible server on GPUs with >= 70 GiB that are not A100s
   * (H100, H200): 8192, with chunked prefill always on in the V1 engine (vllm/engine/arg_utils.py,
   * EngineArgs.get_batch_defaults: `default_max_num_batched_tokens = {LLM_CLASS: 16384,
   * OPENAI_API_SERVER: 8192}`). Other GPUs: 2048.
   */
  maxNumBatchedTokens: 8192,
  maxNumBatchedTokensSmallGpu: 2048,
  /**
   * `max_num_seqs` in the same function: 1024 on those GPUs in current vLLM (`default_max_num_seqs =
   * {LLM_CLASS: 1024, OPENAI_API_SERVER: 1024}`), 256 on other GPUs and in earlier releases.
   */
  maxNumSeqs: 1024,
  maxNumSeqsSmallGpu: 256,
  /** The large defaults apply from this much GPU memory up (`device_memory >= 70 * GiB_bytes`). */
  largeGpuBytes: 70 * 2 ** 30,
  /**
   * Memory vLLM keeps out of the KV cache besides the weights: the activation peak of its startup profile
   * run (a forward pass of max_num_batched_tokens tokens), CUDA graphs and non-torch allocations (NCCL,
   * cuBLAS workspaces). An estimate (1-4 GiB is what vLLM's startup logs show for 8B-70B models), not a
   * calibrated figure: 2.5 GB per GPU.
   */
  reservedBytesPerGpu: 2.5e9,
} as const;

/** Tensor-parallel degrees the simulator accepts (vLLM needs the KV heads to divide evenly). */
export const TP_DEGREES = [1, 2, 4, 8] as const;

/**
 * Default tensor parallelism for a model on a GPU: the smallest degree at which the weights take at most
 * 60% of the memory vLLM may use, leaving the rest for activations and KV (Llama-3.1-8B: 1 everywhere;
 * Llama-3.1-70B: 4 on H100, 2 on H200).
 */
export function defaultTensorParallel(model: ModelPreset, gpu: GpuPreset): number {
  const usable = gpu.hbmBytes * VLLM.gpuMemoryUtilization;
  for (const tp of TP_DEGREES) {
    if ((model.parameters * model.dtypeBytes) / tp <= 0.6 * usable) return tp;
  }
  return TP_DEGREES[TP_DEGREES.length - 1];
}

/**
 * The Agent Execution Graph's learning constants (lib/graph). Priors are what the graph predicts before
 * it has seen a step; they are replaced as evidence arrives (docs/aeg.md).
 * - Relative accuracy of the gap sketches: DDSketch's guarantee (Masson et al., VLDB 2019): every
 *   quantile within 2% of the true value, in ~2 KB per sketch for gaps from milliseconds to hours.
 * - MIN_EVIDENCE: a step state's own statistics are used once it has this many observed outcomes; below,
 *   the graph backs off to a coarser state (same stop reason and tool, any call index; then the kind;
 *   then every program). 8 keeps a Beta(1,1)-smoothed probability within ~0.15 of its value.
 * - Prior gap: 10 s, the middle of the tool times of coding and browser agents (SWE-bench runs of tests and
 *   shell commands take seconds to a minute, browser actions a few seconds: lib/workloads/generators/
 *   parameters.ts cites the sources). Prior next-call probability 0.5, worth 2 observations (uninformed).
 * - Prior reuse: the next call reads the whole previous context (chat-style agents append), worth 2
 *   observations.
 * - Shared prefixes are learned from the last SHARED_PREFIX_WINDOW first calls of a kind (median of their
 *   common prefix with the one before).
 */
export const AEG = {
  sketchRelativeAccuracy: 0.02,
  minEvidence: 8,
  priorGapS: 10,
  priorNextCallProbability: 0.5,
  priorReuseRatio: 1,
  priorWeight: 2,
  sharedPrefixWindow: 8,
  /**
   * Output tokens expected of a call before any has finished: 512, the order of agents' outputs (the
   * Claude Code sessions in ../shared/data/traces write 169-776 tokens a call in their first session).
   */
  priorOutputTokens: 512,
  /**
   * The gap-per-output-token fit (lib/graph/gap_slope.ts): Theil-Sen over the last 64 (output, gap) pairs
   * of a workflow kind, refitted every 8 (2,016 pairwise slopes and a selection of their median: ~45 us a fit,
   * ~6 us an arrival amortised, on the 2-core machine of bench/RESULTS.md). 64 pairs hold a few programs' worth
   * of steps, so the fit follows a kind as it drifts; a window of 32 (13 us a fit) did no better on the traces.
   */
  slopeWindow: 64,
  slopeRefitEvery: 8,
  /**
   * A session's pace (the AEG's finest node: the order of magnitude of its gaps) is a geometric running
   * mean with this weight on the newest gap: one gap alone is a noisy pace. On the Claude Code traces,
   * 0.5 against the last gap alone (weight 1): saga's misses / Bélády's fell at 2% and 5% capacity on four
   * of five spreads of the starts (5%, seed 1: 1.339 -> 1.329), level at 10% (docs/aeg.md).
   */
  paceNewestWeight: 0.5,
} as const;

/**
 * Routing constants (lib/policy's routing policies and the simulator's stealing ticks).
 * - stealIntervalS: how often idle engines look for work to steal. Cluster routers poll engine load on
 *   this order: SGLang's router and vLLM's production stack refresh load every few hundred ms.
 * - newSessionSlack: a new session may go to an engine homing at most this many more live sessions than
 *   the least loaded (the load bound of session-affinity routing; see lib/policy/vllm.ts).
 * - arrivalRateTimeConstantS: the memory of an engine's recent arrival rate (lib/util/arrival_rate.ts), which
 *   prices the calls that will arrive on a thief while it recomputes a moved context: ten seconds holds
 *   several calls of each live agent (tool gaps are seconds) and forgets a burst within a minute.
 */
export const ROUTING = {
  stealIntervalS: 0.5,
  newSessionSlack: 1,
  arrivalRateTimeConstantS: 10,
} as const;

/**
 * Fair-share placement (lib/policy/fair_share_placement.ts), which keeps a tenant that floods the fleet off
 * the other tenants' engines:
 * - floodFactor: a tenant over its max-min share of the fleet's KV floods when it opens sessions more than
 *   this many times as fast as the other live tenants on average. On `mixed` the largest tenant (coding-0)
 *   opens about 2.4 times as many as the other two (task shares 1 : 0.5 : 0.333) and must keep sharing the
 *   fleet; bench/flood_scenario.ts's flood opens about 10 times as many as the three at their default load.
 *   5 sits between, with room for the noise of an estimate over a couple of minutes.
 * - rateMemoryS: the memory of those rates (lib/util/arrival_rate.ts): two minutes holds tens of sessions
 *   of a tenant at the simulator's default load, and follows a flood within its first minutes.
 * - protectedFill: the share of each protected engine's KV that the protected tenants' demand is sized to
 *   fill. A memory-bound decode step reads its batch's whole context (on an H100 with Llama-3.1-8B a full KV
 *   is 3.3x the weights), so engines packed full slow every call on them; the rest absorbs the contexts'
 *   growth between routing decisions. Measured on the flood scenario's light load (docs/fairness.md): with
 *   no headroom (1) the other tenants met the SLO on 94-96% of tasks on 64 GPUs (seeds 1-3); 0.75 gave
 *   97.4%, 100% and 98.4%; 0.6 gave 100%, 99.7% and 99.7%, and 100% on 8 GPUs (seeds 1-3), where the
 *   flood's mean slowdown rose from about 25 to about 32: what the headroom costs it.
 */
export const FAIR_PLACEMENT = {
  floodFactor: 5,
  rateMemoryS: 120,
  protectedFill: 0.6,
} as const;

/**
 * What `saga serve` learns of each engine from its answers (lib/router/engine_rates.ts), to price a moved
 * call's recompute in the stealing test:
 * - decay: each answer's weight in the running sums is multiplied by this at every later answer (~100
 *   answers' memory), so that the estimates follow an engine whose load or model changes.
 * - priorTokens: the weight, in prompt tokens, of GATEWAY.charsPerToken as the starting characters per
 *   token (a few calls' worth: the engine's own counts take over within a handful of answers).
 * - priorCalls, priorUncachedTokens: the weight of the config's prefillTokensPerS in the prefill fit, as
 *   that many calls of that many uncached tokens; ridgeConstant and ridgeCompletion: weak pulls of the fit's
 *   constant and per-completion-token terms towards 0 (calls' worth of 1 and of ~30 tokens), so that the
 *   fit is defined from its first answer.
 * - priorCompletionTokens: the completion tokens an engine's answers are expected to have before any has
 *   come (weight one answer): an agent step's output is typically a tool call or a short reply, a few
 *   hundred tokens; the engine's own answers replace it within a few calls.
 */
export const ENGINE_RATES = {
  decay: 0.99,
  priorTokens: 512,
  priorCalls: 2,
  priorUncachedTokens: 1000,
  ridgeConstant: 1,
  ridgeCompletion: 1000,
  priorCompletionTokens: 256,
} as const;

/**
 * Retry-After (seconds) of the 503 `shutting_down` that `saga engine` and `saga serve` answer to a request
 * arriving while they drain: a client's retry then finds the restarted process or another replica; the same
 * second as the gateway's default Retry-After for overload (GATEWAY.retryAfterS).
 */
export const SHUTDOWN_RETRY_AFTER_S = 1;

/**
 * `saga serve`, the gateway (lib/router): defaults of its config file and the rules it estimates by.
 * - charsPerToken: the gateway sees text, not tokens; ~4 characters of English text a token is OpenAI's
 *   rule of thumb (help.openai.com, "What are tokens and how to count them?"), close for code as well.
 * - blockChars: prompts are cut into blocks of this many characters for prefix hashes: 64 characters,
 *   16 tokens at the rule above, vLLM's default block size.
 * - blockRecordPerEngine: block hashes remembered per engine (an LRU); 65,536 blocks of 16 tokens is ~1M
 *   tokens, the order of an H100's KV cache for an 8B model (lib/sim's cost model), at ~8 MB of memory.
 * - prefillTokensPerS: an engine's prefill rate for the stealing test (recompute cost of a moved call) when
 *   its config gives none: 10,000 tokens/s, the order of Llama-3.1-8B's prefill on one H100.
 * - probeIntervalMs: how often a down engine is probed (GET /v1/models); probeTimeoutMs its limit.
 * - maxAttempts: engines one call may be tried on (retries happen only before its first byte went out).
 * - sessionIdleS: a session with no call for this long is forgotten (nothing marks a program's end).
 * - the rest: the config file's defaults (README, `saga serve`).
 */
export const GATEWAY = {
  charsPerToken: 4,
  blockChars: 64,
  blockRecordPerEngine: 65536,
  prefillTokensPerS: 10000,
  probeIntervalMs: 1000,
  probeTimeoutMs: 1000,
  maxAttempts: 3,
  sessionIdleS: 1800,
  host: '127.0.0.1',
  port: 8080,
  policy: 'saga',
  maxQueuedPerEngine: 64,
  retryAfterS: 1,
  connectMs: 2000,
  firstByteMs: 60000,
  requestMs: 600000,
  maxBodyBytes: 1048576,
  tenantWeight: 1,
} as const;
