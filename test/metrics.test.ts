/**
 * lib/metrics: the statistics on hand-made inputs, the metrics of a hand-made run, and the report's shape.
 */
import { describe, expect, it } from 'vitest';
import { computeMetrics, geomean, jainIndex, mean, quantile, sloAttainment, speedup } from '../lib/metrics/metrics';
import { buildReport, renderTable, type ReportConfig } from '../lib/metrics/report';
import type { EngineRecord, TaskRecord } from '../lib/sim/cluster';
import { resolveClusterSpec, type SimulationResult } from '../lib/sim/simulate';

describe('statistics', () => {
  it('geomean', () => {
    expect(geomean([2, 8])).toBeCloseTo(4, 12);
    expect(geomean([1, 10, 100])).toBeCloseTo(10, 12);
    expect(geomean([5])).toBe(5);
    expect(geomean([])).toBeNaN();
    expect(geomean([1, 0])).toBeNaN();
  });

  it('quantiles interpolate between order statistics', () => {
    expect(quantile([3, 1, 2], 0.5)).toBe(2);
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile(Array.from({ length: 101 }, (_, i) => i), 0.99)).toBeCloseTo(99, 12);
    expect(quantile([7], 0.99)).toBe(7);
  });

  it("Jain's index: 1 when equal, 1/n when one takes all, (sum)^2 / (n sum of squares) otherwise", () => {
    expect(jainIndex([3, 3, 3])).toBeCloseTo(1, 12);
    expect(jainIndex([1, 0, 0, 0])).toBeCloseTo(0.25, 12);
    expect(jainIndex([1, 2])).toBeCloseTo(9 / 10, 12);
    expect(jainIndex([2])).toBe(1);
  });

  it('SLO attainment: share of slowdowns at most the SLO, globally or per tenant', () => {
    const slowdowns = [1, 1.5, 2, 2.5, 4];
    const tenants = ['a', 'a', 'b', 'b', 'b'];
    expect(sloAttainment(slowdowns, tenants)).toBeCloseTo(3 / 5, 12); // default 2.0, inclusive
    expect(sloAttainment(slowdowns, tenants, 1.5)).toBeCloseTo(2 / 5, 12);
    expect(sloAttainment(slowdowns, tenants, { b: 3 })).toBeCloseTo(4 / 5, 12); // a keeps 2.0
  });

  it('speedup vs baseline: geometric mean of per-task ratios', () => {
    expect(speedup([10, 40], [5, 10])).toBeCloseTo(Math.sqrt(2 * 4), 12);
    expect(speedup([3, 3], [3, 3])).toBe(1);
    expect(mean([1, 2, 3])).toBe(2);
  });
});

function task(index: number, tenant: string, arrivalS: number, endS: number, promptTokens: number, cachedTokens: number, outputTokens: number): TaskRecord {
  return { index, id: `t${index}`, tenant, kind: 'k', arrivalS, endS, calls: 1, callsFinished: 1, promptTokens, cachedTokens, outputTokens, preemptions: 0 };
}

function engine(id: number, capacityBlocks: number, occupiedBlockS: number, referencedBlockS: number, hitCachedBlockS: number): EngineRecord {
  return { id, capacityBlocks, iterations: 0, steps: 0, busyS: 0, prefillTokens: 0, outputTokens: 0, preemptions: 0, occupiedBlockS, referencedBlockS, hitCachedBlockS };
}

function run(name: string, tasks: TaskRecord[], engines: EngineRecord[], makespanS: number, oracle = false): SimulationResult {
  return {
    tasks,
    engines,
    makespanS,
    callsFinished: tasks.length,
    events: 0,
    steals: 0,
    policy: { name, label: oracle ? `${name} (bound)` : name, oracle },
    spec: resolveClusterSpec({ gpus: 1 }),
  };
}

describe('computeMetrics on a hand-made run', () => {
  const base = run(
    'vllm',
    [task(0, 'a', 0, 10, 1000, 600, 100), task(1, 'a', 5, 25, 1000, 400, 100), task(2, 'b', 10, 50, 2000, 1000, 200)],
    [engine(0, 100, 4000, 1000, 500), engine(1, 100, 2000, 500, 500)],
    50,
  );
  const better = run(
    'belady',
    [task(0, 'a', 0, 5, 1000, 900, 100), task(1, 'a', 5, 15, 1000, 800, 100), task(2, 'b', 10, 30, 2000, 1800, 200)],
    [engine(0, 100, 4000, 1000, 2000), engine(1, 100, 4000, 1000, 1000)],
    40,
    true,
  );
  const isolated = [5, 10, 10];

  it('TCT, slowdown, SLO and fairness', () => {
    const m = computeMetrics(base, base, isolated, undefined);
    expect(m.tasks).toBe(3);
    expect(m.tct.geomeanS).toBeCloseTo(Math.cbrt(10 * 20 * 40), 9);
    expect(m.tct.p50S).toBe(20);
    expect(m.speedupVsBaseline).toBe(1);
    // slowdowns 2, 2, 4: mean 8/3; SLO 2.0 met by two of three; tenants a: 2, b: 4.
    expect(m.slo.slowdown).toBeCloseTo(8 / 3, 12);
    expect(m.slo.attainment).toBeCloseTo(2 / 3, 12);
    expect(m.fairness.jain).toBeCloseTo(jainIndex([2, 4]), 12);
  });

  it('cache: hit rate, and miss ratio against the belady run (null without it)', () => {
    const m = computeMetrics(base, base, isolated, undefined);
    expect(m.cache.hitRate).toBeCloseTo(2000 / 4000, 12);
    expect(m.cache.missRatioVsBelady).toBeNull();
    const withBound = computeMetrics(base, base, isolated, better);
    expect(withBound.cache.missRatioVsBelady).toBeCloseTo(2000 / 500, 12);
    expect(computeMetrics(better, base, isolated, better).cache.missRatioVsBelady).toBe(1);
  });

  it('memory: useful (referenced + cached until a hit) and occupied block-time over capacity x time', () => {
    const m = computeMetrics(base, base, isolated, undefined);
    expect(m.memory.occupancy).toBeCloseTo(6000 / (200 * 50), 12);
    expect(m.memory.utilization).toBeCloseTo(2500 / (200 * 50), 12);
  });

  it('throughput: output tokens over the run; speedup of the better run', () => {
    expect(computeMetrics(base, base, isolated, undefined).throughput.outputTokensPerS).toBeCloseTo(400 / 50, 12);
    const m = computeMetrics(better, base, isolated, better);
    expect(m.speedupVsBaseline).toBeCloseTo(Math.cbrt((10 / 5) * (20 / 10) * (40 / 20)), 12);
    expect(m.policy).toBe('belady (bound)');
  });

  it('the JSON report has exactly the documented shape, baseline first, NaN as null', () => {
    const config: ReportConfig = {
      workload: 'hand',
      tasks: 3,
      calls: 3,
      ratePerS: null,
      seed: 1,
      gpus: 2,
      model: 'llama-3.1-8b',
      gpu: 'h100',
      tp: 1,
      engines: 2,
      blockSize: 16,
      kvBlocksPerEngine: 100,
      maxNumSeqs: 1024,
      maxNumBatchedTokens: 8192,
      policies: ['vllm', 'belady (bound)'],
      baseline: 'vllm',
      slo: 2,
    };
    const metrics = [computeMetrics(base, base, isolated, better), computeMetrics(better, base, isolated, better)];
    metrics[0].fairness.jain = NaN;
    const report = buildReport(config, metrics);
    expect(Object.keys(report)).toEqual(['config', 'results']);
    for (const r of report.results) {
      expect(Object.keys(r)).toEqual(['policy', 'tasks', 'tct', 'speedupVsBaseline', 'slo', 'cache', 'memory', 'throughput', 'fairness']);
      expect(Object.keys(r.tct)).toEqual(['geomeanS', 'p50S', 'p99S']);
      expect(Object.keys(r.slo)).toEqual(['slowdown', 'attainment']);
      expect(Object.keys(r.cache)).toEqual(['hitRate', 'missRatioVsBelady']);
      expect(Object.keys(r.memory)).toEqual(['utilization', 'occupancy']);
      expect(Object.keys(r.throughput)).toEqual(['outputTokensPerS']);
      expect(Object.keys(r.fairness)).toEqual(['jain']);
    }
    expect(report.results.map((r) => r.policy)).toEqual(['vllm', 'belady (bound)']);
    expect(report.results[0].fairness.jain).toBeNull();
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
    const table = renderTable(report);
    expect(table).toContain('belady (bound)');
    expect(table).toContain('speedup vs vllm');
  });
});
