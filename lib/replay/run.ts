/**
 * `saga replay` without the command line: every asked-for policy over one workload at one capacity,
 * with Bélády's miss count as the yardstick (run once, whether or not it was asked for).
 */
import type { Workload } from '../workloads/types';
import type { BackendName } from '../native';
import { type CapacitySpec, resolveCapacity } from './capacity';
import { type PolicyOutcome, replayPolicy } from './engine';
import { createReplayPolicy, isOracleEviction } from './policies';
import { ReplayStream } from './stream';

export const ORACLE = 'belady';

export interface PolicyResult extends PolicyOutcome {
  /** missedBlocks / Bélády's missedBlocks on the same stream and capacity (1 = optimal; null when Bélády misses nothing and the policy does). */
  missRatioVsBelady: number | null;
  /** Hits within each request's cached prefix / block reads. */
  prefixHitRate: number;
}

export interface ReplayReport {
  trace: {
    name: string;
    requests: number;
    blockReads: number;
    uniqueBlocks: number;
    blockSize: number;
  };
  capacityBlocks: number;
  results: PolicyResult[];
  /** What the bound is, for every output to say. */
  note: string;
}

export interface ReplayOptions {
  policies: string[];
  capacity: CapacitySpec;
  backend?: BackendName;
  /** Progress: the policy running, requests done, requests in all. */
  onProgress?: (policy: string, done: number, total: number) => void;
}

export const BOUND_NOTE =
  "belady is Bélády's MIN, the offline oracle that sees the whole future: an upper bound on any policy's hit rate, not a policy one can run";

export function runReplay(workload: Workload, options: ReplayOptions): ReplayReport {
  for (const name of options.policies) isOracleEviction(name); // throws ERR_SAGA_UNKNOWN_POLICY for an unknown name
  const stream = new ReplayStream(workload);
  const uniqueBlocks = stream.uniqueBlocks;
  const capacityBlocks = resolveCapacity(options.capacity, uniqueBlocks);
  const outcomes = new Map<string, PolicyOutcome>();
  const run = (name: string): PolicyOutcome => {
    let outcome = outcomes.get(name);
    if (outcome === undefined) {
      const policy = createReplayPolicy(name, stream);
      outcome = replayPolicy(stream, policy, capacityBlocks, {
        ...(options.backend === undefined ? {} : { backend: options.backend }),
        ...(options.onProgress === undefined ? {} : { onProgress: (done: number, total: number) => options.onProgress?.(name, done, total) }),
      });
      outcomes.set(name, outcome);
    }
    return outcome;
  };
  const oracle = run(ORACLE);
  const results = options.policies.map((name): PolicyResult => {
    const o = run(name);
    let missRatioVsBelady: number | null;
    if (oracle.missedBlocks > 0) missRatioVsBelady = o.missedBlocks / oracle.missedBlocks;
    else missRatioVsBelady = o.missedBlocks === 0 ? 1 : null;
    return { ...o, missRatioVsBelady, prefixHitRate: o.blockReads === 0 ? 0 : o.prefixHitBlocks / o.blockReads };
  });
  return {
    trace: {
      name: workload.name,
      requests: stream.requests,
      blockReads: stream.blockReads,
      uniqueBlocks,
      blockSize: workload.blockSize,
    },
    capacityBlocks,
    results,
    note: BOUND_NOTE,
  };
}

function thousands(n: number): string {
  return n.toLocaleString('en-US');
}

/** The report as a terminal table. */
export function formatReplayTable(report: ReplayReport): string {
  const t = report.trace;
  const share = t.uniqueBlocks === 0 ? '' : ` (${((100 * report.capacityBlocks) / t.uniqueBlocks).toFixed(2)}% of distinct blocks)`;
  const rows = report.results.map((r) => [
    r.bound ? `${r.policy} (bound)` : r.policy,
    r.hitRate.toFixed(4),
    thousands(r.missedBlocks),
    r.missRatioVsBelady === null ? 'n/a' : r.missRatioVsBelady.toFixed(3),
  ]);
  const header = ['policy', 'hit rate', 'missed blocks', 'miss ratio vs belady'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('   ');
  return [
    `trace      ${t.name}: ${thousands(t.requests)} requests, ${thousands(t.blockReads)} block reads, ${thousands(t.uniqueBlocks)} distinct blocks of ${t.blockSize} tokens`,
    `capacity   ${thousands(report.capacityBlocks)} blocks${share}`,
    '',
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    '',
    `hit rate = hit block reads / block reads. ${report.note}.`,
  ].join('\n');
}
