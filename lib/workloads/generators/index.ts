/**
 * Workload generators: synthetic agent programs with every parameter's source in parameters.ts.
 *
 *   generateWorkload('swebench' | 'webarena' | 'mixed', { tasks, ratePerS, seed, blockSize, tenants })
 *
 * - `swebench`: coding agents; long contexts that only grow (reuse depth 1), a shared scaffold, test
 *   runs and shell commands as tools with seconds-to-a-minute gaps.
 * - `webarena`: browser agents; the page observation is replaced every step (reuse depth < 1), gaps of
 *   a few seconds.
 * - `mixed`: several tenants with different kinds, arrival-rate shares and scaffolds.
 * Same options and seed -> the same workload (hashes included). Arrivals are a Poisson process.
 */
import { badArgument } from '../../errors';
import type { Workload } from '../types';
import type { GeneratorOptions } from './build';
import { generateMixed, type MixedOptions } from './mixed';
import type { SwebenchParams, TenantSpec, WebarenaParams } from './parameters';
import { generateSwebench } from './swebench';
import { generateWebarena } from './webarena';

export type { GeneratorOptions } from './build';
export { DEFAULT_OPTIONS, SWEBENCH, WEBARENA, defaultTenants } from './parameters';
export type { SwebenchParams, WebarenaParams, TenantSpec, GeneratorKind, LognormalSpec } from './parameters';
export { generateSwebench, type SwebenchOptions } from './swebench';
export { generateWebarena, type WebarenaOptions } from './webarena';
export { generateMixed, type MixedOptions } from './mixed';

export const GENERATOR_NAMES = ['swebench', 'webarena', 'mixed'] as const;
export type GeneratorName = (typeof GENERATOR_NAMES)[number];

/** Options of `generateWorkload`: the common ones, `tenants` for mixed, parameter overrides and tenant name for single kinds. */
export interface WorkloadOptions extends GeneratorOptions {
  /** mixed only: the tenants, or how many default tenants. */
  tenants?: number | readonly TenantSpec[];
  /** swebench / webarena only: the tenant of every task (default `default`). */
  tenant?: string;
  /** swebench / webarena only: parameter overrides. */
  params?: Partial<SwebenchParams> | Partial<WebarenaParams>;
}

/** The generator `name` run with `options`; an unknown name is ERR_SAGA_BAD_ARGUMENT. */
export function generateWorkload(name: string, options: WorkloadOptions = {}): Workload {
  const single = name === 'swebench' || name === 'webarena';
  if (single && options.tenants !== undefined) throw badArgument(`${name} has one tenant (option tenant); tenants is for mixed`);
  if (name === 'mixed' && (options.tenant !== undefined || options.params !== undefined)) {
    throw badArgument('mixed takes its tenants, and per-tenant params, in option tenants');
  }
  switch (name) {
    case 'swebench':
      return generateSwebench({ ...options, params: options.params as Partial<SwebenchParams> | undefined });
    case 'webarena':
      return generateWebarena({ ...options, params: options.params as Partial<WebarenaParams> | undefined });
    case 'mixed': {
      const mixed: MixedOptions = { tasks: options.tasks, ratePerS: options.ratePerS, seed: options.seed, blockSize: options.blockSize, tenants: options.tenants };
      return generateMixed(mixed);
    }
    default:
      throw badArgument(`unknown workload generator ${JSON.stringify(name)} (${GENERATOR_NAMES.join(', ')})`);
  }
}
