/** The tallied metrics write the exposition prom-client's own Histogram would, for the same observations. */
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { TalliedHistogram } from '../lib/engine/tally_metrics';

describe('TalliedHistogram', () => {
  it("writes what prom-client's Histogram writes: buckets (bounds included), +Inf, sum, count, per label value", async () => {
    const buckets = [0.005, 0.025, 0.1, 1, 10];
    const observations: [string, number][] = [['/a', 0], ['/a', 0.005], ['/a', 0.0051], ['/b', 3], ['/a', 11], ['/b', 0.1], ['/c"x', 1e-9]];
    const theirs = new Registry();
    const reference = new Histogram({ name: 'm_seconds', help: 'help "text"\\n', labelNames: ['route'] as const, buckets, registers: [theirs] });
    const ours = new Registry();
    const tallied = new TalliedHistogram('m_seconds', 'help "text"\\n', 'route', buckets, ours);
    for (const [route, value] of observations) {
      reference.observe({ route }, value);
      tallied.observe(route, value);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
    ours.resetMetrics();
    theirs.resetMetrics();
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('refuses what prom-client refuses: a value that is not a finite number', () => {
    const tallied = new TalliedHistogram('m', 'h', 'route', [1], new Registry());
    expect(() => tallied.observe('/a', Number.NaN)).toThrow(TypeError);
    expect(() => tallied.observe('/a', Number.POSITIVE_INFINITY)).toThrow(TypeError);
  });
});
