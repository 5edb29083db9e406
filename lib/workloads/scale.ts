/**
 * A workload shrunk to fit a small engine: token counts and block size scaled by one factor (the block
 * structure, hence which calls share which prefixes, is kept), times by another (tool gaps and arrivals),
 * and each task cut before its first call whose prompt and output no longer fit the context. For running
 * generated agent workloads through `saga engine` on a CPU, and simulating the very same calls.
 */
import { badArgument } from '../errors';
import type { Task, Workload } from './types';

export interface ScaleOptions {
  /** Multiplies token counts (prompt, output, block size); in (0, 1]. */
  readonly tokenScale: number;
  /** Multiplies tool gaps and arrival times; > 0. */
  readonly timeScale: number;
  /** A task keeps only its calls before the first whose prompt + output exceeds this; >= 1. */
  readonly maxContextTokens: number;
}

export function scaleWorkload(workload: Workload, options: ScaleOptions): Workload {
  const { tokenScale, timeScale, maxContextTokens } = options;
  if (!(tokenScale > 0 && tokenScale <= 1)) throw badArgument(`tokenScale must be in (0, 1], got ${String(tokenScale)}`);
  if (!(timeScale > 0 && Number.isFinite(timeScale))) throw badArgument(`timeScale must be a positive number, got ${String(timeScale)}`);
  if (!Number.isSafeInteger(maxContextTokens) || maxContextTokens < 1) throw badArgument(`maxContextTokens must be an integer >= 1, got ${String(maxContextTokens)}`);
  const blockSize = Math.max(1, Math.round(workload.blockSize * tokenScale));
  const perBlock = blockSize / workload.blockSize;
  const tasks: Task[] = [];
  for (const task of workload.tasks) {
    const calls = [];
    for (const call of task.calls) {
      const promptTokens = Math.max(call.blockHashes.length * blockSize, Math.ceil(call.promptTokens * perBlock));
      const outputTokens = Math.max(1, Math.round(call.outputTokens * perBlock));
      if (promptTokens + outputTokens > maxContextTokens) break;
      calls.push({ ...call, promptTokens, outputTokens, gapAfterS: call.gapAfterS * timeScale });
    }
    if (calls.length === 0) continue;
    calls[calls.length - 1].gapAfterS = 0;
    tasks.push({ ...task, arrivalS: task.arrivalS * timeScale, calls });
  }
  return { name: `${workload.name} (tokens x${tokenScale}, time x${timeScale}, context <= ${maxContextTokens})`, blockSize, tasks };
}
