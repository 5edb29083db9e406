/**
 * Engine health: every engine is probed (GET /v1/models) when the gateway starts, which also learns the
 * models each serves; then every `health.intervalMs` the engines marked down are probed again and marked up
 * when they answer. Engines are marked down by failed calls (lib/router/scheduler.ts), not by probes of
 * engines that are up: live traffic says so sooner.
 */
import type { EngineState } from './engine_state';
import type { GatewayCall } from './gateway_call';
import type { Scheduler } from './scheduler';
import type { Upstream } from './upstream';

export class HealthChecks {
  private timer: NodeJS.Timeout | undefined;
  private probing = false;

  constructor(
    private readonly engines: readonly EngineState<GatewayCall>[],
    private readonly upstream: Upstream,
    private readonly scheduler: Scheduler,
    private readonly intervalMs: number,
  ) {}

  /** Probes every engine once; those that do not answer start down. */
  async probeAll(): Promise<void> {
    await Promise.all(this.engines.map((engine) => this.probe(engine, true)));
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async tick(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      await Promise.all(this.engines.filter((e) => !e.up).map((engine) => this.probe(engine, false)));
    } finally {
      this.probing = false;
    }
  }

  private async probe(engine: EngineState<GatewayCall>, markDownOnFailure: boolean): Promise<void> {
    try {
      engine.models = (await this.upstream.probe(engine)).map((model) => model.id);
      this.scheduler.markUp(engine);
    } catch (error) {
      if (markDownOnFailure) this.scheduler.markDown(engine, `probe failed: ${(error as Error).message}`);
    }
  }
}
