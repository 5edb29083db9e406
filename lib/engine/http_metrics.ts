/** Prometheus counts of HTTP requests by route and status, and their durations, for a Fastify server. */
import { performance } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { STATUS } from './openai_errors';
import { TalliedHistogram, cell, type Cell } from './tally_metrics';

/** Calls run from milliseconds (health, scrapes, short completions) to minutes (long generations behind a queue). */
const HTTP_DURATION_BUCKETS_S = [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** The route label of requests that matched no route, so that scanners cannot mint label values. */
const UNMATCHED_ROUTE = 'unmatched';
const MS_PER_S = 1000;

/**
 * HTTP requests by route and status, and their durations, counted when the response closes (streams
 * included). Counted as plain numbers per route and status (lib/engine/tally_metrics.ts) and handed to
 * prom-client when scraped.
 */
export function countHttpRequests(app: FastifyInstance, registry: Registry, prefix: string): void {
  const counts = new Map<string, Map<number, Cell>>();
  new Counter({
    name: `${prefix}_http_requests_total`,
    help: 'HTTP requests answered, by route and status (499: the client left first).',
    labelNames: ['route', 'status'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [route, byStatus] of counts) for (const [status, c] of byStatus) this.inc({ route, status: String(status) }, c.value);
    },
  });
  const durations = new TalliedHistogram(`${prefix}_http_request_duration_seconds`, 'Time from a request arriving to its response closing, by route.', 'route', HTTP_DURATION_BUCKETS_S, registry);
  app.addHook('onRequest', (request, reply, done) => {
    const startMs = performance.now();
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    // 'close' comes once per response (a listener by `on` costs less than by `once`).
    reply.raw.on('close', () => {
      const status = reply.raw.writableEnded ? reply.raw.statusCode : STATUS.clientClosedRequest;
      let byStatus = counts.get(route);
      if (byStatus === undefined) counts.set(route, (byStatus = new Map()));
      cell(byStatus, status).inc();
      durations.observe(route, (performance.now() - startMs) / MS_PER_S);
    });
    done();
  });
}
