/**
 * `swebench`: coding agents (SWE-agent / OpenHands CodeAct style) resolving SWE-bench issues.
 *
 * A task is one issue worked on in one turn: tens of LLM calls, each ending in a tool call (`test`,
 * `shell`, `edit`, `read`, `search`) except the last (`end_turn`, the submit). Prompts only grow:
 *
 *   call 0:    [scaffold][issue + instructions]
 *   call i+1:  call i's prompt + call i's output + call i's tool result
 *
 * so every call reuses all of the previous call's blocks (reuse depth 1). The scaffold (system prompt +
 * tool schema) has the same block hashes in every task of the tenant. When the next prompt would pass
 * `compactAtTokens`, the history is compacted first (kept: scaffold, issue, a block of
 * `keptAfterCompactionTokens` standing for the summary, and the latest exchange), which breaks the reuse
 * once — as the measured coding-agent traces do, rarely. Parameters and their sources: parameters.ts.
 */
import { badArgument } from '../../errors';
import type { Call, Workload } from '../types';
import {
  assembleWorkload,
  checkLognormal,
  checkTokens,
  resolveOptions,
  workloadName,
  type GeneratorOptions,
  type Segment,
  type TaskContext,
  type TenantPlan,
} from './build';
import { SWEBENCH, SWEBENCH_TOOLS, type SwebenchParams } from './parameters';
import { categorical, lognormal, lognormalInt, type Random } from './rng';

export interface SwebenchOptions extends GeneratorOptions {
  /** Tenant of every task (default `default`). */
  tenant?: string;
  /** Overrides of the parameters (shallow: `tools` replaces the whole table). */
  params?: Partial<SwebenchParams>;
}

/** The parameters with `overrides` applied, checked. */
export function swebenchParams(overrides: Partial<SwebenchParams> = {}): SwebenchParams {
  const p: SwebenchParams = { ...SWEBENCH, ...overrides };
  checkTokens('scaffoldTokens', p.scaffoldTokens);
  checkTokens('instanceTemplateTokens', p.instanceTemplateTokens);
  checkLognormal('issueTokens', p.issueTokens);
  checkLognormal('callsPerTask', p.callsPerTask);
  checkLognormal('outputTokensToolUse', p.outputTokensToolUse);
  checkLognormal('outputTokensEndTurn', p.outputTokensEndTurn);
  checkLognormal('keptAfterCompactionTokens', p.keptAfterCompactionTokens);
  if (!(p.compactAtTokens > 0)) throw badArgument(`compactAtTokens must be positive, got ${String(p.compactAtTokens)}`);
  let total = 0;
  for (const tool of SWEBENCH_TOOLS) {
    const spec = p.tools?.[tool];
    if (!spec) throw badArgument(`tools.${tool} is missing`);
    if (!(spec.share >= 0)) throw badArgument(`tools.${tool}.share must be >= 0, got ${String(spec.share)}`);
    checkLognormal(`tools.${tool}.gapS`, spec.gapS);
    checkLognormal(`tools.${tool}.resultTokens`, spec.resultTokens);
    total += spec.share;
  }
  if (!(total > 0)) throw badArgument('tools: at least one share must be positive');
  return p;
}

/** Builds one swebench task's calls. */
export function buildSwebenchTask(ctx: TaskContext, rng: Random, p: SwebenchParams): Call[] {
  const shares = SWEBENCH_TOOLS.map((t) => p.tools[t].share);
  const n = lognormalInt(rng, p.callsPerTask);
  const instruction = ctx.segment(lognormalInt(rng, p.issueTokens) + p.instanceTemplateTokens);
  const head: Segment[] = [ctx.scaffold, instruction];
  let history: Segment[] = [];
  let historyTokens = 0;
  const calls: Call[] = [];
  for (let i = 0; i < n; i++) {
    const last = i === n - 1;
    const segments = head.concat(history);
    if (last) {
      calls.push(ctx.call(segments, { outputTokens: lognormalInt(rng, p.outputTokensEndTurn), gapAfterS: 0, stop: 'end_turn' }));
      break;
    }
    const outputTokens = lognormalInt(rng, p.outputTokensToolUse);
    const tool = SWEBENCH_TOOLS[categorical(rng, shares)];
    const spec = p.tools[tool];
    const gapAfterS = lognormal(rng, spec.gapS);
    const resultTokens = lognormalInt(rng, spec.resultTokens);
    calls.push(ctx.call(segments, { outputTokens, gapAfterS, stop: 'tool_use', toolKind: tool }));

    // The next prompt: this one + this call's output + the tool's result (one segment: they are always
    // appended together).
    const exchange = ctx.segment(outputTokens + resultTokens);
    const headTokens = ctx.scaffold.tokens + instruction.tokens;
    if (headTokens + historyTokens + exchange.tokens > p.compactAtTokens && history.length > 0) {
      // Compaction: the history so far becomes a summary, never larger than what it replaces.
      const kept = Math.min(lognormalInt(rng, p.keptAfterCompactionTokens), historyTokens);
      history = [ctx.segment(kept)];
      historyTokens = kept;
    }
    history.push(exchange);
    historyTokens += exchange.tokens;
  }
  return calls;
}

/** The tenant plan of a swebench tenant (used by `mixed` too). */
export function swebenchPlan(name: string, share: number, overrides?: Partial<SwebenchParams>): TenantPlan {
  const p = swebenchParams(overrides);
  return { name, kind: 'swebench', share, scaffoldTokens: p.scaffoldTokens, build: (ctx, rng) => buildSwebenchTask(ctx, rng, p) };
}

/** A workload of swebench tasks of one tenant. */
export function generateSwebench(options: SwebenchOptions = {}): Workload {
  const o = resolveOptions(options);
  return assembleWorkload(workloadName('swebench', o), [swebenchPlan(options.tenant ?? 'default', 1, options.params)], o);
}
