/**
 * Where the light tenants' time goes under a flood: bench/flood_scenario.ts with the three mixed tenants at
 * a light load (VICTIM_LIGHT of their default, which they meet alone), run alone and then with the flood.
 * Per workflow kind of the light tenants' calls: the wait for admission, admission to first token, decode
 * time per output token, the share of the prompt found cached, and preemptions. Simulated, deterministic.
 *
 *   npx tsx bench/flood_breakdown.ts [--seed N] [--paper] [--policies vllm,saga] [--load X]
 */
import { Command } from 'commander';
import { resolveClusterSpec, simulate } from '../lib/sim/simulate';
import { VICTIM_LIGHT, VICTIMS, floodWorkload } from './flood_scenario';
import { SETTINGS } from './settings';

const opts = new Command()
  .option('--seed <n>', 'workload seed', '1')
  .option('--paper', "the paper's setting (64 GPUs, 8x the load) instead of the simulate defaults")
  .option('--policies <list>', 'policies under the flood', 'vllm,saga')
  .option('--load <x>', "the light tenants' load, a share of their default", String(VICTIM_LIGHT))
  .parse(process.argv)
  .opts<{ seed: string; paper?: boolean; policies: string; load: string }>();

const setting = opts.paper === true ? SETTINGS.paper : SETTINGS.quick;
const [tasks, ratePerS] = setting.load.mixed;
const seed = Number(opts.seed);
const runs: [string, boolean][] = [['vllm', false], ...opts.policies.split(',').map((p): [string, boolean] => [p, true])];
console.log(`Light tenants at ${opts.load}x their default load (mixed, ${tasks} tasks at ${ratePerS}/s), ${setting.gpus} GPUs, seed ${seed}; alone under vllm, then with the flood.\n`);
console.log('| run | policy | light tenants\' calls | kind | wait for admission s | admission to first token s | decode ms per output token | prompt cached | preemptions |');
console.log('| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |');
for (const [policy, withFlood] of runs) {
  const workload = floodWorkload({ tasks, ratePerS, victimLoad: Number(opts.load), withFlood }, seed);
  const spec = resolveClusterSpec({ gpus: setting.gpus, blockSize: workload.blockSize });
  const result = simulate(workload, spec, policy, { recordCalls: true });
  for (const kind of new Set(VICTIMS.map((v) => v.kind))) {
    const calls = (result.calls ?? []).filter((c) => workload.tasks[c.taskIndex].tenant !== 'flood' && workload.tasks[c.taskIndex].kind === kind);
    const mean = (f: (c: (typeof calls)[number]) => number) => calls.reduce((a, c) => a + f(c), 0) / calls.length;
    const decoding = calls.filter((c) => c.outputTokens > 1);
    const decodeS = decoding.reduce((a, c) => a + (c.finishS - c.firstTokenS) / (c.outputTokens - 1), 0) / decoding.length;
    console.log(
      `| ${withFlood ? 'with the flood' : 'alone'} | ${policy} | ${calls.length} | ${kind} | ${mean((c) => c.admittedS - c.arrivalS).toFixed(2)} | ${mean((c) => c.firstTokenS - c.admittedS).toFixed(2)} | ${(1000 * decodeS).toFixed(1)} | ${(100 * mean((c) => c.cachedTokens / c.promptTokens)).toFixed(1)}% | ${calls.reduce((a, c) => a + c.preemptions, 0)} |`,
    );
  }
}
