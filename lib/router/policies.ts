/**
 * The policy objects behind each `saga serve` policy: the same classes the simulator drives (DESIGN.md: a
 * policy never knows which one is driving it), with the gateway's tenants' weights and SLOs.
 * - `saga`: session affinity with work stealing (AffinityStealingRouting, counting as ended the sessions
 *   the AEG gives no chance of calling again, and keeping workflow kinds on engines of their own where the
 *   load bound allows: SessionAffinityRouting.otherKindShare), Agent Fair Share over tenants (AfsQueue, tenants' weights; an
 *   output token charged at its engine's learned price of a decode step in prefill tokens; a program near
 *   its SLO moves ahead by the remaining work the AEG predicts), and the Agent Execution Graph learning from
 *   live traffic.
 * - `affinity`: vLLM's session-affinity routing (SessionAffinityRouting, no stealing), FCFS.
 * - `round-robin`, `least-loaded`: no affinity, FCFS.
 * - The ablation, each of saga's mechanisms alone (as the simulator's `saga-routing` and `afs`):
 *   `saga-routing`: affinity with work stealing (and the AEG for the sessions' liveness), FCFS; `afs`:
 *   vLLM's affinity routing, Agent Fair Share with the AEG.
 * No eviction policy: the engines' caches are their own.
 */
import { AgentExecutionGraph } from '../graph/aeg';
import { DEFAULT_SLO } from '../metrics/metrics';
import { AfsQueue } from '../policy/afs';
import { LeastLoadedRouting, RoundRobinRouting } from '../policy/load_balancing';
import { AffinityStealingRouting } from '../policy/saga_routing';
import type { PolicyEvent, QueuePolicy, RoutingPolicy, SessionLiveness } from '../policy/types';
import { FcfsQueue, SessionAffinityRouting } from '../policy/vllm';
import type { GatewayPolicyName, TenantConfig } from './config';

/** A routing policy whose sessions have homes the gateway can move (when a home engine goes down). */
export type GatewayRouting = RoutingPolicy & { moveHome?(session: number, engineId: number): void; observe?(event: PolicyEvent): void };
type Observer = { observe?(event: PolicyEvent): void };

export interface GatewayPolicies {
  readonly name: GatewayPolicyName;
  readonly routing: GatewayRouting;
  readonly queue: QueuePolicy & Observer;
  /** The AEG, where the policy learns one. */
  readonly graph: AgentExecutionGraph | undefined;
  /** Every event, to every part that observes. */
  observe(event: PolicyEvent | StealEvent): void;
  /** Events only the routing and queue keep state for (a retried call's new arrival, a forgotten session). */
  observeQueueing(event: PolicyEvent): void;
}

/** A waiting call moved from one engine's queue to another's (AfsQueue reads it; others ignore it). */
export interface StealEvent {
  readonly type: 'call-steal';
  readonly call: PolicyEvent['call'];
  readonly fromEngineId: number;
  readonly engineId: number;
  readonly nowS: number;
}

/** What the gateway knows of its engines, for the policies that use it. */
export interface GatewayPolicyOptions {
  /**
   * Each engine's price of an output token in prefill tokens for Agent Fair Share, as the gateway learns it
   * (EngineRates), so a tenant is charged for the engine time its answers take; without it, plain tokens.
   */
  readonly decodePrice?: (engineId: number) => number;
  /** Every engine's KV size is configured (`kvTokens`): saga's routing runs fair-share placement. */
  readonly enginesSized?: boolean;
}

export function createGatewayPolicies(name: GatewayPolicyName, tenants: readonly TenantConfig[], options: GatewayPolicyOptions = {}): GatewayPolicies {
  const { decodePrice } = options;
  let queue: QueuePolicy & Observer;
  const graph = name === 'round-robin' || name === 'least-loaded' || name === 'affinity' ? undefined : new AgentExecutionGraph();
  const routing: GatewayRouting =
    name === 'saga' || name === 'saga-routing'
      ? new AffinityStealingRouting(liveness(graph), { separateKinds: true, fairPlacement: name === 'saga' && options.enginesSized === true })
      : name === 'affinity' || name === 'afs'
        ? new SessionAffinityRouting()
        : name === 'round-robin'
          ? new RoundRobinRouting()
          : new LeastLoadedRouting();
  if ((name === 'saga' || name === 'afs') && graph !== undefined) {
    const aeg = graph;
    // Each tenant's program is urgent by its own SLO; tenants the config does not name, by the default.
    queue = new AfsQueue({
      weights: Object.fromEntries(tenants.map((t) => [t.name, t.weight])),
      sloSlowdown: DEFAULT_SLO,
      tenantSlos: Object.fromEntries(tenants.map((t) => [t.name, t.slo.slowdown])),
      remainingWorkS: (call) => aeg.remainingWorkS(call),
      ...(decodePrice === undefined ? {} : { decodePrice }),
    });
  } else {
    queue = new FcfsQueue();
  }
  const queueing: Observer[] = [routing, queue];
  return {
    name,
    routing,
    queue,
    graph,
    observe(event) {
      for (const part of queueing) part.observe?.(event as PolicyEvent);
      if (event.type !== 'call-steal') graph?.observe(event);
    },
    observeQueueing(event) {
      for (const part of queueing) part.observe?.(event);
    },
  };
}

/**
 * Whether a session may still call, from the AEG: nothing over HTTP says a program ended (unless its client
 * sends DELETE /saga/sessions/:id), so a session away longer than any gap its step has shown (the AEG gives
 * it no chance of another call) counts as ended, not as live until the idle expiry. Until then it counts
 * whole, not by its chance: a session in a tool call most likely comes back and needs its place (counted by
 * its chance, saga lost to affinity on the three-engine bench with the end signal; bench/RESULTS.md).
 */
function liveness(graph: AgentExecutionGraph | undefined): SessionLiveness | undefined {
  return graph === undefined ? undefined : (session, nowS) => ((graph.predictSession(session, nowS)?.nextCallProbability ?? 1) > 0 ? 1 : 0);
}
