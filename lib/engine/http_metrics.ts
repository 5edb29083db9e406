/** Prometheus counts of HTTP requests by route and status, and their durations, for a Fastify server. */
import { performance } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, type Registry } from 'prom-client';
import { STATUS } from './openai_errors';

/** Calls run from milliseconds (health, scrapes, short completions) to minutes (long generations behind a queue). */
const HTTP_DURATION_BUCKETS_S = [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** The route label of requests that matched no route, so that scanners cannot mint label values. */
const UNMATCHED_ROUTE = 'unmatched';
const MS_PER_S = 1000;

/** HTTP requests by route and status, and their durations, counted when the response closes (streams included). */
export function countHttpRequests(app: FastifyInstance, registry: Registry, prefix: string): void {
  const requests = new Counter({
    name: `${prefix}_http_requests_total`,
    help: 'HTTP requests answered, by route and status (499: the client left first).',
    labelNames: ['route', 'status'] as const,
    registers: [registry],
  });
  const durations = new Histogram({
    name: `${prefix}_http_request_duration_seconds`,
    help: 'Time from a request arriving to its response closing, by route.',
    labelNames: ['route'] as const,
    buckets: HTTP_DURATION_BUCKETS_S,
    registers: [registry],
  });
  app.addHook('onRequest', (request, reply, done) => {
    const startMs = performance.now();
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    // 'close' comes once per response (a listener by `on` costs less than by `once`).
    reply.raw.on('close', () => {
      const status = reply.raw.writableEnded ? reply.raw.statusCode : STATUS.clientClosedRequest;
      requests.inc({ route, status: String(status) });
      durations.observe({ route }, (performance.now() - startMs) / MS_PER_S);
    });
    done();
  });
}
