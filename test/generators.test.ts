/**
 * The workload generators (lib/workloads/generators): determinism, the block-hash structure of prompts
 * (prefix chaining, shared scaffolds, replaced observations), arrivals, gaps and stops, and the
 * parameter table's ranges against the sources it cites.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SagaError } from '../lib/errors';
import {
  DEFAULT_OPTIONS,
  SWEBENCH,
  WEBARENA,
  generateMixed,
  generateSwebench,
  generateWebarena,
  generateWorkload,
} from '../lib/workloads/generators';
import { chainBlock, toBigInt } from '../lib/workloads/generators/build';
import { SWEBENCH_TOOLS, WEBARENA_ACTIONS, defaultTenants, type LognormalSpec } from '../lib/workloads/generators/parameters';
import { Random, lognormal, lognormalMean, poissonArrivals, streamRandom } from '../lib/workloads/generators/rng';
import type { Call, Task, Workload } from '../lib/workloads/types';

const NAMES = ['swebench', 'webarena', 'mixed'] as const;

/** Leading blocks two prompts share. */
function sharedPrefix(a: BigUint64Array, b: BigUint64Array): number {
  const n = Math.min(a.length, b.length);
  let k = 0;
  while (k < n && a[k] === b[k]) k++;
  return k;
}

function allCalls(w: Workload): Call[] {
  return w.tasks.flatMap((t) => t.calls);
}

/**
 * A plain copy for deep equality: each call's hashes as (offset, length) in the workload's one buffer,
 * and the buffer as a SHA-256 digest.
 */
function snapshot(w: Workload): { name: string; blockSize: number; hashes: string; tasks: unknown[] } {
  const buffers = new Set(allCalls(w).map((c) => c.blockHashes.buffer));
  const digest = createHash('sha256');
  for (const b of buffers) digest.update(new Uint8Array(b as ArrayBuffer));
  return {
    name: w.name,
    blockSize: w.blockSize,
    hashes: digest.digest('hex'),
    tasks: w.tasks.map((t) => ({ ...t, calls: t.calls.map((c) => ({ ...c, blockHashes: [c.blockHashes.byteOffset, c.blockHashes.length] })) })),
  };
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) * q)];
}

function thrownCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof SagaError ? err.code : `not a SagaError: ${String(err)}`;
  }
  return undefined;
}

// One workload of each kind, shared by the structural tests.
const swe = generateSwebench({ tasks: 60, seed: 11 });
const web = generateWebarena({ tasks: 80, seed: 12 });
const mix = generateMixed({ tasks: 80, seed: 13 });

describe('determinism', () => {
  it.each(NAMES)('%s: the same options give the identical workload, hashes included', (name) => {
    const a = generateWorkload(name, { tasks: 12, seed: 5 });
    const b = generateWorkload(name, { tasks: 12, seed: 5 });
    expect(snapshot(a)).toEqual(snapshot(b));
  });

  it.each(NAMES)('%s: another seed gives another workload', (name) => {
    const a = generateWorkload(name, { tasks: 12, seed: 5 });
    const b = generateWorkload(name, { tasks: 12, seed: 6 });
    expect(a.tasks.map((t) => t.arrivalS)).not.toEqual(b.tasks.map((t) => t.arrivalS));
    expect(a.tasks.map((t) => t.calls.map((c) => c.outputTokens))).not.toEqual(b.tasks.map((t) => t.calls.map((c) => c.outputTokens)));
    // Task-specific blocks differ; the scaffold (block 0) is the tenant's, whatever the seed.
    expect(a.tasks[0].calls[0].blockHashes[0]).toBe(b.tasks[0].calls[0].blockHashes[0]);
    const last = (w: Workload) => w.tasks[0].calls[w.tasks[0].calls.length - 1].blockHashes;
    expect(last(a)[last(a).length - 1]).not.toBe(last(b)[last(b).length - 1]);
  });

  it('the rate moves arrivals, not programs; more tasks append tasks without changing earlier ones', () => {
    const a = generateSwebench({ tasks: 10, seed: 3, ratePerS: 0.1 });
    const b = generateSwebench({ tasks: 10, seed: 3, ratePerS: 1 });
    const c = generateSwebench({ tasks: 15, seed: 3, ratePerS: 0.1 });
    const programs = (w: Workload) => (snapshot(w).tasks as Array<Task & { arrivalS?: number }>).map(({ arrivalS: _a, ...rest }) => rest);
    expect(programs(a)).toEqual(programs(b));
    expect(snapshot(a).hashes).toBe(snapshot(b).hashes);
    expect(b.tasks[9].arrivalS).toBeCloseTo(a.tasks[9].arrivalS / 10, 9);
    // The first 10 tasks of c are a's, hashes included (c's buffer starts with a's).
    expect(programs(c).slice(0, 10)).toEqual(programs(a));
    const bufA = a.tasks[0].calls[0].blockHashes.buffer as ArrayBuffer;
    const bufC = c.tasks[0].calls[0].blockHashes.buffer as ArrayBuffer;
    expect(Buffer.from(bufC, 0, bufA.byteLength).equals(Buffer.from(bufA))).toBe(true);
  });
});

describe('prompts as prefix-chained block hashes', () => {
  it('no hash is 0n, and every call hashes exactly its full blocks', () => {
    for (const w of [swe, web, mix]) {
      for (const c of allCalls(w)) {
        expect(c.blockHashes.length).toBe(Math.floor(c.promptTokens / w.blockSize));
        expect(c.blockHashes.includes(0n)).toBe(false);
      }
    }
  });

  it('all calls of a workload are views of one BigUint64Array', () => {
    for (const w of [swe, web, mix]) {
      const buffers = new Set(allCalls(w).map((c) => c.blockHashes.buffer));
      expect(buffers.size).toBe(1);
      expect(allCalls(w)[0].blockHashes).toBeInstanceOf(BigUint64Array);
    }
  });

  it('swebench: call i+1 starts with all of call i blocks (reuse depth 1) unless the context was compacted', () => {
    let pairs = 0;
    let full = 0;
    for (const t of swe.tasks) {
      for (let i = 0; i + 1 < t.calls.length; i++) {
        const a = t.calls[i];
        const b = t.calls[i + 1];
        pairs++;
        if (b.promptTokens >= a.promptTokens) {
          expect(sharedPrefix(a.blockHashes, b.blockHashes)).toBe(a.blockHashes.length);
          // ...and shares storage with it: call i's view is a prefix of call i+1's.
          expect(a.blockHashes.byteOffset).toBe(b.blockHashes.byteOffset);
          full++;
        }
      }
    }
    expect(full / pairs).toBeGreaterThan(0.97); // [CC] measured 97.7% full reuse after a tool call
  });

  it('swebench: a compaction keeps the scaffold and the issue, drops the history, and the prompt then grows again', () => {
    const w = generateSwebench({ tasks: 8, seed: 2, params: { compactAtTokens: 40_000, keptAfterCompactionTokens: { median: 4000, p90: 8000 } } });
    let compactions = 0;
    for (const t of w.tasks) {
      const head = Math.floor((SWEBENCH.scaffoldTokens + SWEBENCH.instanceTemplateTokens + 20) / w.blockSize);
      for (let i = 0; i + 1 < t.calls.length; i++) {
        const a = t.calls[i];
        const b = t.calls[i + 1];
        if (b.promptTokens < a.promptTokens) {
          compactions++;
          const shared = sharedPrefix(a.blockHashes, b.blockHashes);
          expect(shared).toBeGreaterThanOrEqual(head);
          expect(shared).toBeLessThan(a.blockHashes.length);
        }
        expect(a.promptTokens).toBeLessThanOrEqual(40_000 + SWEBENCH.tools.test.resultTokens.max! + SWEBENCH.outputTokensToolUse.max!);
      }
    }
    expect(compactions).toBeGreaterThan(0);
  });

  it('webarena: step i+1 reuses a strict prefix of step i, ending before the replaced observation', () => {
    const scaffoldBlocks = Math.floor(WEBARENA.scaffoldTokens / web.blockSize);
    const depths: number[] = [];
    for (const t of web.tasks) {
      for (let i = 0; i + 1 < t.calls.length; i++) {
        const a = t.calls[i].blockHashes;
        const b = t.calls[i + 1].blockHashes;
        const k = sharedPrefix(a, b);
        expect(k).toBeLessThan(a.length);
        expect(k).toBeGreaterThanOrEqual(scaffoldBlocks);
        if (k < b.length) expect(b[k]).not.toBe(a[k]);
        // The shared part is the prompt up to the observation: at least the previous step's shared part.
        if (i > 0) expect(k).toBeGreaterThanOrEqual(sharedPrefix(t.calls[i - 1].blockHashes, a));
        depths.push(k / a.length);
      }
    }
    const mean = depths.reduce((x, y) => x + y, 0) / depths.length;
    expect(mean).toBeGreaterThan(0.2);
    expect(mean).toBeLessThan(0.9);
  });

  it('the scaffold has the same hashes in every task of a tenant, and different ones across tenants', () => {
    const byTenant = new Map<string, BigUint64Array[]>();
    for (const t of mix.tasks) {
      const list = byTenant.get(t.tenant) ?? [];
      list.push(t.calls[0].blockHashes);
      byTenant.set(t.tenant, list);
    }
    expect(byTenant.size).toBe(3);
    const firsts: bigint[] = [];
    for (const [tenant, prompts] of byTenant) {
      const kind = mix.tasks.find((t) => t.tenant === tenant)!.kind;
      const scaffoldBlocks = Math.floor((kind === 'swebench' ? SWEBENCH : WEBARENA).scaffoldTokens / mix.blockSize);
      for (const p of prompts) {
        expect(sharedPrefix(p, prompts[0])).toBeGreaterThanOrEqual(scaffoldBlocks);
      }
      // Past the scaffold (the task's own instruction) tasks differ.
      expect(new Set(prompts.map((p) => p[scaffoldBlocks + 1])).size).toBe(prompts.length);
      firsts.push(prompts[0][0]);
    }
    expect(new Set(firsts).size).toBe(3);
  });

  it('different content never gets the same hash across a workload (position and owner are part of the content)', () => {
    // The owner of block k of a prompt: the tenant's scaffold while k is inside it, else the task. Only
    // the blocks a call does not share with the previous call of its task are new.
    const owner = new Map<bigint, string>();
    let clashes = 0;
    for (const t of mix.tasks) {
      const scaffoldBlocks = Math.floor((t.kind === 'swebench' ? SWEBENCH : WEBARENA).scaffoldTokens / mix.blockSize);
      let prev: BigUint64Array = new BigUint64Array(0);
      for (const c of t.calls) {
        const h = c.blockHashes;
        for (let k = sharedPrefix(prev, h); k < h.length; k++) {
          const who = k < scaffoldBlocks ? `${t.tenant}#${k}` : `${t.id}#${k}`;
          const seen = owner.get(h[k]);
          if (seen === undefined) owner.set(h[k], who);
          else if (seen !== who) clashes++;
        }
        prev = h;
      }
    }
    expect(clashes).toBe(0);
    expect(owner.size).toBeGreaterThan(50_000);
  });

  it('chainBlock: a million chained hashes and siblings are all distinct, nonzero, with balanced bits', () => {
    const n = 500_000;
    const out = new BigUint64Array(3 * n);
    const pair = new Uint32Array(2);
    let hi = 0xcbf29ce4;
    let lo = 0x84222325;
    for (let i = 0; i < n; i++) {
      chainBlock(hi, lo, 7, i, pair); // one long chain
      hi = pair[0];
      lo = pair[1];
      out[i] = toBigInt(hi, lo);
      chainBlock(0x12345678, 0x9abcdef0, i >>> 3, i & 7, pair); // siblings of one parent
      out[n + i] = toBigInt(pair[0], pair[1]);
      chainBlock(i, 0, 1, 0, pair); // the same content after different parents
      out[2 * n + i] = toBigInt(pair[0], pair[1]);
    }
    const sorted = out.slice().sort();
    for (let i = 1; i < sorted.length; i++) if (sorted[i] === sorted[i - 1]) throw new Error(`repeated hash ${sorted[i]}`);
    expect(sorted[0]).not.toBe(0n);
    for (let bit = 0n; bit < 64n; bit++) {
      let ones = 0;
      for (let i = 0; i < 20_000; i++) ones += Number((out[i * 7] >> bit) & 1n);
      expect(Math.abs(ones / 20_000 - 0.5)).toBeLessThan(0.02);
    }
  });
});

describe('arrivals, gaps, stops, tools', () => {
  it('arrivals are sorted; task ids unique', () => {
    for (const w of [swe, web, mix]) {
      for (let i = 1; i < w.tasks.length; i++) expect(w.tasks[i].arrivalS).toBeGreaterThanOrEqual(w.tasks[i - 1].arrivalS);
      expect(w.tasks[0].arrivalS).toBeGreaterThan(0);
      expect(new Set(w.tasks.map((t) => t.id)).size).toBe(w.tasks.length);
    }
  });

  it('arrivals form a Poisson process at the asked rate', () => {
    const w = generateWebarena({ tasks: 600, ratePerS: 2, seed: 9 });
    const n = w.tasks.length;
    expect(n / w.tasks[n - 1].arrivalS).toBeGreaterThan(2 * 0.85);
    expect(n / w.tasks[n - 1].arrivalS).toBeLessThan(2 * 1.15);
    // Inter-arrival times: exponential (mean 1/rate, coefficient of variation 1).
    const gaps = poissonArrivals(streamRandom(4, 0), 20_000, 0.5).map((t, i, a) => (i === 0 ? t : t - a[i - 1]));
    const mean = gaps.reduce((x, y) => x + y, 0) / gaps.length;
    const sd = Math.sqrt(gaps.reduce((x, y) => x + (y - mean) ** 2, 0) / gaps.length);
    expect(mean).toBeCloseTo(2, 0);
    expect(Math.abs(mean - 2) / 2).toBeLessThan(0.03);
    expect(Math.abs(sd / mean - 1)).toBeLessThan(0.05);
  });

  it('gaps are non-negative and finite, 0 after the last call; tool_use then end_turn; tools from the kind', () => {
    for (const w of [swe, web, mix]) {
      for (const t of w.tasks) {
        const tools: readonly string[] = t.kind === 'swebench' ? SWEBENCH_TOOLS : WEBARENA_ACTIONS;
        t.calls.forEach((c, i) => {
          expect(Number.isFinite(c.gapAfterS)).toBe(true);
          expect(c.gapAfterS).toBeGreaterThanOrEqual(0);
          expect(Number.isInteger(c.outputTokens) && c.outputTokens > 0).toBe(true);
          if (i === t.calls.length - 1) {
            expect(c.gapAfterS).toBe(0);
            expect(c.stop).toBe('end_turn');
            expect(c.toolKind).toBeUndefined();
          } else {
            expect(c.stop).toBe('tool_use');
            expect(tools).toContain(c.toolKind);
          }
        });
      }
    }
  });

  it('swebench: test runs take seconds to a minute; webarena: browser actions a few seconds', () => {
    const w = generateSwebench({ tasks: 150, seed: 21 });
    const gapsOf = (kind: string) => allCalls(w).filter((c) => c.toolKind === kind).map((c) => c.gapAfterS);
    const test = gapsOf('test');
    expect(quantile(test, 0.5)).toBeGreaterThan(5);
    expect(quantile(test, 0.5)).toBeLessThan(20);
    expect(quantile(test, 0.9)).toBeGreaterThan(30);
    expect(quantile(test, 0.9)).toBeLessThan(120);
    expect(quantile(gapsOf('read'), 0.5)).toBeLessThan(quantile(test, 0.5));
    const browse = allCalls(web).filter((c) => c.stop === 'tool_use').map((c) => c.gapAfterS);
    expect(Math.min(...browse)).toBeGreaterThanOrEqual(WEBARENA.waitAfterActionS);
    expect(quantile(browse, 0.5)).toBeLessThan(5);
    expect(quantile(browse, 0.9)).toBeLessThan(8);
  });

  it('swebench contexts grow to tens of thousands of tokens; webarena prompts stay at a few thousand', () => {
    const lastPrompt = (w: Workload) => w.tasks.map((t) => t.calls[t.calls.length - 1].promptTokens);
    expect(quantile(lastPrompt(swe), 0.5)).toBeGreaterThan(20_000);
    expect(quantile(lastPrompt(swe), 0.5)).toBeLessThan(150_000);
    expect(quantile(lastPrompt(web), 0.5)).toBeGreaterThan(2_000);
    expect(quantile(lastPrompt(web), 0.5)).toBeLessThan(15_000);
    const calls = swe.tasks.map((t) => t.calls.length);
    const mean = calls.reduce((x, y) => x + y, 0) / calls.length;
    expect(mean).toBeGreaterThan(20); // [AGENTS] 20-60 calls per task on average
    expect(mean).toBeLessThan(60);
    expect(Math.max(...web.tasks.map((t) => t.calls.length))).toBeLessThanOrEqual(30); // [WARUN] max_steps
  });
});

describe('mixed', () => {
  it('gives each default tenant its kind and roughly its share of arrivals', () => {
    const w = generateMixed({ tasks: 600, seed: 4, ratePerS: 1 });
    const specs = defaultTenants(3);
    const total = specs.reduce((x, s) => x + s.share, 0);
    for (const spec of specs) {
      const mine = w.tasks.filter((t) => t.tenant === spec.name);
      expect(mine.every((t) => t.kind === spec.kind)).toBe(true);
      expect(Math.abs(mine.length / w.tasks.length - spec.share / total)).toBeLessThan(0.07); // ~3.5 sd
    }
  });

  it('takes a count or a list of tenants, with per-tenant parameters', () => {
    expect(new Set(generateMixed({ tasks: 80, seed: 1, tenants: 5 }).tasks.map((t) => t.tenant)).size).toBe(5);
    const w = generateMixed({
      tasks: 40,
      seed: 1,
      tenants: [
        { name: 'fast', kind: 'webarena', share: 3, params: { stepsPerTask: { median: 3, p90: 4, min: 2, max: 4 } } },
        { name: 'slow', kind: 'swebench', share: 1, params: { callsPerTask: { median: 6, p90: 8, min: 5, max: 8 } } },
      ],
    });
    for (const t of w.tasks) {
      expect(t.kind).toBe(t.tenant === 'fast' ? 'webarena' : 'swebench');
      expect(t.calls.length).toBeLessThanOrEqual(t.tenant === 'fast' ? 4 : 8);
    }
  });

  it('rejects duplicate tenant names, unknown kinds and bad shares', () => {
    expect(thrownCode(() => generateMixed({ tenants: [{ name: 'a', kind: 'swebench', share: 1 }, { name: 'a', kind: 'webarena', share: 1 }] }))).toBe('ERR_SAGA_BAD_ARGUMENT');
    expect(thrownCode(() => generateMixed({ tenants: [{ name: 'a', kind: 'chat' as 'swebench', share: 1 }] }))).toBe('ERR_SAGA_BAD_ARGUMENT');
    expect(thrownCode(() => generateMixed({ tenants: [{ name: 'a', kind: 'swebench', share: 0 }] }))).toBe('ERR_SAGA_BAD_ARGUMENT');
    expect(thrownCode(() => generateMixed({ tenants: 0 }))).toBe('ERR_SAGA_BAD_ARGUMENT');
  });
});

describe('options', () => {
  it('uses the defaults (blockSize 16, vLLM default) and honours blockSize', () => {
    const w = generateWorkload('webarena');
    expect(w.blockSize).toBe(16);
    expect(w.tasks.length).toBe(DEFAULT_OPTIONS.tasks);
    expect(w.name).toContain(`seed=${DEFAULT_OPTIONS.seed}`);
    const big = generateWorkload('swebench', { tasks: 3, blockSize: 64, seed: 1 });
    const small = generateWorkload('swebench', { tasks: 3, blockSize: 16, seed: 1 });
    expect(big.blockSize).toBe(64);
    expect(big.tasks.map((t) => t.calls.map((c) => c.promptTokens))).toEqual(small.tasks.map((t) => t.calls.map((c) => c.promptTokens)));
    for (const c of allCalls(big)) expect(c.blockHashes.length).toBe(Math.floor(c.promptTokens / 64));
    expect(generateWorkload('swebench', { tasks: 0 }).tasks).toEqual([]);
  });

  it('rejects bad options and unknown generators with ERR_SAGA_BAD_ARGUMENT', () => {
    for (const bad of [{ tasks: -1 }, { tasks: 1.5 }, { ratePerS: 0 }, { ratePerS: Number.NaN }, { seed: 0.5 }, { blockSize: 0 }]) {
      expect(thrownCode(() => generateWorkload('swebench', bad))).toBe('ERR_SAGA_BAD_ARGUMENT');
    }
    expect(thrownCode(() => generateWorkload('chatbot', {}))).toBe('ERR_SAGA_BAD_ARGUMENT');
    expect(thrownCode(() => generateWorkload('swebench', { tenants: 2 }))).toBe('ERR_SAGA_BAD_ARGUMENT');
    expect(thrownCode(() => generateWorkload('mixed', { params: {} }))).toBe('ERR_SAGA_BAD_ARGUMENT');
    expect(thrownCode(() => generateSwebench({ params: { callsPerTask: { median: 10, p90: 5 } } }))).toBe('ERR_SAGA_BAD_ARGUMENT');
    expect(thrownCode(() => generateWebarena({ params: { scaffoldTokens: -3 } }))).toBe('ERR_SAGA_BAD_ARGUMENT');
  });

  it('keeps its invariants for any seed and block size (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e9, max: 1e9 }), fc.constantFrom(1, 8, 16, 32, 64), fc.constantFrom(...NAMES), (seed, blockSize, name) => {
        const w = generateWorkload(name, { tasks: 3, seed, blockSize, ratePerS: 0.5 });
        for (const t of w.tasks) {
          t.calls.forEach((c, i) => {
            expect(c.blockHashes.length).toBe(Math.floor(c.promptTokens / blockSize));
            expect(c.blockHashes.includes(0n)).toBe(false);
            expect(c.gapAfterS).toBeGreaterThanOrEqual(0);
            if (i > 0 && t.kind === 'webarena') expect(sharedPrefix(t.calls[i - 1].blockHashes, c.blockHashes)).toBeLessThan(t.calls[i - 1].blockHashes.length);
          });
          expect(t.calls[t.calls.length - 1].gapAfterS).toBe(0);
        }
      }),
      { numRuns: 25 },
    );
  });
});

describe('parameters: ranges and their sources', () => {
  const lognormals: Array<[string, LognormalSpec]> = [
    ['swebench.issueTokens', SWEBENCH.issueTokens],
    ['swebench.callsPerTask', SWEBENCH.callsPerTask],
    ['swebench.outputTokensToolUse', SWEBENCH.outputTokensToolUse],
    ['swebench.outputTokensEndTurn', SWEBENCH.outputTokensEndTurn],
    ['swebench.keptAfterCompactionTokens', SWEBENCH.keptAfterCompactionTokens],
    ...SWEBENCH_TOOLS.flatMap((t): Array<[string, LognormalSpec]> => [
      [`swebench.tools.${t}.gapS`, SWEBENCH.tools[t].gapS],
      [`swebench.tools.${t}.resultTokens`, SWEBENCH.tools[t].resultTokens],
    ]),
    ['webarena.objectiveTokens', WEBARENA.objectiveTokens],
    ['webarena.stepsPerTask', WEBARENA.stepsPerTask],
    ['webarena.observationTokens', WEBARENA.observationTokens],
    ['webarena.outputTokens', WEBARENA.outputTokens],
    ...WEBARENA_ACTIONS.map((a): [string, LognormalSpec] => [`webarena.actions.${a}.executeS`, WEBARENA.actions[a].executeS]),
  ];

  it.each(lognormals)('%s is a drawable lognormal with min <= median <= p90 <= max', (_name, spec) => {
    expect(spec.median).toBeGreaterThan(0);
    expect(spec.p90).toBeGreaterThanOrEqual(spec.median);
    expect(spec.min ?? 0).toBeLessThanOrEqual(spec.median);
    expect(spec.max ?? Infinity).toBeGreaterThanOrEqual(spec.p90);
  });

  it('tool and action shares sum to 1', () => {
    expect(SWEBENCH_TOOLS.reduce((x, t) => x + SWEBENCH.tools[t].share, 0)).toBeCloseTo(1, 9);
    expect(WEBARENA_ACTIONS.reduce((x, a) => x + WEBARENA.actions[a].share, 0)).toBeCloseTo(1, 9);
  });

  it('matches the cited figures', () => {
    expect(DEFAULT_OPTIONS.blockSize).toBe(16); // vLLM's default block size
    expect(SWEBENCH.scaffoldTokens).toBe(2767 + 11899); // [CC] system + tool schema p50
    expect(SWEBENCH.outputTokensToolUse).toMatchObject({ median: 236, p90: 874 }); // [CC]
    const calls = lognormalMean(SWEBENCH.callsPerTask);
    expect(calls).toBeGreaterThan(20); // [AGENTS] 20-60
    expect(calls).toBeLessThan(60);
    expect(SWEBENCH.callsPerTask.max).toBe(100); // [OH] max_iter
    expect(SWEBENCH.tools.test.gapS).toMatchObject({ median: 10, p90: 67 }); // [CC] tool gap
    const issue = lognormalMean(SWEBENCH.issueTokens);
    expect(issue).toBeGreaterThan(195.1); // [SWEB] 195.1 words at 1.3 tokens/word ≈ 254 tokens
    expect(issue).toBeLessThan(195.1 * 1.3 * 1.2);
    expect(WEBARENA.stepsPerTask.max).toBe(30); // [WARUN] max_steps
    expect(WEBARENA.stepsPerTask.median).toBeGreaterThanOrEqual(10); // [WA] ~10-30 steps
    expect(WEBARENA.outputTokens.max).toBe(384); // [WARUN] max_tokens
    expect(WEBARENA.waitAfterActionS).toBe(2); // [WARUN] sleep_after_execution
    expect(WEBARENA.observationTokens.median).toBeGreaterThanOrEqual(1000); // [WA] a few thousand tokens
    expect(WEBARENA.observationTokens.median).toBeLessThan(10_000);
  });

  it('lognormal draws have the asked median and p90', () => {
    const rng = new Random(99);
    const spec = { median: 236, p90: 874 };
    const xs = Array.from({ length: 40_000 }, () => lognormal(rng, spec));
    expect(Math.abs(quantile(xs, 0.5) / 236 - 1)).toBeLessThan(0.04);
    expect(Math.abs(quantile(xs, 0.9) / 874 - 1)).toBeLessThan(0.05);
  });
});
