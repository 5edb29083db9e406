/**
 * SAGA's own trace format: JSONL, one LLM call a line. Mooncake's fields plus optional ones:
 *
 * | field | | meaning |
 * | --- | --- | --- |
 * | `timestamp` | required | ms since the trace's start, when the call was issued |
 * | `input_length` | required | prompt tokens |
 * | `output_length` | required | output tokens |
 * | `hash_ids` | required | one id per block of the prompt, prefix-chained (equal id = equal prefix); at most one per started block, a last id for a partial block allowed (Mooncake gives one) |
 * | `session` | optional | string or number; lines with the same session are one agent program (task), in timestamp order. Lines without one are each their own task |
 * | `tenant` | optional | the session's tenant (default `default`) |
 * | `kind` | optional | workflow kind (default `jsonl`; `mooncake` for Mooncake files) |
 * | `stop` | optional | why the call stopped (`tool_use`, `end_turn`, ...) |
 * | `api_time` | optional | seconds the call took |
 * | `think_time` | optional | seconds of tool or user time before this call |
 * | `block_size` | optional | tokens per hash id (default 512, Mooncake's); the same on every line that gives it |
 *
 * Mooncake's files (`--format mooncake`) are read by the same parser with only Mooncake's four fields.
 * Ids are global to the file (chain scope 0, see ../hashing.ts). A task's tenant and kind come from its
 * first line. Times: a task arrives at its first call's timestamp; traceOffsetS = timestamp - arrival;
 * gapAfterS (see traceGapS) from the timestamps, `api_time` and the next call's `think_time`.
 */
import * as path from 'node:path';
import type { Call, Task, Workload } from '../types';
import { HashBuffer, type HashedCall, idCountProblem, reblockFactor } from '../hashing';
import { badTrace, readTraceText } from './detect';
import { badArgument } from '../../errors';

/** Mooncake's tokens per hash id. */
export const MOONCAKE_BLOCK_SIZE = 512;

export interface JsonlLoadOptions {
  /** Tokens per block wanted: a multiple of the trace's block size (default: the trace's). */
  blockSize?: number;
}

/**
 * Seconds of tool or user time between a call and the next one of its task, never negative: the time
 * between the two issues less the call's own `api_time` when the trace has it; else the next call's
 * `think_time` when the trace has that; else the whole time between the issues.
 */
export function traceGapS(issueS: number, apiS: number | undefined, nextIssueS: number, nextThinkS: number | undefined): number {
  let gap: number;
  if (apiS !== undefined) gap = nextIssueS - issueS - apiS;
  else if (nextThinkS !== undefined) gap = nextThinkS;
  else gap = nextIssueS - issueS;
  return gap > 0 ? gap : 0;
}

interface Line {
  number: number;
  timestampMs: number;
  inputLength: number;
  outputLength: number;
  hashIds: number[];
  session?: string;
  tenant?: string;
  kind?: string;
  stop?: string;
  apiS?: number;
  thinkS?: number;
}

type Fields = Record<string, unknown>;

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

function parseLine(o: Fields, number: number, file: string, saga: boolean): Line {
  const bad = (message: string) => badTrace(file, number, message);
  for (const f of ['timestamp', 'input_length', 'output_length', 'hash_ids']) {
    if (!(f in o)) throw bad(`missing "${f}"`);
  }
  if (!isTime(o.timestamp)) throw bad(`"timestamp" must be a number of ms >= 0, got ${JSON.stringify(o.timestamp)}`);
  if (!isCount(o.input_length)) throw bad(`"input_length" must be an integer >= 0, got ${JSON.stringify(o.input_length)}`);
  if (!isCount(o.output_length)) throw bad(`"output_length" must be an integer >= 0, got ${JSON.stringify(o.output_length)}`);
  const ids = o.hash_ids;
  if (!Array.isArray(ids)) throw bad(`"hash_ids" must be an array of integers >= 0`);
  for (let i = 0; i < ids.length; i++) {
    if (!isCount(ids[i])) throw bad(`"hash_ids"[${i}] must be an integer >= 0, got ${JSON.stringify(ids[i])}`);
  }
  const line: Line = {
    number,
    timestampMs: o.timestamp,
    inputLength: o.input_length,
    outputLength: o.output_length,
    hashIds: ids as number[],
  };
  if (!saga) return line;
  if (o.session !== undefined && o.session !== null) {
    if (typeof o.session !== 'string' && !(typeof o.session === 'number' && Number.isFinite(o.session))) {
      throw bad(`"session" must be a string or a number, got ${JSON.stringify(o.session)}`);
    }
    line.session = String(o.session);
  }
  for (const f of ['tenant', 'kind', 'stop'] as const) {
    const v = o[f];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') throw bad(`"${f}" must be a string, got ${JSON.stringify(v)}`);
    line[f] = v;
  }
  if (o.api_time !== undefined && o.api_time !== null) {
    if (!isTime(o.api_time)) throw bad(`"api_time" must be seconds >= 0, got ${JSON.stringify(o.api_time)}`);
    line.apiS = o.api_time;
  }
  if (o.think_time !== undefined && o.think_time !== null) {
    if (!isTime(o.think_time)) throw bad(`"think_time" must be seconds >= 0, got ${JSON.stringify(o.think_time)}`);
    line.thinkS = o.think_time;
  }
  return line;
}

/** Parses JSONL text (`file` names it in messages) in SAGA's format or, with `mooncake`, Mooncake's. */
export function parseJsonlTrace(text: string, file: string, format: 'jsonl' | 'mooncake', options: JsonlLoadOptions = {}): Workload {
  const saga = format === 'jsonl';
  const lines: Line[] = [];
  let sourceBlockSize: number | undefined;
  let blockSizeLine = 0;
  let start = 0;
  for (let number = 1; start < text.length; number++) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const raw = text.slice(start, end).trim();
    start = end + 1;
    if (raw === '') continue;
    let o: unknown;
    try {
      o = JSON.parse(raw);
    } catch (err) {
      throw badTrace(file, number, `not valid JSON (${(err as Error).message})`);
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw badTrace(file, number, 'expected a JSON object');
    const fields = o as Fields;
    if (saga && fields.block_size !== undefined) {
      const bs = fields.block_size;
      if (!isCount(bs) || bs === 0) throw badTrace(file, number, `"block_size" must be a positive integer, got ${JSON.stringify(bs)}`);
      if (sourceBlockSize !== undefined && bs !== sourceBlockSize) {
        throw badTrace(file, number, `"block_size" ${bs} differs from ${sourceBlockSize} on line ${blockSizeLine}`);
      }
      sourceBlockSize = bs;
      blockSizeLine = number;
    }
    lines.push(parseLine(fields, number, file, saga));
  }
  if (lines.length === 0) throw badTrace(file, undefined, 'no requests (the file has no JSON lines)');
  sourceBlockSize ??= MOONCAKE_BLOCK_SIZE;
  const blockSize = options.blockSize ?? sourceBlockSize;
  const k = reblockFactor(sourceBlockSize, blockSize);
  if (typeof k === 'string') throw badArgument(k);

  // Group into tasks, in order of first appearance; a task's lines in timestamp order (stable).
  const groups = new Map<string, Line[]>();
  const order: Line[][] = [];
  for (const line of lines) {
    if (line.session === undefined) {
      order.push([line]);
      continue;
    }
    let g = groups.get(line.session);
    if (g === undefined) {
      g = [];
      groups.set(line.session, g);
      order.push(g);
    }
    g.push(line);
  }

  const hashes = new HashBuffer();
  const layout = { sourceBlockSize, blockSize };
  const pending: { call: Call; hashed: HashedCall }[] = [];
  const tasks: Task[] = [];
  const ids = new Set<string>();
  const defaultKind = saga ? 'jsonl' : 'mooncake';
  for (const group of order) {
    if (group.length > 1) group.sort((a, b) => a.timestampMs - b.timestampMs);
    const first = group[0];
    const id = first.session ?? `line ${first.number}`;
    if (ids.has(id)) throw badTrace(file, first.number, `session "${id}" collides with the id given to a line without a session`);
    ids.add(id);
    const arrivalS = first.timestampMs / 1000;
    const calls: Call[] = [];
    for (let i = 0; i < group.length; i++) {
      const line = group[i];
      const problem = idCountProblem(line.hashIds.length, line.inputLength, sourceBlockSize);
      if (problem !== undefined) throw badTrace(file, line.number, problem);
      const hashed = hashes.addCall(line.hashIds, line.inputLength, 0, layout);
      const issueS = line.timestampMs / 1000;
      const next = group[i + 1];
      const call: Call = {
        blockHashes: new BigUint64Array(0),
        promptTokens: line.inputLength,
        outputTokens: line.outputLength,
        gapAfterS: next === undefined ? 0 : traceGapS(issueS, line.apiS, next.timestampMs / 1000, next.thinkS),
        traceOffsetS: issueS - arrivalS,
      };
      if (line.stop !== undefined) call.stop = line.stop;
      if (line.apiS !== undefined) call.traceApiS = line.apiS;
      if (hashed.partialBlockHash !== undefined) call.partialBlockHash = hashed.partialBlockHash;
      pending.push({ call, hashed });
      calls.push(call);
    }
    tasks.push({ id, tenant: first.tenant ?? 'default', kind: first.kind ?? defaultKind, arrivalS, calls });
  }
  const buffer = hashes.finish();
  for (const { call, hashed } of pending) call.blockHashes = buffer.subarray(hashed.offset, hashed.offset + hashed.count);
  tasks.sort((a, b) => a.arrivalS - b.arrivalS);
  return { name: `${format}:${path.basename(file)}`, blockSize, tasks };
}

/** Loads a SAGA JSONL trace (`.gz` or plain). */
export function loadSagaJsonl(file: string, options: JsonlLoadOptions = {}): Workload {
  return parseJsonlTrace(readTraceText(file), file, 'jsonl', options);
}
