/**
 * The `saga` command. Subcommands arrive with their issues; `info` reports the native backend, `replay`
 * replays a trace's blocks under eviction policies (lib/replay/command.ts), `simulate` runs a workload on
 * a simulated cluster under policy bundles (lib/sim, lib/metrics), `model create` and `engine` serve a
 * real model under a policy (lib/engine/command.ts), `serve` is the gateway in front of engines (lib/router).
 */
import { Command, CommanderError } from 'commander';
import { nativeBackend } from './native';
import { KvCache } from './kv';
import { addReplayCommand } from './replay/command';
import { addEngineCommands } from './engine/command';
import { addServeCommand } from './router/command';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GPUS, MODELS } from './constants';
import { badArgument } from './errors';
import { DEFAULT_SLO } from './metrics/metrics';
import { createProgress, renderTable } from './metrics/report';
import { runSimulation } from './metrics/run';
import { parsePolicyList, policyNames } from './policy/index';
import { resolveClusterSpec } from './sim/simulate';
import { cliInteger, cliPositive } from './util/cli_numbers';

function info(json: boolean): void {
  const native = nativeBackend();
  const probe = native.addon.probeCuda();
  const report = {
    backend: native.backend,
    reason: native.reason,
    addon: native.file,
    cuda: probe,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
  if (json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  // A tiny pool round-trip proves the addon works, not just that it loaded.
  const kv = new KvCache({ deviceCapacity: 16 });
  const ids = new Int32Array(4);
  kv.allocate(new BigUint64Array([1n, 2n, 3n, 4n]), new Int32Array(4), new Int32Array([0, 1, 2, 3]), ids);
  kv.release(ids, new Float64Array(4));
  const hit = kv.lookup(new BigUint64Array([1n, 2n, 3n, 4n]), new Int32Array(4));
  console.log(`backend   ${report.backend} (${report.reason})`);
  console.log(`addon     ${report.addon}`);
  // The loaded addon's own probe says little when the CPU build was loaded: the choice's reason says why.
  console.log(`cuda      ${probe.available ? `${probe.devices} device(s), ${probe.deviceName}` : `unavailable: ${native.backend === 'cpu' ? native.reason : probe.reason}`}`);
  console.log(`self-test ${hit === 4 ? 'ok' : `FAILED (lookup found ${hit} of 4 blocks)`}`);
}

// ---- saga simulate ----

/** Defaults of `saga simulate`: a memory-bound cluster (KV blocks ~95% held, preemptions) that runs in seconds. */
const SIMULATE_DEFAULTS = { workload: 'mixed', gpus: '8', model: 'llama-3.1-8b', gpu: 'h100', tasks: '200', rate: '0.25', policies: 'vllm,saga,belady', seed: '1', slo: String(DEFAULT_SLO) };

interface SimulateCliOptions {
  workload: string;
  gpus: string;
  model: string;
  gpu: string;
  tp?: string;
  tasks: string;
  rate: string;
  policies: string;
  seed: string;
  slo: string;
  json?: string;
}

function simulateCommand(opts: SimulateCliOptions): void {
  // Everything typed is checked before any work starts.
  const policies = parsePolicyList(opts.policies);
  const gpus = cliInteger('--gpus', opts.gpus, 1);
  const tasks = cliInteger('--tasks', opts.tasks, 1);
  const ratePerS = cliPositive('--rate', opts.rate);
  const seed = cliInteger('--seed', opts.seed);
  const slo = cliPositive('--slo', opts.slo);
  const tp = opts.tp === undefined ? undefined : cliInteger('--tp', opts.tp, 1);
  resolveClusterSpec({ model: opts.model, gpu: opts.gpu, gpus, tp }); // model, GPU, tp and fit
  if (opts.json !== undefined && opts.json !== '-') {
    const dir = path.dirname(path.resolve(opts.json));
    if (opts.json.trim() === '' || !fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw badArgument(`--json ${opts.json}: no directory ${dir} to write it in`);
  }

  const progress = createProgress();
  try {
    const { report, preemptions: byPolicy } = runSimulation(
      { workload: opts.workload, gpus, model: opts.model, gpu: opts.gpu, tp, tasks, ratePerS, seed, policies, slo },
      { onPhase: (name, total) => progress.start(name, total), onProgress: (done) => progress.update(done) },
    );
    progress.stop();
    const preemptions = Object.entries(byPolicy)
      .map(([label, n]) => `${label} ${n}`)
      .join(', ');
    const json = `${JSON.stringify(report, null, 2)}\n`;
    if (opts.json === '-') {
      process.stdout.write(json);
      return;
    }
    console.log(renderTable(report));
    console.log(`preemptions: ${preemptions}`);
    if (opts.json !== undefined) {
      try {
        fs.writeFileSync(opts.json, json);
      } catch (err) {
        throw badArgument(`cannot write --json ${opts.json}: ${(err as Error).message}`);
      }
    }
  } finally {
    progress.stop();
  }
}

function addSimulateCommand(program: Command): void {
  const d = SIMULATE_DEFAULTS;
  program
    .command('simulate')
    .description(
      'simulate a cluster of vLLM-like engines serving an agent workload, under each policy, and report task ' +
        'completion times, slowdown, SLO attainment, cache hit rate, memory use, throughput and fairness ' +
        '(the first policy listed is the baseline; belady is an oracle, reported as a bound)',
    )
    .option('--workload <name|PATH>', 'swebench, webarena or mixed (generated), or a trace file/directory (Claude Code, Mooncake, SAGA JSONL)', d.workload)
    .option('--gpus <N>', 'GPUs in the cluster; engines = GPUs / tp', d.gpus)
    .option('--model <M>', `model preset: ${Object.keys(MODELS).join(', ')}`, d.model)
    .option('--gpu <G>', `GPU preset: ${Object.keys(GPUS).join(', ')}`, d.gpu)
    .option('--tp <N>', 'tensor parallelism per engine: 1, 2, 4 or 8 (default: the smallest that fits the model comfortably)')
    .option('--tasks <N>', 'agent tasks to generate (for a trace: use at most the first N)', d.tasks)
    .option('--rate <TASKS_PER_S>', 'task arrival rate, Poisson (generated workloads only)', d.rate)
    .option('--policies <list>', `comma-separated, baseline first: ${policyNames().join(', ')}`, d.policies)
    .option('--seed <S>', 'seed of the generated workload (same seed, same numbers)', d.seed)
    .option('--slo <X>', 'SLO on slowdown (TCT / isolated TCT) for attainment', d.slo)
    .option('--json <FILE>', 'also write the results as JSON to FILE (- for stdout instead of the table)')
    .showHelpAfterError('(saga simulate --help lists the options)')
    .action((opts: SimulateCliOptions) => simulateCommand(opts));
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('saga')
    .description('Program-level scheduling for LLM agent workloads')
    .exitOverride()
    .showHelpAfterError();
  program
    .command('info')
    .description('show which native backend (cpu or cuda) is in use and why')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => info(opts.json === true));
  addReplayCommand(program);
  addSimulateCommand(program);
  addEngineCommands(program);
  addServeCommand(program);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    throw err;
  }
}
