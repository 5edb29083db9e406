/**
 * Trace loaders: formats, gzip and plain, hashing and re-blocking, sessions and sub-agents, seeded
 * spreading, and errors that name the file and line. The shipped traces are checked when present.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SagaError } from '../lib/errors';
import { Random } from '../lib/util/random';
import { chainHash, scopeRoot } from '../lib/workloads/hashing';
import {
  claudeCodeFiles,
  detectFormat,
  loadClaudeCode,
  loadMooncake,
  loadSagaJsonl,
  loadTrace,
  parseJsonlTrace,
  traceGapS,
} from '../lib/workloads/loaders';
import type { Call, Task, Workload } from '../lib/workloads/types';

const FIXTURES = path.resolve(__dirname, 'fixtures/traces');
const SHARED = path.resolve(__dirname, '../../shared/data/traces');
const fixture = (name: string) => path.join(FIXTURES, name);

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'saga-loaders-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function gzipCopy(from: string, name: string): string {
  const to = path.join(tmp, name);
  fs.writeFileSync(to, zlib.gzipSync(fs.readFileSync(from)));
  return to;
}

function errorOf(fn: () => unknown): SagaError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SagaError);
    return err as SagaError;
  }
  throw new Error('expected a SagaError');
}

function task(w: Workload, id: string): Task {
  const t = w.tasks.find((x) => x.id === id);
  if (t === undefined) throw new Error(`no task ${id}`);
  return t;
}

/** The hashes a call reads in a replay: full blocks, then the partial one where hashed. */
function reads(call: Call): bigint[] {
  const out = Array.from(call.blockHashes);
  if (call.partialBlockHash !== undefined) out.push(call.partialBlockHash);
  return out;
}

/** Chained hashes of `ids` in `scope`, as lib/workloads/hashing.ts documents them. */
function chain(ids: number[], scope = 0): bigint[] {
  let h = scopeRoot(scope);
  return ids.map((id) => (h = chainHash(h, id)));
}

describe('seeded random (mulberry32)', () => {
  it('repeats for a seed, differs across seeds, stays in [0, 1)', () => {
    const a = new Random(42);
    const b = new Random(42);
    const c = new Random(43);
    const xs = Array.from({ length: 1000 }, () => a.next());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b.next()));
    expect(xs.slice(0, 10)).not.toEqual(Array.from({ length: 10 }, () => c.next()));
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
  });

  it('matches the reference mulberry32 output', () => {
    // Reference values of mulberry32 for seed 1 (the algorithm as published).
    const r = new Random(1);
    expect([r.nextUint32(), r.nextUint32(), r.nextUint32()]).toEqual([2693262067, 11749833, 2265367787]);
  });
});

describe('Mooncake JSONL', () => {
  it('reads a plain file: one task per request, in timestamp order (stable), times in seconds', () => {
    const w = loadMooncake(fixture('mini.mooncake.jsonl'));
    expect(w.name).toBe('mooncake:mini.mooncake.jsonl');
    expect(w.blockSize).toBe(512);
    expect(w.tasks.map((t) => t.id)).toEqual(['line 1', 'line 2', 'line 4', 'line 3']);
    expect(w.tasks.map((t) => t.arrivalS)).toEqual([0, 0, 1.2, 1.5]);
    for (const t of w.tasks) {
      expect(t.kind).toBe('mooncake');
      expect(t.tenant).toBe('default');
      expect(t.calls).toHaveLength(1);
      expect(t.calls[0].gapAfterS).toBe(0);
      expect(t.calls[0].traceOffsetS).toBe(0);
    }
    const first = task(w, 'line 1').calls[0];
    expect(first.promptTokens).toBe(1100);
    expect(first.outputTokens).toBe(10);
  });

  it('keeps full blocks in blockHashes and the id of a partial last block as partialBlockHash', () => {
    const w = loadMooncake(fixture('mini.mooncake.jsonl'));
    const [c1, c2, c3, c4] = ['line 1', 'line 2', 'line 3', 'line 4'].map((id) => task(w, id).calls[0]);
    // 1100 tokens, 3 ids: 2 full blocks + a partial one.
    expect(Array.from(c1.blockHashes)).toEqual(chain([0, 1]));
    expect(c1.partialBlockHash).toBe(chain([0, 1, 2])[2]);
    // 1024 tokens, 2 ids: 2 full blocks; the same prefix gives the same hashes.
    expect(Array.from(c2.blockHashes)).toEqual(chain([0, 1]));
    expect(c2.partialBlockHash).toBeUndefined();
    expect(c3.blockHashes).toHaveLength(4);
    expect(c3.partialBlockHash).toBe(chain([0, 1, 3, 4, 5])[4]);
    // 300 tokens: no full block, one partial.
    expect(c4.blockHashes).toHaveLength(0);
    expect(c4.partialBlockHash).toBe(chain([6])[0]);
    for (const t of w.tasks) for (const h of reads(t.calls[0])) expect(h).not.toBe(0n);
    // All calls' hashes are views of one buffer.
    expect(c1.blockHashes.buffer).toBe(c3.blockHashes.buffer);
  });

  it('reads .gz transparently and gives the same workload as the plain file', () => {
    const plain = loadMooncake(fixture('mini.mooncake.jsonl'));
    const gz = loadMooncake(gzipCopy(fixture('mini.mooncake.jsonl'), 'mini.mooncake.jsonl.gz'));
    expect(gz.tasks.map((t) => t.calls.map(reads))).toEqual(plain.tasks.map((t) => t.calls.map(reads)));
    // Gzip is told by its bytes, not its name.
    const disguised = loadMooncake(gzipCopy(fixture('mini.mooncake.jsonl'), 'disguised.jsonl'));
    expect(disguised.tasks.map((t) => t.calls.map(reads))).toEqual(plain.tasks.map((t) => t.calls.map(reads)));
  });

  it('re-blocks 512-token blocks into 1024-token blocks by every 2nd id', () => {
    const w = loadMooncake(fixture('mini.mooncake.jsonl'), { blockSize: 1024 });
    expect(w.blockSize).toBe(1024);
    const c3 = task(w, 'line 3').calls[0]; // ids [0,1,3,4,5], 2100 tokens: 2 full 1024-blocks + partial
    expect(Array.from(c3.blockHashes)).toEqual(chain([1, 4]));
    expect(c3.partialBlockHash).toBe(chain([1, 4, 5])[2]);
    const c1 = task(w, 'line 1').calls[0]; // ids [0,1,2], 1100 tokens: 1 full + partial
    expect(Array.from(c1.blockHashes)).toEqual(chain([1]));
    expect(c1.partialBlockHash).toBe(chain([1, 2])[1]);
    expect(errorOf(() => loadMooncake(fixture('mini.mooncake.jsonl'), { blockSize: 700 })).code).toBe('ERR_SAGA_BAD_ARGUMENT');
  });

  it('names the file and line of a malformed line, plain and gzipped', () => {
    const plain = errorOf(() => loadMooncake(fixture('bad_line.jsonl')));
    expect(plain.code).toBe('ERR_SAGA_BAD_TRACE');
    expect(plain.message).toContain(`${fixture('bad_line.jsonl')}:3`);
    expect(plain.message).toMatch(/not valid JSON/);
    const gz = errorOf(() => loadTrace(gzipCopy(fixture('bad_line.jsonl'), 'bad_line.jsonl.gz'), { format: 'mooncake' }));
    expect(gz.message).toContain('bad_line.jsonl.gz:3');
  });

  it('rejects missing and wrong fields with their line', () => {
    const file = 'inline.jsonl';
    const ok = '{"timestamp": 0, "input_length": 512, "output_length": 1, "hash_ids": [1]}';
    const cases: [string, RegExp][] = [
      ['{"timestamp": 0, "input_length": 512, "output_length": 1}', /missing "hash_ids"/],
      ['{"timestamp": -1, "input_length": 512, "output_length": 1, "hash_ids": [1]}', /"timestamp"/],
      ['{"timestamp": 0, "input_length": 5.5, "output_length": 1, "hash_ids": [1]}', /"input_length"/],
      ['{"timestamp": 0, "input_length": 512, "output_length": 1, "hash_ids": [1, "x"]}', /"hash_ids"\[1\]/],
      ['{"timestamp": 0, "input_length": 512, "output_length": 1, "hash_ids": [1, 2]}', /2 hash ids for 512 input tokens/],
      ['[1, 2]', /expected a JSON object/],
    ];
    for (const [line, message] of cases) {
      const err = errorOf(() => parseJsonlTrace(`${ok}\n\n${line}\n`, file, 'mooncake'));
      expect(err.code).toBe('ERR_SAGA_BAD_TRACE');
      expect(err.message).toContain('inline.jsonl:3');
      expect(err.message).toMatch(message);
    }
    expect(errorOf(() => parseJsonlTrace('\n\n', file, 'mooncake')).message).toMatch(/no requests/);
  });
});

describe('SAGA JSONL', () => {
  const w = loadSagaJsonl(fixture('mini.saga.jsonl'));

  it('groups lines by session into tasks, in timestamp order, with tenant and kind from the first line', () => {
    expect(w.name).toBe('jsonl:mini.saga.jsonl');
    expect(w.tasks.map((t) => t.id)).toEqual(['s1', '2', 'line 4']);
    const s1 = task(w, 's1');
    expect(s1).toMatchObject({ tenant: 'acme', kind: 'swe', arrivalS: 0 });
    expect(s1.calls.map((c) => c.promptTokens)).toEqual([1100, 1600]);
    expect(s1.calls.map((c) => c.traceOffsetS)).toEqual([0, 3]);
    expect(s1.calls.map((c) => c.stop)).toEqual(['tool_use', 'end_turn']);
    expect(s1.calls[0].traceApiS).toBe(1);
    const s2 = task(w, '2');
    expect(s2).toMatchObject({ tenant: 'default', kind: 'jsonl', arrivalS: 0.5 });
    expect(s2.calls.map((c) => c.traceOffsetS)).toEqual([0, 1.5]);
    expect(task(w, 'line 4').arrivalS).toBe(3);
  });

  it('derives gapAfterS from timestamps and api_time, else the next think_time; 0 after the last call', () => {
    // s1: issued at 0 s, took 1 s, next issued at 3 s: 2 s of tool time.
    expect(task(w, 's1').calls.map((c) => c.gapAfterS)).toEqual([2, 0]);
    // session 2 has no api_time: the next call's think_time (1 s).
    expect(task(w, '2').calls.map((c) => c.gapAfterS)).toEqual([1, 0]);
    expect(traceGapS(0, 10, 5, undefined)).toBe(0); // never negative
    expect(traceGapS(0, undefined, 5, undefined)).toBe(5);
    expect(traceGapS(0, 1, 5, 9)).toBe(4); // api_time wins over think_time
  });

  it('shares blocks between calls with the same id prefix (ids are global)', () => {
    const [a, b] = task(w, 's1').calls;
    expect(Array.from(b.blockHashes.subarray(0, 2))).toEqual(Array.from(a.blockHashes));
    expect(Array.from(b.blockHashes)).toEqual(chain([1, 2, 3]));
  });

  it('honours block_size and rejects lines that disagree on it', () => {
    const lines = [
      '{"timestamp": 0, "input_length": 16, "output_length": 1, "hash_ids": [1], "block_size": 16}',
      '{"timestamp": 1, "input_length": 64, "output_length": 1, "hash_ids": [1, 2, 3, 4]}',
    ];
    const good = parseJsonlTrace(lines.join('\n'), 'x.jsonl', 'jsonl');
    expect(good.blockSize).toBe(16);
    expect(Array.from(good.tasks[1].calls[0].blockHashes)).toEqual(chain([1, 2, 3, 4]));
    const reblocked = parseJsonlTrace(lines.join('\n'), 'x.jsonl', 'jsonl', { blockSize: 32 });
    expect(Array.from(reblocked.tasks[1].calls[0].blockHashes)).toEqual(chain([2, 4]));
    const clash = [...lines, '{"timestamp": 2, "input_length": 64, "output_length": 1, "hash_ids": [1], "block_size": 32}'];
    expect(errorOf(() => parseJsonlTrace(clash.join('\n'), 'x.jsonl', 'jsonl')).message).toMatch(/x\.jsonl:3: "block_size" 32 differs from 16 on line 1/);
  });

  it('rejects bad optional fields with their line', () => {
    const base = '"timestamp": 0, "input_length": 512, "output_length": 1, "hash_ids": [1]';
    for (const [extra, field] of [
      ['"session": [1]', 'session'],
      ['"tenant": 3', 'tenant'],
      ['"api_time": -2', 'api_time'],
      ['"think_time": "x"', 'think_time'],
      ['"block_size": 0', 'block_size'],
    ]) {
      const err = errorOf(() => parseJsonlTrace(`{${base}}\n{${base}, ${extra}}`, 'y.jsonl', 'jsonl'));
      expect(err.message).toContain('y.jsonl:2');
      expect(err.message).toContain(`"${field}"`);
    }
  });
});

describe('Claude Code sessions', () => {
  const dir = fixture('claude-code');

  it('makes each session and each sub-agent its own task', () => {
    const w = loadClaudeCode(dir, { windowS: 0 });
    expect(w.name).toBe('claude-code:claude-code');
    expect(w.blockSize).toBe(64);
    expect(w.tasks.map((t) => t.id).sort()).toEqual(['trace_0001', 'trace_0001/a1', 'trace_0002']);
    const parent = task(w, 'trace_0001');
    expect(parent.kind).toBe('claude-code');
    expect(parent.calls.map((c) => c.promptTokens)).toEqual([200, 300, 400]);
    expect(parent.calls.map((c) => c.traceOffsetS)).toEqual([0, 5, 21]);
    expect(parent.calls.map((c) => c.traceApiS)).toEqual([2, 1.5, 3]);
    expect(parent.calls.map((c) => c.stop)).toEqual(['tool_use', 'tool_use', 'end_turn']);
    // gap = next t - t - api_time: 5 - 0 - 2, 21 - 5 - 1.5, and 0 after the last call.
    expect(parent.calls.map((c) => c.gapAfterS)).toEqual([3, 14.5, 0]);
    const sub = task(w, 'trace_0001/a1');
    expect(sub.kind).toBe('claude-code:Explore');
    // The sub-agent entry's t (20 s) is its completion; it started duration_ms (12 s) earlier.
    expect(sub.arrivalS).toBe(8);
    expect(sub.calls.map((c) => c.traceOffsetS)).toEqual([0, 4]);
    expect(sub.calls.map((c) => c.gapAfterS)).toEqual([3, 0]);
    // An empty stop is no stop; api_time longer than the time to the next call gives a gap of 0.
    const other = task(w, 'trace_0002');
    expect(other.calls.map((c) => c.stop)).toEqual(['tool_use', undefined]);
    expect(other.calls[0].gapAfterS).toBe(0);
  });

  it("chains ids within each file's own scope: sessions never share blocks, a session and its sub-agents can", () => {
    const w = loadClaudeCode(dir, { windowS: 0 });
    const a = task(w, 'trace_0001').calls;
    const b = task(w, 'trace_0002').calls;
    const sub = task(w, 'trace_0001/a1').calls;
    expect(Array.from(a[0].blockHashes)).toEqual(chain([1, 2, 3], 1));
    expect(Array.from(b[0].blockHashes)).toEqual(chain([1, 2, 3], 2));
    const all = new Set([...a, ...sub].flatMap((c) => Array.from(c.blockHashes)));
    for (const h of b.flatMap((c) => Array.from(c.blockHashes))) expect(all.has(h)).toBe(false);
    expect(Array.from(sub[1].blockHashes)).toEqual(chain([10, 11, 12], 1));
    // Full 64-token blocks only: 200 tokens with 3 ids has no partial block.
    for (const c of [...a, ...b, ...sub]) expect(c.partialBlockHash).toBeUndefined();
  });

  it('re-blocks 64-token blocks into 128-token blocks by every 2nd id', () => {
    const w = loadClaudeCode(dir, { windowS: 0, blockSize: 128 });
    expect(w.blockSize).toBe(128);
    const last = task(w, 'trace_0001').calls[2]; // ids [1..6]
    expect(Array.from(last.blockHashes)).toEqual(chain([2, 4, 6], 1));
    const first = task(w, 'trace_0001').calls[0]; // ids [1,2,3]: one full 128-block, the rest unhashed
    expect(Array.from(first.blockHashes)).toEqual(chain([2], 1));
    expect(first.partialBlockHash).toBeUndefined();
    expect(errorOf(() => loadClaudeCode(dir, { blockSize: 100 })).code).toBe('ERR_SAGA_BAD_ARGUMENT');
  });

  it('spreads session starts over the window with a seeded generator, reproducibly', () => {
    const arrivals = (seed: number, windowS = 3600) => {
      const w = loadClaudeCode(dir, { seed, windowS });
      return Object.fromEntries(w.tasks.map((t) => [t.id, t.arrivalS]));
    };
    const a = arrivals(7);
    expect(arrivals(7)).toEqual(a);
    expect(arrivals(8)).not.toEqual(a);
    // One uniform draw per file in name order.
    const r = new Random(7);
    const s1 = r.uniform(0, 3600);
    const s2 = r.uniform(0, 3600);
    expect(a.trace_0001).toBe(s1);
    expect(a.trace_0002).toBe(s2);
    expect(a['trace_0001/a1']).toBe(s1 + 8);
    const small = arrivals(7, 10);
    for (const id of ['trace_0001', 'trace_0002']) expect(small[id] >= 0 && small[id] < 10).toBe(true);
    // Tasks come in arrival order.
    const w = loadClaudeCode(dir, { seed: 7 });
    const times = w.tasks.map((t) => t.arrivalS);
    expect(times).toEqual([...times].sort((x, y) => x - y));
  });

  it('reads .json.gz files and a single session file; a plain file wins over its .gz twin', () => {
    const mixed = path.join(tmp, 'mixed');
    fs.mkdirSync(mixed);
    fs.copyFileSync(path.join(dir, 'trace_0001.json'), path.join(mixed, 'trace_0001.json'));
    fs.writeFileSync(path.join(mixed, 'trace_0001.json.gz'), zlib.gzipSync(fs.readFileSync(path.join(dir, 'trace_0002.json'))));
    fs.writeFileSync(path.join(mixed, 'trace_0002.json.gz'), zlib.gzipSync(fs.readFileSync(path.join(dir, 'trace_0002.json'))));
    fs.writeFileSync(path.join(mixed, 'notes.txt'), 'not a trace');
    expect(claudeCodeFiles(mixed).map((f) => path.basename(f))).toEqual(['trace_0001.json', 'trace_0002.json.gz']);
    const fromDir = loadClaudeCode(mixed, { windowS: 0 });
    const fromFixtures = loadClaudeCode(dir, { windowS: 0 });
    expect(fromDir.tasks.map((t) => t.calls.map(reads))).toEqual(fromFixtures.tasks.map((t) => t.calls.map(reads)));
    const single = loadTrace(path.join(mixed, 'trace_0002.json.gz'), { windowS: 0 });
    expect(single.tasks.map((t) => t.id)).toEqual(['trace_0002']);
  });

  it('reports malformed session files with the file (and the line of a JSON syntax error)', () => {
    const bad = path.join(tmp, 'bad-cc');
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, 'trace_0001.json'), '{\n  "id": "x",\n  "requests": [\n    {"t": 0, "in": 10,, "out": 1}\n  ]\n}\n');
    const syntax = errorOf(() => loadClaudeCode(bad));
    expect(syntax.code).toBe('ERR_SAGA_BAD_TRACE');
    expect(syntax.message).toContain(`${path.join(bad, 'trace_0001.json')}:4`);
    fs.writeFileSync(path.join(bad, 'trace_0001.json'), '{"id": "x", "requests": [{"t": 0, "type": "n", "in": 10, "out": 1, "hash_ids": [1, -1]}]}');
    expect(errorOf(() => loadClaudeCode(bad)).message).toMatch(/requests\[0\]\.hash_ids\[1\]/);
    const empty = path.join(tmp, 'empty-cc');
    fs.mkdirSync(empty);
    expect(errorOf(() => loadClaudeCode(empty)).message).toMatch(/no trace_\*\.json/);
  });
});

describe('format detection and missing files', () => {
  it('tells the formats apart', () => {
    expect(detectFormat(fixture('claude-code'))).toBe('claude-code');
    expect(detectFormat(fixture('claude-code/trace_0002.json'))).toBe('claude-code');
    expect(detectFormat(fixture('claude-code/trace_0001.json'))).toBe('claude-code'); // pretty-printed
    expect(detectFormat(fixture('mini.mooncake.jsonl'))).toBe('mooncake');
    expect(detectFormat(fixture('mini.saga.jsonl'))).toBe('jsonl');
    expect(detectFormat(gzipCopy(fixture('mini.saga.jsonl'), 'mini.saga.jsonl.gz'))).toBe('jsonl');
    expect(loadTrace(fixture('mini.saga.jsonl')).name).toBe('jsonl:mini.saga.jsonl');
    expect(loadTrace(fixture('mini.saga.jsonl'), { format: 'mooncake' }).tasks).toHaveLength(5);
    const junk = path.join(tmp, 'junk.txt');
    fs.writeFileSync(junk, 'hello\n');
    const err = errorOf(() => detectFormat(junk));
    expect(err.code).toBe('ERR_SAGA_BAD_TRACE');
    expect(err.message).toMatch(/--format/);
  });

  it('a missing path is ERR_SAGA_TRACE_NOT_FOUND', () => {
    for (const fn of [() => loadTrace('/no/such/trace.jsonl'), () => loadMooncake('/no/such.jsonl'), () => loadClaudeCode('/no/such/dir')]) {
      const err = errorOf(fn);
      expect(err.code).toBe('ERR_SAGA_TRACE_NOT_FOUND');
      expect(err.message).toMatch(/no such file/);
    }
    expect(errorOf(() => loadTrace(fixture('claude-code'), { format: 'jsonl' })).code).toBe('ERR_SAGA_BAD_ARGUMENT');
  });
});

if (!fs.existsSync(SHARED)) console.warn(`loaders.test.ts: skipping the shipped-trace tests: ${SHARED} is absent (check out ../shared beside the repository)`);

describe.skipIf(!fs.existsSync(SHARED))('shipped traces', () => {
  it('Mooncake conversation: 12,031 requests, 288,500 block reads, 182,790 distinct blocks', () => {
    const w = loadTrace(path.join(SHARED, 'mooncake/conversation_trace.jsonl.gz'));
    expect(w.tasks).toHaveLength(12031);
    let readsTotal = 0;
    const distinct = new Set<bigint>();
    for (const t of w.tasks) {
      for (const c of t.calls) {
        for (const h of reads(c)) {
          readsTotal++;
          distinct.add(h);
        }
      }
    }
    expect(readsTotal).toBe(288500);
    expect(distinct.size).toBe(182790);
  });

  it('Claude Code: 146 sessions and their 11 sub-agents, 7,296 calls, starts within the window', () => {
    const dir = path.join(SHARED, 'claude-code');
    const w = loadTrace(dir, { blockSize: 512 });
    expect(w.tasks.filter((t) => t.kind === 'claude-code')).toHaveLength(146);
    expect(w.tasks.filter((t) => t.kind.startsWith('claude-code:'))).toHaveLength(11);
    expect(w.tasks.reduce((n, t) => n + t.calls.length, 0)).toBe(7296);
    for (const t of w.tasks) {
      expect(t.arrivalS).toBeGreaterThanOrEqual(0);
      for (const c of t.calls) expect(c.gapAfterS).toBeGreaterThanOrEqual(0);
    }
    const sessions = w.tasks.filter((t) => t.kind === 'claude-code');
    for (const t of sessions) expect(t.arrivalS).toBeLessThan(3600);
  });
}, 30_000);

