/**
 * The clusters and loads of `npm run results` (bench/results.ts) and the benches that reuse its scenarios.
 * Browser agents' contexts are short, so webarena needs 40x the task rate of the coding workloads to make
 * the same cluster memory-bound (measured: at 0.25 tasks/s on 8 GPUs it uses 1% of the KV cache; at 10/s,
 * 60%+ with preemptions). The paper setting is 64 GPUs at 8x the load; quick is the simulate defaults.
 * Loads are [tasks, tasks per second].
 */
export const SETTINGS = {
  paper: { gpus: 64, load: { swebench: [1600, 2], webarena: [8000, 80], mixed: [1600, 2] } },
  quick: { gpus: 8, load: { swebench: [200, 0.25], webarena: [1000, 10], mixed: [200, 0.25] } },
} as const;
