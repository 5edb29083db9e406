/**
 * Scenario bench of the cluster simulator: 64 H200s serving Llama-3.1-8B (64 engines) for one hour of
 * the `mixed` workload's arrivals, under the vllm bundle. Reports the wall time and simulated calls per
 * wall second (the figure to watch), with iterations per wall second and how many iterations each
 * engine step advanced on average (bulk decode).
 *
 *   npx tsx bench/simulate.ts                 the bench (rate 1 task/s: 3,600 tasks, ~120k calls)
 *   npx tsx bench/simulate.ts --rate 0.5      another load (tasks = rate x hours x 3600)
 *   npx tsx bench/simulate.ts --hours 0.25 --gpus 16 --policy belady
 *   npx tsx bench/simulate.ts --compare       also time a 5-minute slice with bulk decode off (the
 *                                             baseline: one iteration per step) and print the ratio
 *   npx tsx bench/simulate.ts --json          the figures as JSON on stdout
 *
 * The simulated results (makespan, hit rate, ...) are deterministic; only the wall times vary.
 */
import { performance } from 'node:perf_hooks';
import { resolveClusterSpec, resolveWorkload, simulate, type SimulationResult } from '../lib/sim/simulate';

const argv = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
};
const rate = Number(option('--rate', '1'));
const hours = Number(option('--hours', '1'));
const gpus = Number(option('--gpus', '64'));
const gpu = option('--gpu', 'h200');
const model = option('--model', 'llama-3.1-8b');
const policy = option('--policy', 'vllm');
const seed = Number(option('--seed', '1'));
const asJson = argv.includes('--json');
const compare = argv.includes('--compare');
const say = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

interface Figures {
  label: string;
  tasks: number;
  calls: number;
  simulatedS: number;
  wallS: number;
  callsPerWallS: number;
  iterations: number;
  steps: number;
  iterationsPerWallS: number;
  iterationsPerStep: number;
  hitRate: number;
  preemptions: number;
}

function figures(label: string, result: SimulationResult, calls: number, wallS: number): Figures {
  let iterations = 0;
  let steps = 0;
  let preemptions = 0;
  for (const e of result.engines) {
    iterations += e.iterations;
    steps += e.steps;
    preemptions += e.preemptions;
  }
  let cached = 0;
  let prompt = 0;
  for (const t of result.tasks) {
    cached += t.cachedTokens;
    prompt += t.promptTokens;
  }
  return {
    label,
    tasks: result.tasks.length,
    calls,
    simulatedS: result.makespanS,
    wallS,
    callsPerWallS: calls / wallS,
    iterations,
    steps,
    iterationsPerWallS: iterations / wallS,
    iterationsPerStep: iterations / steps,
    hitRate: cached / prompt,
    preemptions,
  };
}

function runOnce(label: string, hoursOfArrivals: number, bulkDecode: boolean): Figures {
  const tasks = Math.round(rate * 3600 * hoursOfArrivals);
  let t0 = performance.now();
  const workload = resolveWorkload('mixed', { tasks, ratePerS: rate, seed });
  const genS = (performance.now() - t0) / 1000;
  const calls = workload.tasks.reduce((n, t) => n + t.calls.length, 0);
  const spec = resolveClusterSpec({ model, gpu, gpus, bulkDecode });
  say(`${label}: ${tasks} tasks, ${calls} calls generated in ${genS.toFixed(1)} s; ${spec.engines} engines x ${spec.capacityBlocks} blocks; simulating ${policy}...`);
  t0 = performance.now();
  const result = simulate(workload, spec, policy);
  const wallS = (performance.now() - t0) / 1000;
  return figures(label, result, calls, wallS);
}

function show(f: Figures): string {
  return [
    `${f.label}: ${f.calls} calls of ${f.tasks} tasks, ${(f.simulatedS / 3600).toFixed(2)} h simulated in ${f.wallS.toFixed(1)} s wall`,
    `  ${Math.round(f.callsPerWallS)} simulated calls per wall second; ${Math.round(f.iterationsPerWallS)} engine iterations per wall second`,
    `  ${f.iterations} iterations in ${f.steps} steps (${f.iterationsPerStep.toFixed(1)} per step); hit rate ${(100 * f.hitRate).toFixed(1)}%, ${f.preemptions} preemptions`,
  ].join('\n');
}

const main = runOnce(`${gpus} x ${gpu}, ${model}, mixed at ${rate} tasks/s for ${hours} h`, hours, true);
const out: { bench: Figures; baseline?: Figures; slice?: Figures; bulkSpeedup?: number } = { bench: main };
if (compare) {
  const sliceHours = 5 / 60;
  out.slice = runOnce('slice, bulk decode', sliceHours, true);
  out.baseline = runOnce('slice, one iteration per step', sliceHours, false);
  out.bulkSpeedup = out.baseline.wallS / out.slice.wallS;
}
if (asJson) {
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
} else {
  console.log(show(main));
  if (out.slice !== undefined && out.baseline !== undefined) {
    console.log(show(out.slice));
    console.log(show(out.baseline));
    console.log(`bulk decode: ${(out.bulkSpeedup ?? 0).toFixed(1)}x faster than one iteration per step on the same slice`);
  }
}
