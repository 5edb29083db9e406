/**
 * The flood scenario of `npm run results` (bench/results.ts) and bench/flood_breakdown.ts, in one place:
 * the `mixed` workload's three tenants, plus `flood`, a coding tenant with FLOOD_SHARE times the task share
 * of the largest of them (coding-0, share 1) at their default load. The three may run at a fraction of
 * their default load (`victimLoad`), the flood staying as it is, or alone (no flood).
 */
import { generateWorkload } from '../lib/workloads/generators';
import type { Workload } from '../lib/workloads/types';

export const FLOOD_SHARE = 6;
/** The other tenants' load in the light-load scenario: one they meet the SLO at alone. */
export const VICTIM_LIGHT = 0.25;
export const VICTIMS = [
  { name: 'coding-0', kind: 'swebench', share: 1 },
  { name: 'browsing-1', kind: 'webarena', share: 0.5 },
  { name: 'coding-2', kind: 'swebench', share: 0.333 },
] as const;
const VICTIM_SHARE = VICTIMS.reduce((n, v) => n + v.share, 0);

export interface FloodScenario {
  /** The three tenants' default tasks and rate (the mixed workload's load in the setting). */
  readonly tasks: number;
  readonly ratePerS: number;
  /** Their load as a share of the default (1, or VICTIM_LIGHT). */
  readonly victimLoad: number;
  readonly withFlood: boolean;
}

/** The flood's tasks per second: FLOOD_SHARE times coding-0's rate at the three tenants' default rate. */
export function floodRatePerS(defaultRatePerS: number): number {
  return (defaultRatePerS * FLOOD_SHARE) / VICTIM_SHARE;
}

/** Arrivals over the default load's span (its tasks over its rate), whatever the three tenants' load. */
export function floodWorkload(s: FloodScenario, seed: number): Workload {
  const victimRate = s.ratePerS * s.victimLoad;
  const floodRate = floodRatePerS(s.ratePerS);
  const ratePerS = victimRate + (s.withFlood ? floodRate : 0);
  const tenants = s.withFlood ? [...VICTIMS, { name: 'flood', kind: 'swebench' as const, share: (VICTIM_SHARE * floodRate) / victimRate }] : [...VICTIMS];
  return generateWorkload('mixed', { tasks: Math.round(ratePerS * (s.tasks / s.ratePerS)), ratePerS, seed, tenants });
}
