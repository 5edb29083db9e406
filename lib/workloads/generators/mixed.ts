/**
 * `mixed`: several tenants sharing a cluster, each with its own kind (swebench or webarena), share of
 * the task arrival rate, scaffold (no two tenants share scaffold blocks) and, optionally, parameters.
 *
 * Arrivals: one Poisson process at `ratePerS`; each arrival goes to tenant t with probability
 * share_t / sum(shares), which is the same as independent Poisson processes at share_t x ratePerS.
 * Default tenants (`tenants` omitted or a count): see `defaultTenants` in parameters.ts — for 3,
 * coding-0 (swebench, 6/11 of arrivals), browsing-1 (webarena, 3/11), coding-2 (swebench, 2/11).
 */
import { badArgument } from '../../errors';
import type { Workload } from '../types';
import { assembleWorkload, resolveOptions, workloadName, type GeneratorOptions, type TenantPlan } from './build';
import { DEFAULT_TENANT_COUNT, defaultTenants, type SwebenchParams, type TenantSpec, type WebarenaParams } from './parameters';
import { swebenchPlan } from './swebench';
import { webarenaPlan } from './webarena';

export interface MixedOptions extends GeneratorOptions {
  /** The tenants, or how many default tenants (a positive integer; default 3). */
  tenants?: number | readonly TenantSpec[];
}

/** The tenant specs `tenants` stands for. */
export function resolveTenants(tenants: number | readonly TenantSpec[] = DEFAULT_TENANT_COUNT): readonly TenantSpec[] {
  if (typeof tenants === 'number') {
    if (!Number.isInteger(tenants) || tenants < 1) throw badArgument(`tenants must be a positive integer or a list, got ${String(tenants)}`);
    return defaultTenants(tenants);
  }
  if (!Array.isArray(tenants) || tenants.length === 0) throw badArgument('tenants must be a positive integer or a non-empty list');
  return tenants;
}

function plan(spec: TenantSpec): TenantPlan {
  if (spec === null || typeof spec !== 'object') throw badArgument('each tenant must be an object { name, kind, share }');
  switch (spec.kind) {
    case 'swebench':
      return swebenchPlan(spec.name, spec.share, spec.params as Partial<SwebenchParams> | undefined);
    case 'webarena':
      return webarenaPlan(spec.name, spec.share, spec.params as Partial<WebarenaParams> | undefined);
    default:
      throw badArgument(`tenant ${String(spec.name)}: unknown kind ${String((spec as { kind: unknown }).kind)} (swebench, webarena)`);
  }
}

/** A multi-tenant workload. */
export function generateMixed(options: MixedOptions = {}): Workload {
  const o = resolveOptions(options);
  const specs = resolveTenants(options.tenants);
  const label = specs.map((s) => `${s.name}:${s.kind}:${Number(Number(s.share).toPrecision(3))}`).join('+');
  return assembleWorkload(`${workloadName('mixed', o)},tenants=${label}`, specs.map(plan), o);
}
