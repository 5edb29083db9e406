/**
 * saga replay: the target hit rates on the shipped Mooncake traces, the engine against a
 * plain-TypeScript model of the documented semantics, LRU's and Bélády's orders, causality, capacity
 * and policy parsing, and the command line's answers to bad input.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../lib/cli';
import { SagaError } from '../lib/errors';
import type { EvictionPolicy, PolicyEvent, ReleaseInfo } from '../lib/policy/types';
import {
  HashInterner,
  ReplayStream,
  createReplayPolicy,
  evictionPolicyNames,
  isOracleEviction,
  nextReads,
  parseCapacity,
  parseEvictionPolicyList,
  replayPolicy,
  resolveCapacity,
  runReplay,
} from '../lib/replay';
import { loadTrace, parseJsonlTrace } from '../lib/workloads/loaders';
import type { Workload } from '../lib/workloads/types';

const SHARED = path.resolve(__dirname, '../../shared/data/traces');
const FIXTURES = path.resolve(__dirname, 'fixtures/traces');

// ---- a model of the documented semantics, independent of the block core ----------------------------

/**
 * Requests as lists of block ids (prefix-chained: equal id = equal prefix, so an id always sits at the
 * same position). Each request: every read hits when its block is cached; then all its blocks are
 * cached with the policy's keys; then the cache drops blocks in ascending (key, -position) until
 * `capacity` remain. Returns the hit reads.
 */
function modelReplay(requests: number[][], capacity: number, policy: 'lru' | 'belady'): number {
  const flat = requests.flat();
  const next = new Array<number>(flat.length);
  const seen = new Map<number, number>();
  for (let j = flat.length - 1; j >= 0; j--) {
    next[j] = seen.get(flat[j]) ?? -1;
    seen.set(flat[j], j);
  }
  const cache = new Map<number, { key: number; pos: number }>();
  let hits = 0;
  let read = 0;
  requests.forEach((blocks, r) => {
    for (const b of blocks) if (cache.has(b)) hits++;
    blocks.forEach((b, pos) => {
      const j = read + pos;
      const key = policy === 'lru' ? r : next[j] < 0 ? -Infinity : -next[j];
      cache.set(b, { key, pos });
    });
    read += blocks.length;
    if (cache.size > capacity) {
      const order = [...cache.entries()].sort((x, y) => x[1].key - y[1].key || y[1].pos - x[1].pos);
      for (let i = 0; i < order.length - capacity; i++) cache.delete(order[i][0]);
    }
  });
  return hits;
}

/** A Mooncake-style workload (one request a line, 512-token blocks, no partial blocks) from id lists. */
function workloadOf(requests: number[][], timestampsMs?: number[]): Workload {
  const text = requests
    .map((ids, i) => JSON.stringify({ timestamp: timestampsMs?.[i] ?? i, input_length: ids.length * 512, output_length: 1, hash_ids: ids }))
    .join('\n');
  return parseJsonlTrace(text, 'generated.jsonl', 'mooncake');
}

/**
 * Random prefix-chained requests: each extends a random earlier request's prefix (or starts fresh)
 * with new blocks; ids name prefixes.
 */
const requestsArb = fc
  .array(
    fc.record({
      parent: fc.nat(),
      keep: fc.nat({ max: 12 }),
      extra: fc.array(fc.nat({ max: 2 }), { maxLength: 8 }),
      fresh: fc.boolean(),
    }),
    { minLength: 1, maxLength: 40 },
  )
  .map((specs) => {
    const ids = new Map<string, number>();
    const paths: number[][] = [];
    const requests: number[][] = [];
    for (const spec of specs) {
      const base = spec.fresh || paths.length === 0 ? [] : paths[spec.parent % paths.length].slice(0, spec.keep);
      const symbols = [...base, ...spec.extra];
      paths.push(symbols);
      const blocks: number[] = [];
      for (let p = 0; p < symbols.length; p++) {
        const key = symbols.slice(0, p + 1).join(',');
        let id = ids.get(key);
        if (id === undefined) {
          id = ids.size;
          ids.set(key, id);
        }
        blocks.push(id);
      }
      requests.push(blocks);
    }
    return requests;
  });

function replayHits(requests: number[][], capacity: number, name: 'lru' | 'belady'): number {
  const stream = new ReplayStream(workloadOf(requests));
  const policy = createReplayPolicy(name, stream);
  return replayPolicy(stream, policy, capacity, { backend: 'cpu' }).hitBlocks;
}

// ---- the targets -----------------------------------------------------------------------------

if (!fs.existsSync(SHARED)) console.warn(`replay.test.ts: skipping the target hit rates: ${SHARED} is absent (check out ../shared beside the repository)`);

describe.skipIf(!fs.existsSync(SHARED))('target hit rates on the shipped Mooncake traces (within 0.002)', () => {
  const cases = [
    { trace: 'conversation_trace.jsonl.gz', capacity: '1%', blocks: 1828, lru: 0.0525, belady: 0.2464 },
    { trace: 'synthetic_trace.jsonl.gz', capacity: '5%', blocks: 2196, lru: 0.1566, belady: 0.3955 },
    { trace: 'synthetic_trace.jsonl.gz', capacity: '10%', blocks: 4392, lru: 0.2623, belady: 0.5063 },
  ];
  const loaded = new Map<string, Workload>();
  const load = (trace: string) => {
    let w = loaded.get(trace);
    if (w === undefined) {
      w = loadTrace(path.join(SHARED, 'mooncake', trace));
      loaded.set(trace, w);
    }
    return w;
  };
  for (const c of cases) {
    it(`${c.trace} at ${c.capacity} (${c.blocks} blocks): lru ${c.lru}, belady ${c.belady}`, () => {
      const report = runReplay(load(c.trace), { policies: ['lru', 'belady'], capacity: parseCapacity(c.capacity) });
      expect(report.capacityBlocks).toBe(c.blocks);
      const [lru, belady] = report.results;
      expect(lru.policy).toBe('lru');
      expect(belady).toMatchObject({ policy: 'belady', bound: true, missRatioVsBelady: 1 });
      expect(Math.abs(lru.hitRate - c.lru)).toBeLessThanOrEqual(0.002);
      expect(Math.abs(belady.hitRate - c.belady)).toBeLessThanOrEqual(0.002);
      expect(lru.missRatioVsBelady).toBeCloseTo(lru.missedBlocks / belady.missedBlocks, 12);
    }, 20_000);
  }

  it('saga misses fewer blocks than lru on the Claude Code sessions at 1%, 2%, 5% and 10% (512-token blocks, starts over one hour)', () => {
    const w = loadTrace(path.join(SHARED, 'claude-code'), { blockSize: 512 });
    for (const capacity of ['1%', '2%', '5%', '10%']) {
      const [lru, saga] = runReplay(w, { policies: ['lru', 'saga'], capacity: parseCapacity(capacity) }).results;
      expect(saga.missedBlocks, capacity).toBeLessThan(lru.missedBlocks);
    }
  }, 60_000);

  it('the engine equals the model exactly on the synthetic trace at 5%', () => {
    const w = load('synthetic_trace.jsonl.gz');
    const stream = new ReplayStream(w);
    // Dense ids stand in for block ids in the model (equal id = same block).
    const ids = stream.readIds();
    const requests: number[][] = [];
    for (let i = 0; i < stream.requests; i++) requests.push(Array.from(ids.subarray(stream.readStart[i], stream.readStart[i + 1])));
    for (const name of ['lru', 'belady'] as const) {
      const engine = replayPolicy(stream, createReplayPolicy(name, stream), 2196).hitBlocks;
      expect(engine).toBe(modelReplay(requests, 2196, name));
    }
  }, 20_000);
});

// ---- semantics -----------------------------------------------------------------------------------------

describe('replay semantics', () => {
  it('equals the model on random prefix-chained traces, capacities below request sizes included', () => {
    fc.assert(
      fc.property(requestsArb, fc.integer({ min: 1, max: 30 }), (requests, capacity) => {
        for (const name of ['lru', 'belady'] as const) {
          expect(replayHits(requests, capacity, name)).toBe(modelReplay(requests, capacity, name));
        }
      }),
      { numRuns: 150 },
    );
  });

  it('belady hits at least as often as lru (it is the bound)', () => {
    fc.assert(
      fc.property(requestsArb, fc.integer({ min: 1, max: 30 }), (requests, capacity) => {
        expect(replayHits(requests, capacity, 'belady')).toBeGreaterThanOrEqual(replayHits(requests, capacity, 'lru'));
      }),
      { numRuns: 150 },
    );
  });

  it("lru evicts the least recent request first and a request's tail before its head", () => {
    // A = [0,1,2], B = [3]: with 3 blocks, caching B evicts A's tail (2), so A again hits 0 and 1 only.
    expect(replayHits([[0, 1, 2], [3], [0, 1, 2]], 3, 'lru')).toBe(2);
    // Touching A again makes B the older request: caching C = [4] evicts B, so B misses at the end.
    expect(replayHits([[0, 1], [3], [0, 1], [4], [3]], 3, 'lru')).toBe(2);
  });

  it('counts a read as a hit per block, not only within the cached prefix', () => {
    // lru and belady never leave a hole in a cached prefix (a head block always outlives its tail), so a
    // policy that evicts heads first makes one: after [0,1,2] with room for 2, blocks 1 and 2 stay.
    const headFirst: EvictionPolicy = {
      name: 'head-first',
      releaseKeys: (info: ReleaseInfo, out: Float64Array) => {
        for (let i = 0; i < info.count; i++) out[i] = info.positions[i];
      },
    };
    const stream = new ReplayStream(workloadOf([[0, 1, 2], [0, 1, 2]]));
    const outcome = replayPolicy(stream, headFirst, 2);
    expect(outcome.hitBlocks).toBe(2);
    expect(outcome.prefixHitBlocks).toBe(0);
    expect(outcome.hitRate).toBe(2 / 6);
  });

  it('keeps the first `capacity` blocks of a request larger than the cache under lru', () => {
    expect(replayHits([[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]], 2, 'lru')).toBe(2);
    expect(replayHits([[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]], 2, 'belady')).toBe(2);
  });

  it('orders requests by timestamp, stably', () => {
    const w = workloadOf([[0], [1], [2], [3]], [30, 10, 10, 0]);
    const stream = new ReplayStream(w);
    const order = Array.from({ length: stream.requests }, (_, i) => stream.task(i).id);
    expect(order).toEqual(['line 4', 'line 2', 'line 3', 'line 1']);
  });

  it('numbers distinct hashes densely, in order of first sight, through table growth', () => {
    const interner = new HashInterner(4);
    const hashes = new BigUint64Array(5000);
    for (let i = 0; i < hashes.length; i++) hashes[i] = BigInt(i % 3000) * 0x9e3779b97f4a7c15n & 0xffffffffffffffffn;
    const out = new Int32Array(hashes.length);
    interner.internAll(hashes, out);
    expect(interner.size).toBe(3000);
    for (let i = 0; i < hashes.length; i++) expect(out[i]).toBe(i % 3000);
  });

  it('computes next reads by a backward pass', () => {
    expect(Array.from(nextReads(Int32Array.from([0, 1, 0, 2, 1, 0]), 3))).toEqual([2, 4, 5, -1, -1, -1]);
  });
});

describe('policies see the stream in order and never ahead', () => {
  it('hands an online policy each request once, in order, through buffers the engine owns', () => {
    const w = workloadOf([[0, 1], [0, 1, 2], [3], [0, 1, 2, 4]], [0, 1000, 2000, 3000]);
    const stream = new ReplayStream(w);
    const seen: { sequence: number; hashes: bigint[]; positions: number[] }[] = [];
    const events: string[] = [];
    const workloadBuffer = w.tasks[0].calls[0].blockHashes.buffer;
    const spy: EvictionPolicy = {
      name: 'spy',
      releaseKeys(info: ReleaseInfo, out: Float64Array) {
        expect(info.call.blockHashes.buffer).not.toBe(workloadBuffer);
        expect(info.count).toBe(info.call.blockHashes.length);
        expect(Object.keys(info.call)).not.toContain('gapAfterS');
        seen.push({ sequence: info.sequence, hashes: Array.from(info.call.blockHashes), positions: Array.from(info.positions.subarray(0, info.count)) });
        out.fill(info.sequence, 0, info.count);
      },
      observe(event: PolicyEvent) {
        events.push(event.type === 'call-admit' ? `admit ${event.cachedTokens}` : event.type);
      },
    };
    const outcome = replayPolicy(stream, spy, 100);
    expect(seen.map((s) => s.sequence)).toEqual([0, 1, 2, 3]);
    expect(seen.map((s) => s.positions)).toEqual([[1, 0], [2, 1, 0], [0], [3, 2, 1, 0]]);
    expect(seen[1].hashes.slice(0, 2)).toEqual(seen[0].hashes);
    // Cached prefixes at admission: 0, 2, 0 and 3 blocks of 512 tokens (prompts of 512 tokens a block).
    expect(events.filter((e) => e.startsWith('admit'))).toEqual(['admit 0', 'admit 1024', 'admit 0', 'admit 1536']);
    expect(events.slice(0, 3)).toEqual(['call-arrive', 'admit 0', 'call-finish']);
    expect(outcome).toMatchObject({ policy: 'spy', bound: false, hitBlocks: 5, blockReads: 10, missedBlocks: 5, hitRate: 0.5 });
  });

  it("tells a policy when a call ended where the trace gives its api_time (served at its start, ended later)", () => {
    const w = workloadOf([[0, 1], [0, 1, 2], [3]], [0, 1000, 2000]);
    (w.tasks[0].calls[0] as { traceApiS?: number }).traceApiS = 4;
    (w.tasks[2].calls[0] as { traceApiS?: number }).traceApiS = 0.5;
    const releases: (number | undefined)[] = [];
    const finishes: (number | undefined)[] = [];
    const spy: EvictionPolicy = {
      name: 'spy',
      releaseKeys(info: ReleaseInfo, out: Float64Array) {
        releases.push(info.endS);
        out.fill(info.sequence, 0, info.count);
      },
      observe(event: PolicyEvent) {
        if (event.type === 'call-finish') finishes.push(event.endS);
      },
    };
    replayPolicy(new ReplayStream(w), spy, 100);
    // Requests at 0, 1 and 2 s: the first ends 4 s after its start, the second has no api_time, the third 0.5 s.
    expect(releases).toEqual([4, undefined, 2.5]);
    expect(finishes).toEqual([4, undefined, 2.5]);
  });

  it('builds online policies without the stream; only the oracle is labelled a bound', () => {
    expect(isOracleEviction('lru')).toBe(false);
    expect(isOracleEviction('belady')).toBe(true);
    const stream = new ReplayStream(workloadOf([[0, 1]]));
    expect(createReplayPolicy('belady', stream).oracle).toBe(true);
    for (const name of evictionPolicyNames()) expect(createReplayPolicy(name, stream).oracle === true).toBe(isOracleEviction(name));
  });
});

describe('capacity and policy lists', () => {
  it('reads blocks and shares of the distinct blocks', () => {
    expect(resolveCapacity(parseCapacity('2000'), 10)).toBe(2000);
    expect(resolveCapacity(parseCapacity('5%'), 43924)).toBe(2196);
    expect(resolveCapacity(parseCapacity('1%'), 182790)).toBe(1828);
    expect(resolveCapacity(parseCapacity(' 0.5 %'), 1000)).toBe(5);
  });

  it('rejects zero, nonsense, and shares that round to zero', () => {
    for (const text of ['0', '0%', 'abc', '-5', '5%%', '']) {
      const err = (() => {
        try {
          parseCapacity(text);
        } catch (e) {
          return e as SagaError;
        }
        return undefined;
      })();
      expect(err?.code, text).toBe('ERR_SAGA_BAD_ARGUMENT');
    }
    expect(() => resolveCapacity(parseCapacity('1%'), 40)).toThrow(/rounds to 0 blocks/);
  });

  it('knows lru and belady and nothing else', () => {
    expect(parseEvictionPolicyList(' belady , lru')).toEqual(['belady', 'lru']);
    expect(() => parseEvictionPolicyList('lru,belady,lru')).toThrow(expect.objectContaining({ code: 'ERR_SAGA_BAD_ARGUMENT', message: expect.stringMatching(/twice/) }));
    expect(() => parseEvictionPolicyList('lru,fifo')).toThrow(expect.objectContaining({ code: 'ERR_SAGA_UNKNOWN_POLICY', message: expect.stringMatching(/'fifo'/) }));
    expect(() => parseEvictionPolicyList(' , ')).toThrow(expect.objectContaining({ code: 'ERR_SAGA_UNKNOWN_POLICY' }));
  });
});

// ---- the command line ---------------------------------------------------------------------------------

describe('saga replay (main)', () => {
  let tmp: string;
  let out: string[];
  let err: string[];
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'saga-replay-'));
  });
  afterAll(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const capture = () => {
    out = [];
    err = [];
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      out.push(args.join(' '));
    });
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk));
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      err.push(String(chunk));
      return true;
    });
  };
  afterEach(() => {
    vi.restoreAllMocks();
  });

  async function failure(args: string[]): Promise<SagaError> {
    capture();
    const e = await main(args).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(SagaError);
    const sagaError = e as SagaError;
    expect(sagaError.message).not.toMatch(/\n/); // one line
    return sagaError;
  }

  it('prints a table with the oracle labelled as a bound, and writes JSON', async () => {
    const json = path.join(tmp, 'out.json');
    capture();
    const code = await main(['replay', '--trace', path.join(FIXTURES, 'mini.mooncake.jsonl'), '--capacity', '3', '--json', json]);
    expect(code).toBe(0);
    const table = out.join('\n');
    expect(table).toMatch(/lru/);
    expect(table).toMatch(/belady \(bound\)/);
    expect(table).toMatch(/offline oracle/);
    const report = JSON.parse(fs.readFileSync(json, 'utf8')) as { capacityBlocks: number; results: Record<string, unknown>[]; note: string };
    expect(report.capacityBlocks).toBe(3);
    expect(report.results.map((r) => r.policy)).toEqual(['lru', 'belady']);
    for (const r of report.results) {
      expect(Object.keys(r)).toEqual(expect.arrayContaining(['policy', 'hitRate', 'missedBlocks', 'missRatioVsBelady', 'bound']));
    }
    expect(report.results[1]).toMatchObject({ policy: 'belady', bound: true });
    expect(report.note).toMatch(/bound/);
  });

  it("prints JSON instead of the table with --json -", async () => {
    capture();
    expect(await main(['replay', '--trace', path.join(FIXTURES, 'mini.saga.jsonl'), '--policies', 'lru', '--capacity', '50%', '--json', '-'])).toBe(0);
    const report = JSON.parse(out.join('')) as { results: { policy: string; missRatioVsBelady: number }[] };
    expect(report.results.map((r) => r.policy)).toEqual(['lru']);
    expect(typeof report.results[0].missRatioVsBelady).toBe('number');
  });

  it('replays Claude Code sessions reproducibly for a seed', async () => {
    const run = async (seed: string) => {
      capture();
      expect(await main(['replay', '--trace', path.join(FIXTURES, 'claude-code'), '--capacity', '4', '--seed', seed, '--json', '-'])).toBe(0);
      vi.restoreAllMocks();
      return out.join('');
    };
    expect(await run('3')).toBe(await run('3'));
  });

  it('a missing file', async () => {
    const e = await failure(['replay', '--trace', path.join(tmp, 'nope.jsonl')]);
    expect(e.code).toBe('ERR_SAGA_TRACE_NOT_FOUND');
    expect(e.message).toContain('nope.jsonl');
  });

  it('a malformed line, with its line number', async () => {
    const e = await failure(['replay', '--trace', path.join(FIXTURES, 'bad_line.jsonl')]);
    expect(e.code).toBe('ERR_SAGA_BAD_TRACE');
    expect(e.message).toContain('bad_line.jsonl:3');
  });

  it('an unknown policy', async () => {
    const e = await failure(['replay', '--trace', path.join(FIXTURES, 'mini.mooncake.jsonl'), '--policies', 'lru,magic']);
    expect(e.code).toBe('ERR_SAGA_UNKNOWN_POLICY');
    expect(e.message).toMatch(/'magic'.*known: .*lru.*belady/);
  });

  it('a capacity of zero, given or rounded', async () => {
    expect((await failure(['replay', '--trace', path.join(FIXTURES, 'mini.mooncake.jsonl'), '--capacity', '0'])).code).toBe('ERR_SAGA_BAD_ARGUMENT');
    const rounded = await failure(['replay', '--trace', path.join(FIXTURES, 'mini.mooncake.jsonl'), '--capacity', '1%']);
    expect(rounded.message).toMatch(/rounds to 0 blocks/);
  });

  it('a block size that does not fit the trace, bad numbers', async () => {
    const trace = path.join(FIXTURES, 'mini.mooncake.jsonl');
    expect((await failure(['replay', '--trace', trace, '--block-size', '100'])).message).toMatch(/not a multiple/);
    expect((await failure(['replay', '--trace', trace, '--block-size', 'x'])).message).toMatch(/--block-size/);
    expect((await failure(['replay', '--trace', trace, '--window', '-1'])).message).toMatch(/--window/);
    expect((await failure(['replay', '--trace', trace, '--seed', '1.5'])).message).toMatch(/--seed/);
  });

  it('option errors from the parser: a non-zero exit and a short message, no stack', async () => {
    capture();
    expect(await main(['replay', '--trace', 'x', '--format', 'bogus'])).not.toBe(0);
    expect(err.join('')).toMatch(/argument 'bogus' is invalid/);
    expect(err.join('')).not.toMatch(/\n\s+at /);
    capture();
    expect(await main(['replay'])).not.toBe(0);
    expect(err.join('')).toMatch(/--trace/);
  });

  it('--help explains every option', async () => {
    capture();
    expect(await main(['replay', '--help'])).toBe(0);
    const help = out.join('');
    for (const option of ['--trace', '--format', '--block-size', '--capacity', '--policies', '--window', '--seed', '--json']) {
      expect(help).toContain(option);
    }
    expect(help).toMatch(/belady.*oracle/);
  });
});
