/**
 * Running a workload on a simulated cluster under a policy bundle.
 *
 * - `resolveClusterSpec`: presets and vLLM's defaults -> engines, KV blocks per engine, batch limits.
 *   KV blocks per engine are vLLM's: (GPU memory x gpu_memory_utilization - weights/tp - reserved) per
 *   GPU, divided by one block's KV bytes on one GPU (a block spans all layers; KV heads split over tp).
 * - `simulate`: one run, raw per-task and per-engine records (lib/metrics turns them into metrics).
 * - `isolatedTaskTimes`: each task alone on an idle engine of the same configuration (its own prefixes
 *   cached as it builds them, nothing else), the denominator of slowdown.
 * - `resolveWorkload`: `swebench` | `webarena` | `mixed` (the generators) or a trace path (the loaders).
 */
import { GPUS, MODELS, TP_DEGREES, VLLM, defaultTensorParallel, type GpuPreset, type ModelPreset } from '../constants';
import { SagaError, badArgument } from '../errors';
import { KvCache } from '../kv/kv_cache';
import type { BackendName } from '../native';
import { createPolicy } from '../policy/index';
import { FcfsQueue, LruEviction } from '../policy/vllm';
import type { PolicyBundle } from '../policy/types';
import { GENERATOR_NAMES, generateWorkload } from '../workloads/generators/index';
import { loadTrace } from '../workloads/loaders/index';
import type { Task, Workload } from '../workloads/types';
import { Cluster, type ClusterOptions, type ClusterResult } from './cluster';
import { CostModel, kvBytesPerToken, parameterCounts } from './cost_model';
import { Engine, type EngineConfig, Request } from './engine';

/** What the user chooses; everything else follows from the presets and vLLM's defaults. */
export interface ClusterSpecInput {
  /** Model preset name (MODELS) or preset. */
  readonly model?: string | ModelPreset;
  /** GPU preset name (GPUS) or preset. */
  readonly gpu?: string | GpuPreset;
  /** GPUs in the cluster (a multiple of tp). */
  readonly gpus?: number;
  /** Tensor parallelism per engine (default: defaultTensorParallel). */
  readonly tp?: number;
  /** Overrides (tests, studies): KV blocks per engine, scheduler limits, block size. */
  readonly capacityBlocks?: number;
  readonly maxNumSeqs?: number;
  readonly maxNumBatchedTokens?: number;
  readonly blockSize?: number;
  readonly backend?: BackendName;
  /** Advance decode in bulk between events (default true; false: one iteration per step, for checks). */
  readonly bulkDecode?: boolean;
}

export interface ClusterSpec {
  readonly model: ModelPreset;
  readonly gpu: GpuPreset;
  readonly gpus: number;
  readonly tp: number;
  readonly engines: number;
  readonly blockSize: number;
  readonly capacityBlocks: number;
  readonly maxNumSeqs: number;
  readonly maxNumBatchedTokens: number;
  /** Bytes of weights per GPU and of KV cache per GPU (what the block count came from). */
  readonly weightBytesPerGpu: number;
  readonly kvCacheBytesPerGpu: number;
  readonly backend: BackendName;
  readonly bulkDecode: boolean;
}

function preset<T>(kind: string, table: Readonly<Record<string, T>>, value: string | T): T {
  if (typeof value !== 'string') return value;
  const key = value.toLowerCase();
  const found = Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
  if (found === undefined) throw badArgument(`unknown ${kind} '${value}' (known: ${Object.keys(table).join(', ')})`);
  return found;
}

function positiveInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw badArgument(`${name} must be a positive integer, got ${String(value)}`);
  return value;
}

export function resolveClusterSpec(input: ClusterSpecInput = {}): ClusterSpec {
  const model = preset('model', MODELS, input.model ?? 'llama-3.1-8b');
  const gpu = preset('GPU', GPUS, input.gpu ?? 'h100');
  const tp = input.tp === undefined ? defaultTensorParallel(model, gpu) : positiveInteger('tp', input.tp);
  if (!(TP_DEGREES as readonly number[]).includes(tp)) throw badArgument(`tp must be one of ${TP_DEGREES.join(', ')}, got ${tp}`);
  const gpus = positiveInteger('gpus', input.gpus ?? tp);
  if (gpus % tp !== 0) throw badArgument(`${gpus} GPUs cannot be split into engines of tp=${tp} GPUs`);
  const blockSize = positiveInteger('blockSize', input.blockSize ?? VLLM.blockSize);
  const params = parameterCounts(model);
  const weightBytesPerGpu = (params.total * model.dtypeBytes) / tp;
  const kvCacheBytesPerGpu = gpu.hbmBytes * VLLM.gpuMemoryUtilization - weightBytesPerGpu - VLLM.reservedBytesPerGpu;
  const blockBytesPerGpu = (blockSize * kvBytesPerToken(model)) / Math.min(tp, model.kvHeads);
  let capacityBlocks = Math.floor(kvCacheBytesPerGpu / blockBytesPerGpu);
  if (input.capacityBlocks !== undefined) capacityBlocks = positiveInteger('capacityBlocks', input.capacityBlocks);
  if (capacityBlocks < 1) {
    throw badArgument(
      `${model.label} does not fit ${gpu.label} at tp=${tp}: ${(weightBytesPerGpu / 1e9).toFixed(1)} GB of weights per GPU leave no KV cache (try a larger --tp)`,
    );
  }
  const large = gpu.hbmBytes >= VLLM.largeGpuBytes && !gpu.name.startsWith('a100');
  const maxNumSeqs = positiveInteger('maxNumSeqs', input.maxNumSeqs ?? (large ? VLLM.maxNumSeqs : VLLM.maxNumSeqsSmallGpu));
  const maxNumBatchedTokens = positiveInteger('maxNumBatchedTokens', input.maxNumBatchedTokens ?? (large ? VLLM.maxNumBatchedTokens : VLLM.maxNumBatchedTokensSmallGpu));
  return {
    model,
    gpu,
    gpus,
    tp,
    engines: gpus / tp,
    blockSize,
    capacityBlocks,
    maxNumSeqs,
    maxNumBatchedTokens,
    weightBytesPerGpu,
    kvCacheBytesPerGpu: Math.max(0, kvCacheBytesPerGpu),
    backend: input.backend ?? 'cpu',
    bulkDecode: input.bulkDecode ?? true,
  };
}

function engineConfig(spec: ClusterSpec): EngineConfig {
  return {
    capacityBlocks: spec.capacityBlocks,
    blockSize: spec.blockSize,
    maxNumSeqs: spec.maxNumSeqs,
    maxNumBatchedTokens: spec.maxNumBatchedTokens,
    bulkDecode: spec.bulkDecode,
  };
}

export function costModelOf(spec: ClusterSpec): CostModel {
  return new CostModel(spec.model, spec.gpu, spec.tp);
}

export interface SimulationResult extends ClusterResult {
  readonly policy: { readonly name: string; readonly label: string; readonly oracle: boolean };
  readonly spec: ClusterSpec;
}

/** Runs `workload` on the cluster `spec` under `policy` (a registry name or a bundle). */
export function simulate(workload: Workload, spec: ClusterSpec, policy: string | PolicyBundle, options: ClusterOptions = {}): SimulationResult {
  const bundle = typeof policy === 'string' ? createPolicy(policy, { workload }) : policy;
  const cluster = new Cluster(
    workload,
    { engines: spec.engines, engine: engineConfig(spec), cost: costModelOf(spec), backend: spec.backend },
    bundle,
    options,
  );
  const result = cluster.run();
  return { ...result, policy: { name: bundle.name, label: bundle.label, oracle: bundle.oracle }, spec };
}

/**
 * Each task's completion time alone on an idle engine of `spec` (FCFS, LRU; its blocks cached as it
 * computes them, the cache emptied between tasks), from its arrival. The same engine code and cost model
 * as the cluster runs. Tasks with no calls take 0.
 */
export function isolatedTaskTimes(workload: Workload, spec: ClusterSpec): Float64Array {
  const out = new Float64Array(workload.tasks.length);
  const kv = new KvCache({ deviceCapacity: spec.capacityBlocks, backend: spec.backend });
  let stepEnd = Infinity;
  let stepVersion = 0;
  let finished: Request | undefined;
  const engine = new Engine(0, kv, engineConfig(spec), costModelOf(spec), new FcfsQueue(), new LruEviction(), {
    scheduleStepEnd: (_e, t, v) => {
      stepEnd = t;
      stepVersion = v;
    },
    onAdmit: () => undefined,
    onFinish: (req) => {
      finished = req;
    },
  });
  workload.tasks.forEach((task: Task, t) => {
    if (task.calls.length === 0) return;
    let now = 0;
    for (let c = 0; c < task.calls.length; c++) {
      const call = task.calls[c];
      const info = {
        taskIndex: t,
        callIndex: c,
        session: t,
        tenant: task.tenant,
        kind: task.kind,
        arrivalS: now,
        promptTokens: call.promptTokens,
        outputTokens: call.outputTokens,
        blockHashes: call.blockHashes,
      };
      finished = undefined;
      stepEnd = Infinity;
      engine.enqueue(new Request(info, task, c, spec.blockSize), now);
      while (finished === undefined) {
        if (stepEnd === Infinity) throw new SagaError(`isolated run of task ${task.id} stalled`, 'ERR_SAGA_INTERNAL');
        now = stepEnd;
        stepEnd = Infinity;
        engine.stepEnded(now, stepVersion);
      }
      if (c + 1 < task.calls.length) now += Math.max(0, call.gapAfterS);
    }
    out[t] = now;
    engine.reset();
  });
  return out;
}

/** Options of a generated workload. */
export interface WorkloadRequest {
  readonly tasks?: number;
  readonly ratePerS?: number;
  readonly seed?: number;
  readonly blockSize?: number;
}

/** `swebench` | `webarena` | `mixed` (generated) or a path to a trace file or directory (loaded). */
export function resolveWorkload(source: string, request: WorkloadRequest = {}): Workload {
  if ((GENERATOR_NAMES as readonly string[]).includes(source)) {
    return generateWorkload(source, { tasks: request.tasks, ratePerS: request.ratePerS, seed: request.seed, blockSize: request.blockSize });
  }
  const workload = loadTrace(source, { blockSize: request.blockSize });
  if (request.tasks !== undefined && request.tasks < workload.tasks.length) {
    return { ...workload, tasks: workload.tasks.slice(0, request.tasks) };
  }
  return workload;
}
