/**
 * Reports of `saga simulate`: the JSON document (`--json FILE`) and the terminal table, plus a progress
 * bar on stderr while a run goes (only when stderr is a terminal).
 *
 * JSON: {config, results:[{policy, tasks, tct:{geomeanS,p50S,p99S}, speedupVsBaseline,
 * slo:{slowdown, attainment}, cache:{hitRate, missRatioVsBelady}, memory:{utilization, occupancy},
 * throughput:{outputTokensPerS}, fairness:{jain}}]}; the baseline is the first policy listed, an oracle's
 * `policy` says it is a bound (`belady (bound)`), numbers that do not exist are null.
 */
import { SingleBar } from 'cli-progress';
import Table from 'cli-table3';
import type { PolicyMetrics } from './metrics';

/** The run's settings as the JSON report records them. */
export interface ReportConfig {
  readonly workload: string;
  readonly tasks: number;
  readonly calls: number;
  readonly ratePerS: number | null;
  readonly seed: number;
  readonly gpus: number;
  readonly model: string;
  readonly gpu: string;
  readonly tp: number;
  readonly engines: number;
  readonly blockSize: number;
  readonly kvBlocksPerEngine: number;
  readonly maxNumSeqs: number;
  readonly maxNumBatchedTokens: number;
  readonly policies: readonly string[];
  readonly baseline: string;
  readonly slo: number;
}

export interface ReportResult {
  policy: string;
  tasks: number;
  tct: { geomeanS: number | null; p50S: number | null; p99S: number | null };
  speedupVsBaseline: number | null;
  slo: { slowdown: number | null; attainment: number | null };
  cache: { hitRate: number | null; missRatioVsBelady: number | null };
  memory: { utilization: number | null; occupancy: number | null };
  throughput: { outputTokensPerS: number | null };
  fairness: { jain: number | null };
}

export interface SimulationReport {
  config: ReportConfig;
  results: ReportResult[];
}

function num(x: number | null | undefined): number | null {
  return x === null || x === undefined || !Number.isFinite(x) ? null : x;
}

/** The JSON report: exactly the documented shape. */
export function buildReport(config: ReportConfig, metrics: readonly PolicyMetrics[]): SimulationReport {
  return {
    config,
    results: metrics.map((m) => ({
      policy: m.policy,
      tasks: m.tasks,
      tct: { geomeanS: num(m.tct.geomeanS), p50S: num(m.tct.p50S), p99S: num(m.tct.p99S) },
      speedupVsBaseline: num(m.speedupVsBaseline),
      slo: { slowdown: num(m.slo.slowdown), attainment: num(m.slo.attainment) },
      cache: { hitRate: num(m.cache.hitRate), missRatioVsBelady: num(m.cache.missRatioVsBelady) },
      memory: { utilization: num(m.memory.utilization), occupancy: num(m.memory.occupancy) },
      throughput: { outputTokensPerS: num(m.throughput.outputTokensPerS) },
      fairness: { jain: num(m.fairness.jain) },
    })),
  };
}

function fixed(x: number | null, digits: number): string {
  return x === null ? '-' : x.toFixed(digits);
}

function percent(x: number | null): string {
  return x === null ? '-' : `${(100 * x).toFixed(1)}%`;
}

/** The results as a terminal table (plain text; no colours, so it reads the same in a log). */
export function renderTable(report: SimulationReport): string {
  const c = report.config;
  const head = [
    'policy',
    'tasks',
    'TCT geomean s',
    'TCT p50 s',
    'TCT p99 s',
    `speedup vs ${c.baseline}`,
    'mean slowdown',
    `SLO<=${c.slo} met`,
    'hit rate',
    'miss / Bélády',
    'mem util',
    'occupancy',
    'out tok/s',
    'Jain',
  ];
  const table = new Table({ head, style: { head: [], border: [] } });
  for (const r of report.results) {
    table.push([
      r.policy,
      String(r.tasks),
      fixed(r.tct.geomeanS, 1),
      fixed(r.tct.p50S, 1),
      fixed(r.tct.p99S, 1),
      r.speedupVsBaseline === null ? '-' : `${r.speedupVsBaseline.toFixed(3)}x`,
      fixed(r.slo.slowdown, 2),
      percent(r.slo.attainment),
      percent(r.cache.hitRate),
      fixed(r.cache.missRatioVsBelady, 3),
      percent(r.memory.utilization),
      percent(r.memory.occupancy),
      fixed(r.throughput.outputTokensPerS, 0),
      fixed(r.fairness.jain, 3),
    ]);
  }
  const lines = [
    `workload ${c.workload}: ${c.tasks} tasks, ${c.calls} calls${c.ratePerS === null ? '' : `, ${c.ratePerS} tasks/s`}, seed ${c.seed}`,
    `cluster  ${c.gpus} x ${c.gpu}, ${c.model}, tp=${c.tp}: ${c.engines} engines of ${c.kvBlocksPerEngine} KV blocks (${c.blockSize} tokens), max ${c.maxNumSeqs} seqs, ${c.maxNumBatchedTokens} tokens/iteration`,
    table.toString(),
  ];
  if (report.results.some((r) => r.policy.includes('(bound)'))) {
    lines.push('(bound): an oracle with the future in hand, reported as a bound, not a policy one can run.');
  }
  return lines.join('\n');
}

/** A progress bar on stderr when it is a terminal; a no-op otherwise. */
export interface Progress {
  start(label: string, total: number): void;
  update(done: number): void;
  stop(): void;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (stream.isTTY !== true) return { start: () => undefined, update: () => undefined, stop: () => undefined };
  let bar: SingleBar | undefined;
  return {
    start(label: string, total: number) {
      bar?.stop();
      bar = new SingleBar({
        stream,
        format: `${label.padEnd(16)} [{bar}] {percentage}% | {value}/{total} tasks | {duration_formatted}`,
        hideCursor: true,
        clearOnComplete: true,
        barsize: 30,
      });
      bar.start(total, 0);
    },
    update(done: number) {
      bar?.update(done);
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}
