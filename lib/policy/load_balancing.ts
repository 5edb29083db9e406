/**
 * Routing that ignores programs, the gateway's plain baselines (`saga serve` policies `round-robin` and
 * `least-loaded`): every call on its own, so no session keeps its KV home.
 */
import type { CallInfo, EngineView, RoutingPolicy } from './types';

/** Engines in turn, one call each. */
export class RoundRobinRouting implements RoutingPolicy {
  readonly name = 'round-robin';
  private next = 0;

  route(_call: CallInfo, engines: readonly EngineView[], _nowS: number): number {
    const engine = engines[this.next % engines.length];
    this.next = (this.next + 1) % engines.length;
    return engine.id;
  }
}

/** The engine with the fewest calls running and waiting (lowest id on ties). */
export class LeastLoadedRouting implements RoutingPolicy {
  readonly name = 'least-loaded';

  route(_call: CallInfo, engines: readonly EngineView[], _nowS: number): number {
    let best = engines[0];
    for (const engine of engines) if (engine.outstandingCalls() < best.outstandingCalls()) best = engine;
    return best.id;
  }
}
