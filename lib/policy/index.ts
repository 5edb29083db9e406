/**
 * The policy registry: bundles by name (`saga simulate --policies`) and eviction policies alone (what
 * `saga replay` runs). An unknown name is a SagaError ERR_SAGA_UNKNOWN_POLICY that lists the known ones.
 */
import { SagaError } from '../errors';
import type { Workload } from '../workloads/types';
import { BeladyEviction, createBeladyBundle } from './belady';
import type { EvictionPolicy, PolicyBundle } from './types';
import { createVllmBundle, LruEviction } from './vllm';

export * from './types';
export { BeladyEviction, createBeladyBundle } from './belady';
export { createVllmBundle, FcfsQueue, LruEviction, SessionAffinityRouting } from './vllm';

/** What a policy may be built from. Only an oracle reads the workload. */
export interface PolicyContext {
  readonly workload: Workload;
}

interface BundleEntry {
  readonly description: string;
  readonly oracle: boolean;
  create(context: PolicyContext): PolicyBundle;
}

const BUNDLES: Readonly<Record<string, BundleEntry>> = {
  vllm: {
    description: 'vLLM v1: LRU prefix cache (tail blocks first), FCFS, preempt newest, session-affinity routing',
    oracle: false,
    create: () => createVllmBundle(),
  },
  belady: {
    description: "Bélády's MIN with the future in hand (evict the farthest next use): a bound, not a runnable policy",
    oracle: true,
    create: (context) => createBeladyBundle(context.workload),
  },
};

const EVICTIONS: Readonly<Record<string, (context: PolicyContext) => EvictionPolicy>> = {
  lru: () => new LruEviction(),
  belady: (context) => new BeladyEviction(context.workload),
};

function unknown(kind: string, name: string, known: string[]): SagaError {
  return new SagaError(`unknown ${kind} '${name}' (known: ${known.join(', ')})`, 'ERR_SAGA_UNKNOWN_POLICY');
}

/** Names of the policy bundles, in registry order. */
export function policyNames(): string[] {
  return Object.keys(BUNDLES);
}

export function policyDescription(name: string): string {
  const entry = BUNDLES[name];
  if (entry === undefined) throw unknown('policy', name, policyNames());
  return entry.description;
}

export function isOraclePolicy(name: string): boolean {
  const entry = BUNDLES[name];
  if (entry === undefined) throw unknown('policy', name, policyNames());
  return entry.oracle;
}

/** A fresh bundle (policies keep state, e.g. session homes: one bundle per run). */
export function createPolicy(name: string, context: PolicyContext): PolicyBundle {
  const entry = Object.prototype.hasOwnProperty.call(BUNDLES, name) ? BUNDLES[name] : undefined;
  if (entry === undefined) throw unknown('policy', name, policyNames());
  return entry.create(context);
}

/** Splits and checks a comma-separated list of bundle names (duplicates are an error). */
export function parsePolicyList(list: string): string[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length === 0) throw new SagaError('no policy named (give e.g. --policies vllm,belady)', 'ERR_SAGA_UNKNOWN_POLICY');
  const seen = new Set<string>();
  for (const name of names) {
    if (!Object.prototype.hasOwnProperty.call(BUNDLES, name)) throw unknown('policy', name, policyNames());
    if (seen.has(name)) throw new SagaError(`policy '${name}' is listed twice`, 'ERR_SAGA_BAD_ARGUMENT');
    seen.add(name);
  }
  return names;
}

/** Names of the eviction policies alone. */
export function evictionPolicyNames(): string[] {
  return Object.keys(EVICTIONS);
}

export function createEvictionPolicy(name: string, context: PolicyContext): EvictionPolicy {
  const make = Object.prototype.hasOwnProperty.call(EVICTIONS, name) ? EVICTIONS[name] : undefined;
  if (make === undefined) throw unknown('eviction policy', name, evictionPolicyNames());
  return make(context);
}
