/**
 * Claude Code session traces (kv-cache-tester's format): one JSON object per file, `trace_*.json` or
 * `trace_*.json.gz`, read from a directory (every such file, in name order; where both the plain and
 * the gzipped file of a name exist, the plain one) or from a single file.
 *
 * A file is one session: `id`, `block_size` (64), and `requests` in time order; a request has `t`
 * (seconds since the session's start), `in` / `out` tokens, `hash_ids` (one id per full block,
 * prefix-chained, local to the file), `stop`, `api_time`, `think_time`. An entry of type `subagent`
 * holds a nested agent's own `requests`, their `t` relative to the sub-agent's start.
 *
 * Mapping to the Workload:
 * - each session is a task (id = the file's `id`, kind `claude-code`); each sub-agent is its own task
 *   (id `<session>/<agent_id>`, kind `claude-code:<subagent_type>`), nested ones too;
 * - session starts are not published, so they are spread uniformly at random over `windowS` (default
 *   3600 s) by a seeded generator (lib/util/random.ts, mulberry32; default seed 1): one draw per file in
 *   name order, so the same files, window and seed give the same workload;
 * - a sub-agent starts at its entry's `t - duration_ms / 1000` (relative to its parent's start): in the
 *   shipped traces the entry's `t` is the sub-agent's completion (its `duration_ms` later than its start),
 *   and that start matches the end of the parent request that launched it (its `t + api_time`) within a
 *   second; without `duration_ms` the entry's `t` is taken as the start;
 * - a task arrives at its start plus its first request's `t` (0 in every shipped file); a call's
 *   traceOffsetS is its `t` less that first `t`, traceApiS its `api_time`, gapAfterS from `t`, `api_time`
 *   and the next request's `think_time` (saga_jsonl.ts, traceGapS: never negative);
 * - hash ids are chained within the file's own scope (session number in name order, from 1), so two
 *   sessions never share a block while a session and its sub-agents can (../hashing.ts); `blockSize`
 *   re-blocks 64-token blocks into larger ones by taking every k-th id.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Call, Task, Workload } from '../types';
import { HashBuffer, type HashedCall, idCountProblem, reblockFactor } from '../hashing';
import { Random } from '../../util/random';
import { badArgument } from '../../errors';
import { badTrace, readTraceText, statTrace } from './detect';
import { traceGapS } from './saga_jsonl';

export const CLAUDE_CODE_DEFAULT_WINDOW_S = 3600;
export const CLAUDE_CODE_DEFAULT_SEED = 1;
const TRACE_FILE = /^trace_.*\.json(\.gz)?$/;

export interface ClaudeCodeLoadOptions {
  /** Tokens per block wanted: a multiple of the files' block_size (default: theirs, 64). */
  blockSize?: number;
  /** Seconds over which session starts are spread (default 3600). */
  windowS?: number;
  /** Seed of the spreading (default 1). */
  seed?: number;
  /** Tenant of every task (default `default`). */
  tenant?: string;
}

/** The session files a path names: the directory's trace_*.json(.gz), or the file itself. */
export function claudeCodeFiles(tracePath: string): string[] {
  if (!statTrace(tracePath).isDirectory()) return [tracePath];
  const names = fs.readdirSync(tracePath).filter((n) => TRACE_FILE.test(n)).sort();
  const seen = new Set<string>();
  const files: string[] = [];
  for (const name of names) {
    const stem = name.replace(/\.gz$/, '');
    if (seen.has(stem)) continue;
    seen.add(stem);
    files.push(path.join(tracePath, name));
  }
  if (files.length === 0) throw badTrace(tracePath, undefined, 'no trace_*.json or trace_*.json.gz files in the directory');
  return files;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

/** JSON.parse with the line of a syntax error in the message. */
function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const m = /position (\d+)/.exec(message);
    const line = m ? text.slice(0, Number(m[1])).split('\n').length : undefined;
    throw badTrace(file, line, `not valid JSON (${message})`);
  }
}

interface SessionContext {
  file: string;
  sessionId: string;
  scope: number;
  sourceBlockSize: number;
  tenant: string;
  hashes: HashBuffer;
  layout: { sourceBlockSize: number; blockSize: number };
  pending: { call: Call; hashed: HashedCall }[];
  tasks: Task[];
  subagents: number;
}

/**
 * Adds the task made of `requests` (at JSON path `where`) starting at `startS`, then its sub-agents'
 * tasks, depth first.
 */
function addAgent(ctx: SessionContext, requests: unknown, where: string, startS: number, id: string, kind: string): void {
  const bad = (message: string) => badTrace(ctx.file, undefined, message);
  if (!Array.isArray(requests)) throw bad(`${where} must be an array of requests`);
  const own: { r: Obj; at: string }[] = [];
  const subs: { r: Obj; at: string }[] = [];
  for (let i = 0; i < requests.length; i++) {
    const r: unknown = requests[i];
    const at = `${where}[${i}]`;
    if (!isObj(r)) throw bad(`${at} must be an object`);
    if (!isTime(r.t)) throw bad(`${at}.t must be seconds >= 0, got ${JSON.stringify(r.t)}`);
    if (r.type === 'subagent') {
      subs.push({ r, at });
      continue;
    }
    if (!isCount(r.in)) throw bad(`${at}.in must be an integer >= 0, got ${JSON.stringify(r.in)}`);
    if (!isCount(r.out)) throw bad(`${at}.out must be an integer >= 0, got ${JSON.stringify(r.out)}`);
    if (!Array.isArray(r.hash_ids)) throw bad(`${at}.hash_ids must be an array of integers >= 0`);
    for (let j = 0; j < r.hash_ids.length; j++) {
      if (!isCount(r.hash_ids[j])) throw bad(`${at}.hash_ids[${j}] must be an integer >= 0, got ${JSON.stringify(r.hash_ids[j])}`);
    }
    const problem = idCountProblem(r.hash_ids.length, r.in, ctx.sourceBlockSize);
    if (problem !== undefined) throw bad(`${at}: ${problem}`);
    for (const f of ['api_time', 'think_time']) {
      if (r[f] !== undefined && r[f] !== null && !isTime(r[f])) throw bad(`${at}.${f} must be seconds >= 0, got ${JSON.stringify(r[f])}`);
    }
    own.push({ r, at });
  }
  if (own.length > 0) {
    const t0 = own[0].r.t as number;
    const calls: Call[] = [];
    for (let i = 0; i < own.length; i++) {
      const r = own[i].r;
      const t = r.t as number;
      const apiS = isTime(r.api_time) ? r.api_time : undefined;
      const next = own[i + 1]?.r;
      const hashed = ctx.hashes.addCall(r.hash_ids as number[], r.in as number, ctx.scope, ctx.layout);
      const call: Call = {
        blockHashes: new BigUint64Array(0),
        promptTokens: r.in as number,
        outputTokens: r.out as number,
        gapAfterS: next === undefined ? 0 : traceGapS(t, apiS, next.t as number, isTime(next.think_time) ? next.think_time : undefined),
        traceOffsetS: t - t0,
      };
      if (typeof r.stop === 'string' && r.stop !== '') call.stop = r.stop;
      if (apiS !== undefined) call.traceApiS = apiS;
      if (hashed.partialBlockHash !== undefined) call.partialBlockHash = hashed.partialBlockHash;
      ctx.pending.push({ call, hashed });
      calls.push(call);
    }
    ctx.tasks.push({ id, tenant: ctx.tenant, kind, arrivalS: startS + t0, calls });
  }
  for (const { r, at } of subs) {
    ctx.subagents++;
    const durationS = isTime(r.duration_ms) ? r.duration_ms / 1000 : 0;
    const subStartS = startS + Math.max(0, (r.t as number) - durationS);
    const agent = typeof r.agent_id === 'string' && r.agent_id !== '' ? r.agent_id : `subagent-${ctx.subagents}`;
    const subKind = `claude-code:${typeof r.subagent_type === 'string' && r.subagent_type !== '' ? r.subagent_type : 'subagent'}`;
    addAgent(ctx, r.requests, `${at}.requests`, subStartS, `${id}/${agent}`, subKind);
  }
}

/** Loads Claude Code sessions from a directory of trace_*.json(.gz) files or from one such file. */
export function loadClaudeCode(tracePath: string, options: ClaudeCodeLoadOptions = {}): Workload {
  const windowS = options.windowS ?? CLAUDE_CODE_DEFAULT_WINDOW_S;
  const seed = options.seed ?? CLAUDE_CODE_DEFAULT_SEED;
  if (!isTime(windowS)) throw badArgument(`the spreading window must be seconds >= 0, got ${String(windowS)}`);
  if (!Number.isSafeInteger(seed)) throw badArgument(`the seed must be an integer, got ${String(seed)}`);
  const files = claudeCodeFiles(tracePath);
  const random = new Random(seed);
  const hashes = new HashBuffer();
  const pending: { call: Call; hashed: HashedCall }[] = [];
  const tasks: Task[] = [];
  let blockSize = options.blockSize;
  const ids = new Set<string>();
  for (let s = 0; s < files.length; s++) {
    const file = files[s];
    const startS = random.uniform(0, windowS);
    const doc = parseJson(readTraceText(file), file);
    if (!isObj(doc)) throw badTrace(file, undefined, 'expected one JSON object (a Claude Code session)');
    const sourceBlockSize = doc.block_size ?? 64;
    if (!isCount(sourceBlockSize) || sourceBlockSize === 0) {
      throw badTrace(file, undefined, `block_size must be a positive integer, got ${JSON.stringify(doc.block_size)}`);
    }
    blockSize ??= sourceBlockSize;
    const k = reblockFactor(sourceBlockSize, blockSize);
    if (typeof k === 'string') throw badArgument(`${k} (${file})`);
    const sessionId =
      typeof doc.id === 'string' && doc.id !== '' ? doc.id : path.basename(file).replace(/\.json(\.gz)?$/, '');
    if (ids.has(sessionId)) throw badTrace(file, undefined, `session id "${sessionId}" appears in two files`);
    ids.add(sessionId);
    const ctx: SessionContext = {
      file,
      sessionId,
      scope: s + 1,
      sourceBlockSize,
      tenant: options.tenant ?? 'default',
      hashes,
      layout: { sourceBlockSize, blockSize },
      pending,
      tasks,
      subagents: 0,
    };
    addAgent(ctx, doc.requests, 'requests', startS, sessionId, 'claude-code');
  }
  const buffer = hashes.finish();
  for (const { call, hashed } of pending) call.blockHashes = buffer.subarray(hashed.offset, hashed.offset + hashed.count);
  tasks.sort((a, b) => a.arrivalS - b.arrivalS);
  return { name: `claude-code:${path.basename(path.resolve(tracePath))}`, blockSize: blockSize ?? 64, tasks };
}
