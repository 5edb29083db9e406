/** Putting three policies together as a bundle whose `observe` reaches every part that observes. */
import type { EvictionPolicy, PolicyBundle, PolicyEvent, QueuePolicy, RoutingPolicy } from './types';

type Observer = { observe?(event: PolicyEvent): void };

export interface BundleParts {
  readonly name: string;
  /** Defaults to the name; an oracle's says it is a bound. */
  readonly label?: string;
  readonly oracle?: boolean;
  readonly routing: RoutingPolicy & Observer;
  readonly queue: QueuePolicy & Observer;
  readonly eviction: EvictionPolicy;
}

export function composeBundle(parts: BundleParts): PolicyBundle {
  const observers = [parts.routing, parts.queue, parts.eviction].filter((p: Observer) => typeof p.observe === 'function') as Required<Observer>[];
  return {
    name: parts.name,
    label: parts.label ?? parts.name,
    oracle: parts.oracle ?? false,
    routing: parts.routing,
    queue: parts.queue,
    eviction: parts.eviction,
    observe: (event) => {
      for (const o of observers) o.observe(event);
    },
  };
}
