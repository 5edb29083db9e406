/**
 * `webarena`: browser agents on WebArena-style tasks.
 *
 * A task is one objective worked on step by step; each step is one LLM call that sees the current page
 * and emits one browser action (`click`, `type`, `goto`, `scroll`), the last one the stop action
 * (`end_turn`). The page observation is replaced at every step:
 *
 *   step i:  [scaffold][objective][history 0 .. i-1][observation i]
 *   history j = step j's output + the harness's description of the action
 *
 * so step i+1 reuses step i's prompt only up to the start of observation i (reuse depth < 1), then
 * differs (history i where observation i was). Between steps: the action's own time plus the harness's
 * fixed wait, a few seconds. The scaffold has the same block hashes in every task of the tenant.
 * Parameters and their sources: parameters.ts.
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
import { WEBARENA, WEBARENA_ACTIONS, type WebarenaParams } from './parameters';
import { categorical, lognormal, lognormalInt, type Random } from './rng';

export interface WebarenaOptions extends GeneratorOptions {
  /** Tenant of every task (default `default`). */
  tenant?: string;
  /** Overrides of the parameters (shallow: `actions` replaces the whole table). */
  params?: Partial<WebarenaParams>;
}

/** The parameters with `overrides` applied, checked. */
export function webarenaParams(overrides: Partial<WebarenaParams> = {}): WebarenaParams {
  const p: WebarenaParams = { ...WEBARENA, ...overrides };
  checkTokens('scaffoldTokens', p.scaffoldTokens);
  checkTokens('observationCapTokens', p.observationCapTokens);
  checkTokens('actionEchoTokens', p.actionEchoTokens);
  checkLognormal('objectiveTokens', p.objectiveTokens);
  checkLognormal('stepsPerTask', p.stepsPerTask);
  checkLognormal('observationTokens', p.observationTokens);
  checkLognormal('outputTokens', p.outputTokens);
  if (!(p.waitAfterActionS >= 0)) throw badArgument(`waitAfterActionS must be >= 0, got ${String(p.waitAfterActionS)}`);
  let total = 0;
  for (const action of WEBARENA_ACTIONS) {
    const spec = p.actions?.[action];
    if (!spec) throw badArgument(`actions.${action} is missing`);
    if (!(spec.share >= 0)) throw badArgument(`actions.${action}.share must be >= 0, got ${String(spec.share)}`);
    checkLognormal(`actions.${action}.executeS`, spec.executeS);
    total += spec.share;
  }
  if (!(total > 0)) throw badArgument('actions: at least one share must be positive');
  return p;
}

/** Builds one webarena task's calls. */
export function buildWebarenaTask(ctx: TaskContext, rng: Random, p: WebarenaParams): Call[] {
  const shares = WEBARENA_ACTIONS.map((a) => p.actions[a].share);
  const n = lognormalInt(rng, p.stepsPerTask);
  const objective = ctx.segment(lognormalInt(rng, p.objectiveTokens));
  const history: Segment[] = [];
  const calls: Call[] = [];
  for (let i = 0; i < n; i++) {
    let obsTokens = lognormalInt(rng, p.observationTokens);
    if (p.observationCapTokens > 0) obsTokens = Math.min(obsTokens, p.observationCapTokens);
    const observation = ctx.segment(obsTokens);
    const segments: Segment[] = [ctx.scaffold, objective, ...history, observation];
    const outputTokens = lognormalInt(rng, p.outputTokens);
    if (i === n - 1) {
      calls.push(ctx.call(segments, { outputTokens, gapAfterS: 0, stop: 'end_turn' }));
      break;
    }
    const action = WEBARENA_ACTIONS[categorical(rng, shares)];
    const gapAfterS = p.waitAfterActionS + lognormal(rng, p.actions[action].executeS);
    calls.push(ctx.call(segments, { outputTokens, gapAfterS, stop: 'tool_use', toolKind: action }));
    history.push(ctx.segment(outputTokens + p.actionEchoTokens));
  }
  return calls;
}

/** The tenant plan of a webarena tenant (used by `mixed` too). */
export function webarenaPlan(name: string, share: number, overrides?: Partial<WebarenaParams>): TenantPlan {
  const p = webarenaParams(overrides);
  return { name, kind: 'webarena', share, scaffoldTokens: p.scaffoldTokens, build: (ctx, rng) => buildWebarenaTask(ctx, rng, p) };
}

/** A workload of webarena tasks of one tenant. */
export function generateWebarena(options: WebarenaOptions = {}): Workload {
  const o = resolveOptions(options);
  return assembleWorkload(workloadName('webarena', o), [webarenaPlan(options.tenant ?? 'default', 1, options.params)], o);
}
