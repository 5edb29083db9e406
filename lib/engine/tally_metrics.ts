/**
 * Per-request metrics counted as plain numbers and handed to prom-client only when scraped. prom-client
 * hashes the label set into a string on every increment and observation (bound children included) and
 * builds a few objects each time; on a server's hot path that is work and garbage per request. Here a
 * label value is looked up in a Map (one label) and its numbers are bumped in place.
 *
 * `TalliedHistogram` is a metric of its own that a prom-client Registry takes (`registerMetric`): it
 * writes the same exposition as a prom-client Histogram of the same name, labels and buckets would
 * (`_bucket` lines with `le` first, cumulative, then `+Inf`, `_sum`, `_count`).
 */
import type { Registry } from 'prom-client';

/** A running count of one label value. */
export class Cell {
  value = 0;

  inc(value = 1): void {
    this.value += value;
  }
}

/** The cell of `key` in `tally`, made at its first use. */
export function cell<K>(tally: Map<K, Cell>, key: K): Cell {
  let found = tally.get(key);
  if (found === undefined) {
    found = new Cell();
    tally.set(key, found);
  }
  return found;
}

/** One label value's observations: per bucket (not cumulative; the last is +Inf), their sum and count. */
export class HistogramTally {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

interface MetricValue {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
  readonly metricName: string;
  /** As prom-client's histogram without exemplars gives them: null on buckets, undefined on sum and count. */
  readonly exemplar: null | undefined;
}

/** A histogram with one label, tallied per label value; registered in `registry` under `name`. */
export class TalliedHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: readonly L[];
  private readonly tallies = new Map<string, HistogramTally>();
  private readonly bounds: readonly number[];

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly label: L,
    buckets: readonly number[],
    registry: Registry,
  ) {
    this.labelNames = [label];
    this.bounds = [...buckets];
    // The Registry reads a metric through get() (and resets it through reset()); its type names prom-client's own classes.
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The tally of one label value: observe on it directly (no lookup per observation). */
  labels(value: string): HistogramTally {
    let tally = this.tallies.get(value);
    if (tally === undefined) {
      tally = new HistogramTally(this.bounds);
      this.tallies.set(value, tally);
    }
    return tally;
  }

  observe(value: string, observation: number): void {
    this.labels(value).observe(observation);
  }

  reset(): void {
    this.tallies.clear();
  }

  get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: string }> {
    const values: MetricValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const [labelValue, tally] of this.tallies) {
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += tally.counts[i];
        values.push({ labels: { le: bound, [this.label]: labelValue }, value: cumulative, metricName: bucket, exemplar: null });
      });
      values.push({ labels: { le: '+Inf', [this.label]: labelValue }, value: tally.count, metricName: bucket, exemplar: null });
      values.push({ labels: { [this.label]: labelValue }, value: tally.sum, metricName: `${this.name}_sum`, exemplar: undefined });
      values.push({ labels: { [this.label]: labelValue }, value: tally.count, metricName: `${this.name}_count`, exemplar: undefined });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }
}
