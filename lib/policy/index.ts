/**
 * The policy registry: bundles by name (`saga simulate --policies`) and eviction policies alone (what
 * `saga replay` runs). An unknown name is a SagaError ERR_SAGA_UNKNOWN_POLICY that lists the known ones.
 */
import { SagaError } from '../errors';
import type { Workload } from '../workloads/types';
import { createAfsBundle } from './afs';
import { createAutellixBundle } from './autellix';
import { BeladyEviction, createBeladyBundle } from './belady';
import { ContinuumEviction, createContinuumBundle } from './continuum';
import { KvflowEviction, createKvflowBundle } from './kvflow';
import type { EvictionPolicy, PolicyBundle } from './types';
import { createVllmBundle, LruEviction } from './vllm';
import { createSagaBundle, createSagaEvictionBundle, createSagaRoutingBundle } from './saga';
import { SagaEviction } from './saga_eviction';

export * from './types';
export { AfsQueue, createAfsBundle } from './afs';
export { createAutellixBundle, LocalityAwareRouting, PlasQueue } from './autellix';
export { BeladyEviction, createBeladyBundle } from './belady';
export { ContinuumEviction, ContinuumQueue, createContinuumBundle } from './continuum';
export { KvflowEviction, createKvflowBundle } from './kvflow';
export { createVllmBundle, FcfsQueue, LruEviction, SessionAffinityRouting } from './vllm';
export { createSagaBundle, createSagaEvictionBundle, createSagaRoutingBundle } from './saga';
export { AffinityStealingRouting } from './saga_routing';
export { LeastLoadedRouting, RoundRobinRouting } from './load_balancing';
export { SagaEviction } from './saga_eviction';

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
  continuum: {
    description: 'Continuum (arXiv 2511.02230): KV pinned across tool calls for a TTL from the tool-duration CDF, then LRU; program-level FCFS',
    oracle: false,
    create: () => createContinuumBundle(),
  },
  kvflow: {
    description: 'KVFlow (arXiv 2507.07400): evict the largest steps-to-execution first (Agent Step Graph learned online); FCFS, session affinity',
    oracle: false,
    create: () => createKvflowBundle(),
  },
  saga: {
    description: 'SAGA: AEG-predicted eviction, session affinity with work stealing, and Agent Fair Share queueing',
    oracle: false,
    create: () => createSagaBundle(),
  },
  'saga-routing': {
    description: "vllm with SAGA's routing alone (ablation): session affinity with work stealing",
    oracle: false,
    create: () => createSagaRoutingBundle(),
  },
  'saga-eviction': {
    description: "vllm with SAGA's eviction alone (ablation): next use predicted by the Agent Execution Graph",
    oracle: false,
    create: () => createSagaEvictionBundle(),
  },
  afs: {
    description: 'vllm with Agent Fair Share queueing alone (ablation): per-tenant virtual token counters, least attained service within a tenant',
    oracle: false,
    create: () => createAfsBundle(),
  },
  autellix: {
    description: 'Autellix (arXiv 2502.13965): program-level least attained service in discretised queues with anti-starvation, locality-aware load balancing, LRU',
    oracle: false,
    create: () => createAutellixBundle(),
  },
};

interface EvictionEntry {
  readonly description: string;
  readonly oracle: boolean;
  create(context: PolicyContext): EvictionPolicy;
}

const EVICTIONS: Readonly<Record<string, EvictionEntry>> = {
  lru: {
    description: "vLLM's eviction: least recently released first, a request's tail blocks before its head",
    oracle: false,
    create: () => new LruEviction(),
  },
  saga: {
    description: "SAGA: next use predicted by the Agent Execution Graph, learned online (dead blocks first, then the farthest predicted use)",
    oracle: false,
    create: () => new SagaEviction(),
  },
  belady: {
    description: "Bélády's MIN, the oracle (evicts the farthest next use, the future in hand): a bound, not a runnable policy",
    oracle: true,
    create: (context) => new BeladyEviction(context.workload),
  },
  continuum: {
    description: 'Continuum (arXiv 2511.02230): KV pinned across tool calls for a TTL from the tool-duration CDF, then LRU',
    oracle: false,
    create: () => new ContinuumEviction(),
  },
  kvflow: {
    description: 'KVFlow (arXiv 2507.07400): evict the largest steps-to-execution first (Agent Step Graph learned online)',
    oracle: false,
    create: () => new KvflowEviction(),
  },
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

/** Splits and checks a comma-separated list of names (each known, none twice), in the order given. */
function parseList(list: string, kind: string, known: readonly string[]): string[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length === 0) throw new SagaError(`no ${kind} named (give e.g. --policies ${known.slice(0, 2).join(',')})`, 'ERR_SAGA_UNKNOWN_POLICY');
  const seen = new Set<string>();
  for (const name of names) {
    if (!known.includes(name)) throw unknown(kind, name, [...known]);
    if (seen.has(name)) throw new SagaError(`${kind} '${name}' is listed twice`, 'ERR_SAGA_BAD_ARGUMENT');
    seen.add(name);
  }
  return names;
}

/** Splits and checks a comma-separated list of bundle names (`saga simulate --policies`). */
export function parsePolicyList(list: string): string[] {
  return parseList(list, 'policy', policyNames());
}

/** Names of the eviction policies alone (what `saga replay` runs). */
export function evictionPolicyNames(): string[] {
  return Object.keys(EVICTIONS);
}

function evictionEntry(name: string): EvictionEntry {
  const entry = Object.prototype.hasOwnProperty.call(EVICTIONS, name) ? EVICTIONS[name] : undefined;
  if (entry === undefined) throw unknown('eviction policy', name, evictionPolicyNames());
  return entry;
}

export function evictionPolicyDescription(name: string): string {
  return evictionEntry(name).description;
}

export function isOracleEviction(name: string): boolean {
  return evictionEntry(name).oracle;
}

/** Splits and checks a comma-separated list of eviction policy names (`saga replay --policies`). */
export function parseEvictionPolicyList(list: string): string[] {
  return parseList(list, 'eviction policy', evictionPolicyNames());
}

export function createEvictionPolicy(name: string, context: PolicyContext): EvictionPolicy {
  return evictionEntry(name).create(context);
}
