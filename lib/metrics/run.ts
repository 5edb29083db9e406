/**
 * One `saga simulate` run without the command line: a workload on a cluster under each policy, the
 * isolated runs, and the report (what the CLI prints and `npm run results` aggregates).
 */
import { computeMetrics, type PolicyMetrics } from './metrics';
import { buildReport, type SimulationReport } from './report';
import { isolatedTaskTimes, resolveClusterSpec, resolveWorkload, simulate, type SimulationResult } from '../sim/simulate';

export interface SimulationRequest {
  /** swebench | webarena | mixed (generated) or a trace path. */
  readonly workload: string;
  readonly gpus: number;
  readonly model: string;
  readonly gpu: string;
  readonly tp?: number;
  readonly tasks: number;
  readonly ratePerS: number;
  readonly seed: number;
  /** Baseline first. */
  readonly policies: readonly string[];
  readonly slo: number;
}

export interface SimulationOutcome {
  readonly report: SimulationReport;
  /** Per policy label: preemptions over all engines, and calls moved by work stealing. */
  readonly preemptions: Readonly<Record<string, number>>;
  readonly steals: Readonly<Record<string, number>>;
}

export interface RunHooks {
  /** A phase starts (a policy's run, or the isolated runs) over `total` tasks; then progress within it. */
  onPhase?(name: string, total: number): void;
  onProgress?(done: number): void;
}

export const GENERATED_WORKLOADS: readonly string[] = ['swebench', 'webarena', 'mixed'];

export function runSimulation(request: SimulationRequest, hooks: RunHooks = {}): SimulationOutcome {
  const generated = GENERATED_WORKLOADS.includes(request.workload);
  const workload = resolveWorkload(request.workload, generated ? { tasks: request.tasks, ratePerS: request.ratePerS, seed: request.seed } : { tasks: request.tasks });
  const spec = resolveClusterSpec({ model: request.model, gpu: request.gpu, gpus: request.gpus, tp: request.tp, blockSize: workload.blockSize });
  const total = workload.tasks.length;
  const results: SimulationResult[] = [];
  for (const name of request.policies) {
    hooks.onPhase?.(name, total);
    results.push(simulate(workload, spec, name, { onProgress: (done) => hooks.onProgress?.(done) }));
  }
  hooks.onPhase?.('isolated runs', total);
  const isolated = isolatedTaskTimes(workload, spec);
  hooks.onProgress?.(total);
  const belady = results.find((r) => r.policy.name === 'belady');
  const metrics: PolicyMetrics[] = results.map((r) => computeMetrics(r, results[0], isolated, belady, { slo: request.slo }));
  const calls = workload.tasks.reduce((n, t) => n + t.calls.length, 0);
  const report = buildReport(
    {
      workload: workload.name,
      tasks: total,
      calls,
      ratePerS: generated ? request.ratePerS : null,
      seed: request.seed,
      gpus: spec.gpus,
      model: spec.model.name,
      gpu: spec.gpu.name,
      tp: spec.tp,
      engines: spec.engines,
      blockSize: spec.blockSize,
      kvBlocksPerEngine: spec.capacityBlocks,
      maxNumSeqs: spec.maxNumSeqs,
      maxNumBatchedTokens: spec.maxNumBatchedTokens,
      policies: results.map((r) => r.policy.label),
      baseline: results[0].policy.label,
      slo: request.slo,
    },
    metrics,
  );
  const preemptions: Record<string, number> = {};
  const steals: Record<string, number> = {};
  for (const r of results) {
    preemptions[r.policy.label] = r.engines.reduce((n, e) => n + e.preemptions, 0);
    steals[r.policy.label] = r.steals;
  }
  return { report, preemptions, steals };
}
