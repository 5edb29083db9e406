/**
 * `saga serve`, the program-aware gateway: `startGateway(config)` listens and schedules calls over the
 * configured engines until `close()`; `loadGatewayConfig(file)` / `parseGatewayConfig(json)` check a
 * config. The parts: config.ts (the file), server.ts (HTTP), scheduler.ts (queues, routing, stealing,
 * faults), upstream.ts (calls to engines, hints), health.ts (probes), metrics.ts (Prometheus).
 */
import { GATEWAY } from '../constants';
import { parseGatewayConfig, type GatewayConfig, type GatewayConfigInput } from './config';
import { EngineState } from './engine_state';
import type { GatewayCall } from './gateway_call';
import { HealthChecks } from './health';
import { GatewayMetrics } from './metrics';
import { createGatewayPolicies, type GatewayPolicies } from './policies';
import { Scheduler } from './scheduler';
import { createGatewayServer } from './server';
import { SessionTable } from './sessions';
import { Upstream } from './upstream';

export { ENGINE_KINDS, GATEWAY_POLICIES, loadGatewayConfig, parseGatewayConfig } from './config';
export type { EngineConfig, EngineKind, GatewayConfig, GatewayConfigInput, GatewayPolicyName, TenantConfig } from './config';
export { ENGINE_HEADER } from './upstream';

export interface GatewayOptions {
  /** Override `listen` (0: any free port). */
  readonly port?: number;
  readonly host?: string;
  /** Fastify's request log (default off). */
  readonly logger?: boolean;
}

export interface Gateway {
  /** `http://host:port`, without a trailing slash. */
  readonly url: string;
  readonly port: number;
  readonly config: GatewayConfig;
  /** The policy objects in use (tests, reports). */
  readonly policies: GatewayPolicies;
  /** Engine states by config order: up, calls in flight and queued, calls placed there per second lately (tests, reports). */
  readonly engines: readonly { readonly name: string; readonly up: boolean; readonly inFlight: number; readonly queued: number; readonly arrivalsPerS: number }[];
  /** Prometheus text of the gateway's metrics. */
  metrics(): Promise<string>;
  /** Graceful shutdown: stops accepting, lets every accepted call finish, then closes. Idempotent. */
  close(): Promise<void>;
}

export async function startGateway(input: GatewayConfig | GatewayConfigInput, options: GatewayOptions = {}): Promise<Gateway> {
  const config = parseGatewayConfig(input);
  const engines = config.engines.map((engineConfig, i) => new EngineState<GatewayCall>(i, engineConfig));
  const metrics = new GatewayMetrics(engines);
  const policies = createGatewayPolicies(config.policy, config.tenants, {
    decodePrice: (engineId) => engines[engineId].rates.decodePrice,
    enginesSized: config.engines.every((e) => e.kvTokens !== undefined),
  });
  const upstream = new Upstream(engines, config);
  const scheduler = new Scheduler(engines, policies, config, metrics, upstream.run);
  const sessions = new SessionTable();
  const health = new HealthChecks(engines, upstream, scheduler, config.health.intervalMs);
  await health.probeAll();
  health.start();
  const app = createGatewayServer({ config, engines, scheduler, upstream, metrics, sessions, logger: options.logger ?? false });
  // Sessions idle past every call's time limit have ended: their homes and fair-share programs are let go.
  const idleMs = Math.max(GATEWAY.sessionIdleS * 1000, config.timeouts.requestMs);
  const sweep = setInterval(() => {
    const nowS = scheduler.nowS();
    for (const call of sessions.expire(Date.now(), idleMs)) {
      scheduler.sessionEnded(call, nowS);
      metrics.sessionsEnded.inc({ reason: 'idle' });
    }
  }, Math.min(idleMs, 60_000));
  sweep.unref();
  try {
    await app.listen({ host: options.host ?? config.listen.host, port: options.port ?? config.listen.port });
  } catch (error) {
    health.stop();
    clearInterval(sweep);
    await upstream.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.listen.port;
  const host = options.host ?? config.listen.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    config,
    policies,
    get engines() {
      const nowS = scheduler.nowS();
      return engines.map((e) => ({ name: e.name, up: e.up, inFlight: e.inFlight, queued: e.queue.length, arrivalsPerS: e.arrivalsPerS(nowS) }));
    },
    metrics: () => metrics.text(),
    close() {
      closing ??= (async () => {
        health.stop();
        clearInterval(sweep);
        // Fastify stops accepting (new requests on open connections get 503) and waits for open requests.
        const serverClosed = app.close();
        await scheduler.idle();
        app.server.closeIdleConnections();
        await serverClosed;
        scheduler.close();
        await upstream.close();
      })();
      return closing;
    },
  };
}
