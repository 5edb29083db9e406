/**
 * The gateway's Prometheus metrics, on a registry of its own (several gateways in one process, as in tests,
 * do not collide). Gauges of engine state are read when scraped; the rest count as things happen.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineState } from './engine_state';

/** Slowdowns of one call (time at the gateway / time at the engine): 1 is no queueing at all. */
const SLOWDOWN_BUCKETS = [1, 1.1, 1.25, 1.5, 2, 3, 5, 10, 20, 50];

interface IncBy {
  inc(value?: number): void;
}

/** A tenant's metrics, bound to its label. */
export interface TenantMetrics {
  readonly serviceTokens: IncBy;
  readonly calls: IncBy;
  readonly sloMet: IncBy;
  readonly slowdown: { observe(value: number): void };
}

/** A running count of one label value. */
class Cell implements IncBy {
  value = 0;

  inc(value = 1): void {
    this.value += value;
  }
}

function cell(tally: Map<string, Cell>, key: string): Cell {
  let found = tally.get(key);
  if (found === undefined) {
    found = new Cell();
    tally.set(key, found);
  }
  return found;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly upstreamErrors: Counter<'engine' | 'reason'>;
  readonly retries: Counter<'engine'>;
  readonly steals: Counter;
  readonly sessionsEnded: Counter<'reason'>;
  readonly rejected: Counter<'reason'>;
  readonly sessionRoutes: Counter<'outcome'>;
  readonly tenantServiceTokens: Counter<'tenant'>;
  readonly tenantCalls: Counter<'tenant'>;
  readonly tenantSloMet: Counter<'tenant'>;
  readonly tenantSlowdown: Histogram<'tenant'>;
  readonly promptTokens: Counter<'engine'>;
  readonly cachedTokens: Counter<'engine'>;
  private readonly cached = { prompt: 0, cached: 0 };
  /**
   * The per-call counters, kept as plain numbers by label value and handed to prom-client when scraped
   * (prom-client hashes a label set on every increment, bound children included).
   */
  private readonly tally = { service: new Map<string, Cell>(), calls: new Map<string, Cell>(), sloMet: new Map<string, Cell>(), prompt: new Map<string, Cell>(), cached: new Map<string, Cell>() };
  private readonly routes = new Map<string, Cell>();
  private readonly tenants = new Map<string, TenantMetrics>();

  constructor(engines: readonly EngineState[]) {
    const registers = [this.registry];
    const perEngine = (name: string, help: string, read: (e: EngineState) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['engine'] as const,
        registers,
        collect() {
          for (const e of engines) this.set({ engine: e.name }, read(e));
        },
      });
    perEngine('saga_gateway_queue_depth', 'Calls waiting in the gateway for the engine (not yet sent).', (e) => e.queue.length);
    perEngine('saga_gateway_in_flight', 'Calls sent to the engine and not yet answered.', (e) => e.inFlight);
    perEngine('saga_gateway_engine_prefill_tokens_per_second', "The engine's prefill rate as learned from its answers (the config's prefillTokensPerS before any): prices a moved call's recompute.", (e) => e.rates.prefillTokensPerS);
    perEngine('saga_gateway_engine_chars_per_token', "Characters of prompt text per token of the engine, as learned from its answers' usage.prompt_tokens (4 before any).", (e) => e.rates.charsPerToken);
    perEngine('saga_gateway_engine_up', '1 while the engine is up, 0 while it is marked down.', (e) => (e.up ? 1 : 0));
    this.upstreamErrors = new Counter({ name: 'saga_gateway_upstream_errors_total', help: 'Failed upstream calls, by engine and reason (connect, timeout, reset, status_5xx, status_4xx, ...).', labelNames: ['engine', 'reason'] as const, registers });
    this.retries = new Counter({ name: 'saga_gateway_retries_total', help: 'Calls tried again on another engine after failing on this one before their first byte.', labelNames: ['engine'] as const, registers });
    this.steals = new Counter({ name: 'saga_gateway_steals_total', help: 'Queued calls moved to another engine by work stealing.', registers });
    this.sessionsEnded = new Counter({ name: 'saga_gateway_sessions_ended_total', help: 'Sessions ended: client (DELETE /saga/sessions/:id), idle (no call for the idle expiry).', labelNames: ['reason'] as const, registers });
    this.rejected = new Counter({ name: 'saga_gateway_rejected_total', help: 'Calls refused at admission: queue_full (429), no_engine (503).', labelNames: ['reason'] as const, registers });
    const tallied = <L extends string>(name: string, help: string, label: L, tally: Map<string, Cell>) =>
      new Counter<L>({
        name,
        help,
        labelNames: [label] as const,
        registers,
        collect() {
          this.reset();
          for (const [value, cell] of tally) this.inc({ [label]: value } as Partial<Record<L, string>>, cell.value);
        },
      });
    this.sessionRoutes = tallied('saga_gateway_session_routes_total', "Calls by where they went against their session's previous engine: home, moved, new (first call).", 'outcome', this.routes);
    this.tenantServiceTokens = tallied('saga_gateway_tenant_service_tokens_total', 'Tokens served per tenant: prompt + completion (from the engine usage, else estimated).', 'tenant', this.tally.service);
    this.tenantCalls = tallied('saga_gateway_tenant_calls_total', 'Calls answered per tenant.', 'tenant', this.tally.calls);
    this.tenantSloMet = tallied('saga_gateway_tenant_slo_met_total', "Calls whose slowdown was within their tenant's SLO.", 'tenant', this.tally.sloMet);
    this.tenantSlowdown = new Histogram({ name: 'saga_gateway_tenant_slowdown', help: "Per call: time from arrival at the gateway to the answer's end / time at the engine.", labelNames: ['tenant'] as const, buckets: SLOWDOWN_BUCKETS, registers });
    this.promptTokens = tallied('saga_gateway_prompt_tokens_total', 'Prompt tokens the engines reported (usage.prompt_tokens), for calls that reported cached tokens.', 'engine', this.tally.prompt);
    this.cachedTokens = tallied('saga_gateway_cached_tokens_total', 'Cached prompt tokens the engines reported (usage.prompt_tokens_details.cached_tokens).', 'engine', this.tally.cached);
    const cached = this.cached;
    new Gauge({
      name: 'saga_gateway_affinity_hit_rate',
      help: 'Cached prompt tokens / prompt tokens over the calls whose engine reported cached tokens (0 before any).',
      registers,
      collect() {
        this.set(cached.prompt > 0 ? cached.cached / cached.prompt : 0);
      },
    });
  }

  /** The metrics of one tenant, bound to its label. */
  tenant(name: string): TenantMetrics {
    let bound = this.tenants.get(name);
    if (bound === undefined) {
      bound = {
        serviceTokens: cell(this.tally.service, name),
        calls: cell(this.tally.calls, name),
        sloMet: cell(this.tally.sloMet, name),
        slowdown: this.tenantSlowdown.labels(name),
      };
      this.tenants.set(name, bound);
    }
    return bound;
  }

  /** Counts a call by where it went against its session's previous engine (home, moved, new). */
  sessionRoute(outcome: 'home' | 'moved' | 'new'): void {
    cell(this.routes, outcome).inc();
  }

  /** An engine's usage report of one call: counts towards the hit rate when it says what was cached. */
  usage(engine: string, promptTokens: number, cachedTokens: number | undefined): void {
    if (cachedTokens === undefined) return;
    cell(this.tally.prompt, engine).inc(promptTokens);
    cell(this.tally.cached, engine).inc(cachedTokens);
    this.cached.prompt += promptTokens;
    this.cached.cached += cachedTokens;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
