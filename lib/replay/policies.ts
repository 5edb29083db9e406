/**
 * The policies `saga replay` knows, by name. Online policies are built from the context alone; an
 * oracle (`bound: true`) is also handed the whole request stream, and is the only kind that is.
 * Later policies (issue 4's `saga`) join with registerPolicy.
 */
import { SagaError } from '../errors';
import { BeladyPolicy } from './belady';
import { LruPolicy } from './lru';
import type { EvictionPolicy, PolicyContext } from './policy';
import type { ReplayStream } from './stream';

export type PolicySpec =
  | { name: string; bound: false; description: string; create(context: PolicyContext): EvictionPolicy }
  | { name: string; bound: true; description: string; create(context: PolicyContext, stream: ReplayStream): EvictionPolicy };

const registry = new Map<string, PolicySpec>();

export function registerPolicy(spec: PolicySpec): void {
  if (!/^[a-z][a-z0-9_-]*$/.test(spec.name)) throw new TypeError(`policy names are lower-case words, got "${spec.name}"`);
  registry.set(spec.name, spec);
}

registerPolicy({
  name: 'lru',
  bound: false,
  description: "vLLM's eviction alone: least recently used request first, a request's tail blocks before its head",
  create: () => new LruPolicy(),
});
registerPolicy({
  name: 'belady',
  bound: true,
  description: "Bélády's MIN, the offline oracle (sees the future): the bound, not a runnable policy",
  create: (_context, stream) => new BeladyPolicy(stream),
});

export function policySpecs(): PolicySpec[] {
  return [...registry.values()];
}

export function policySpec(name: string): PolicySpec {
  const spec = registry.get(name);
  if (spec === undefined) {
    throw new SagaError(`unknown policy "${name}" (known: ${[...registry.keys()].join(', ')})`, 'ERR_SAGA_UNKNOWN_POLICY');
  }
  return spec;
}

/** "lru, belady" -> ['lru', 'belady'] (each known, each once, in the order given). */
export function parsePolicies(list: string): string[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw new SagaError('no policy given (e.g. --policies lru,belady)', 'ERR_SAGA_UNKNOWN_POLICY');
  for (const name of names) policySpec(name);
  return [...new Set(names)];
}

/** Builds a policy: the stream goes to oracles only. */
export function createPolicy(name: string, context: PolicyContext, stream: ReplayStream): EvictionPolicy {
  const spec = policySpec(name);
  return spec.bound ? spec.create(context, stream) : spec.create(context);
}
