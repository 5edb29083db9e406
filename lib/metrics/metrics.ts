/**
 * The metrics of DESIGN.md, with those names, computed from a simulation's raw records.
 *
 * - TCT: task completion time, the task's arrival to the end of its last call's output.
 * - Isolated TCT: the task alone on an idle engine with its own prefixes cached (sim/simulate.ts
 *   isolatedTaskTimes: the same engine and cost model); slowdown = TCT / isolated TCT.
 * - Speedup vs baseline: geometric mean over tasks of TCT(baseline) / TCT(policy), same workload.
 * - SLO attainment: share of tasks whose slowdown is at most the SLO (default 2.0, per tenant if given).
 * - Hit rate: cached prompt tokens / prompt tokens (at each call's first admission).
 * - Miss ratio vs Bélády: missed prompt tokens / missed prompt tokens under the belady oracle on the same
 *   workload and cluster (null when belady did not run).
 * - Memory utilization: time-average share of KV blocks holding data that is read again before it leaves
 *   the GPU: blocks in use by a running request (read every iteration) plus cached blocks over the time
 *   from their release to a later hit; next to occupancy, the time-average share holding any data.
 * - Throughput: output tokens per second over the run (first arrival at 0 to the last call's end).
 * - Fairness: Jain's index over tenants' mean slowdown (1 = equal).
 */
import type { SimulationResult } from '../sim/simulate';

export const DEFAULT_SLO = 2.0;

/** Geometric mean of positive numbers (NaN for none). */
export function geomean(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(v > 0)) return NaN;
    sum += Math.log(v);
  }
  return Math.exp(sum / values.length);
}

export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  return sum / values.length;
}

/** The q-quantile (0..1) by linear interpolation between order statistics (NaN for none). */
export function quantile(values: ArrayLike<number>, q: number): number {
  const n = values.length;
  if (n === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const pos = Math.min(1, Math.max(0, q)) * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** Jain's fairness index (sum x)^2 / (n sum x^2): 1 when all equal, 1/n when one takes all. */
export function jainIndex(values: ArrayLike<number>): number {
  const n = values.length;
  if (n === 0) return NaN;
  let sum = 0;
  let squares = 0;
  for (let i = 0; i < n; i++) {
    sum += values[i];
    squares += values[i] * values[i];
  }
  return squares === 0 ? 1 : (sum * sum) / (n * squares);
}

/** Share of slowdowns at most their SLO (`slo` for all, or per tenant with `defaultSlo` for the rest). */
export function sloAttainment(slowdowns: ArrayLike<number>, tenants: readonly string[], slo: number | Readonly<Record<string, number>> = DEFAULT_SLO, defaultSlo = DEFAULT_SLO): number {
  const n = slowdowns.length;
  if (n === 0) return NaN;
  let met = 0;
  for (let i = 0; i < n; i++) {
    const target = typeof slo === 'number' ? slo : (slo[tenants[i]] ?? defaultSlo);
    if (slowdowns[i] <= target) met++;
  }
  return met / n;
}

/** Geometric mean over tasks of baseline / policy (task arrays in the same order). */
export function speedup(baselineTct: ArrayLike<number>, policyTct: ArrayLike<number>): number {
  if (baselineTct.length !== policyTct.length) throw new RangeError('speedup needs the same tasks in both runs');
  const ratios = new Float64Array(baselineTct.length);
  for (let i = 0; i < ratios.length; i++) ratios[i] = baselineTct[i] / policyTct[i];
  return geomean(ratios);
}

/** One policy's metrics, in the shape of the JSON report's `results[]` entries. */
export interface PolicyMetrics {
  policy: string;
  oracle: boolean;
  tasks: number;
  tct: { geomeanS: number; p50S: number; p99S: number };
  speedupVsBaseline: number;
  slo: { slowdown: number; attainment: number };
  cache: { hitRate: number; missRatioVsBelady: number | null };
  memory: { utilization: number; occupancy: number };
  throughput: { outputTokensPerS: number };
  fairness: { jain: number };
}

export interface MetricsOptions {
  /** SLO on slowdown: one number, or per tenant (others get DEFAULT_SLO). */
  readonly slo?: number | Readonly<Record<string, number>>;
}

/** Completion times of a run's tasks, in workload order (tasks with no calls are skipped by callers). */
export function taskTimes(result: SimulationResult): Float64Array {
  return Float64Array.from(result.tasks, (t) => t.endS - t.arrivalS);
}

function missedTokens(result: SimulationResult): number {
  let missed = 0;
  for (const t of result.tasks) missed += t.promptTokens - t.cachedTokens;
  return missed;
}

/**
 * Metrics of `result`, with `baseline` (the first policy listed; itself for the first), the isolated
 * times of the same workload and, when it ran, the belady run of the same workload and cluster.
 */
export function computeMetrics(result: SimulationResult, baseline: SimulationResult, isolatedS: ArrayLike<number>, belady: SimulationResult | undefined, options: MetricsOptions = {}): PolicyMetrics {
  const included: number[] = [];
  result.tasks.forEach((t, i) => {
    if (t.calls > 0) included.push(i);
  });
  const tct = Float64Array.from(included, (i) => result.tasks[i].endS - result.tasks[i].arrivalS);
  const baseTct = Float64Array.from(included, (i) => baseline.tasks[i].endS - baseline.tasks[i].arrivalS);
  const slowdown = Float64Array.from(included, (i, j) => tct[j] / isolatedS[i]);
  const tenants = included.map((i) => result.tasks[i].tenant);

  let prompt = 0;
  let cached = 0;
  let output = 0;
  for (const t of result.tasks) {
    prompt += t.promptTokens;
    cached += t.cachedTokens;
    output += t.outputTokens;
  }
  let missRatio: number | null = null;
  if (belady !== undefined) {
    const mine = missedTokens(result);
    const bound = missedTokens(belady);
    missRatio = bound > 0 ? mine / bound : mine === 0 ? 1 : null;
  }

  const horizon = result.makespanS;
  let capacityTime = 0;
  let occupied = 0;
  let useful = 0;
  for (const e of result.engines) {
    capacityTime += e.capacityBlocks * horizon;
    occupied += e.occupiedBlockS;
    useful += e.referencedBlockS + e.hitCachedBlockS;
  }

  const byTenant = new Map<string, { sum: number; n: number }>();
  tenants.forEach((tenant, j) => {
    const entry = byTenant.get(tenant) ?? { sum: 0, n: 0 };
    entry.sum += slowdown[j];
    entry.n++;
    byTenant.set(tenant, entry);
  });
  const tenantMeans = Array.from(byTenant.values(), (e) => e.sum / e.n);

  return {
    policy: result.policy.label,
    oracle: result.policy.oracle,
    tasks: included.length,
    tct: { geomeanS: geomean(tct), p50S: quantile(tct, 0.5), p99S: quantile(tct, 0.99) },
    speedupVsBaseline: speedup(baseTct, tct),
    slo: { slowdown: mean(slowdown), attainment: sloAttainment(slowdown, tenants, options.slo ?? DEFAULT_SLO) },
    cache: { hitRate: prompt > 0 ? cached / prompt : NaN, missRatioVsBelady: missRatio },
    memory: { utilization: capacityTime > 0 ? useful / capacityTime : NaN, occupancy: capacityTime > 0 ? occupied / capacityTime : NaN },
    throughput: { outputTokensPerS: horizon > 0 ? output / horizon : NaN },
    fairness: { jain: jainIndex(tenantMeans) },
  };
}
