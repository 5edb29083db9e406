/**
 * Reading trace files (gzip or plain, told apart by their first bytes, whatever the name says) and
 * recognising their format, with the errors every loader raises.
 *
 * Detection (`--format auto`):
 * - a directory: Claude Code sessions (`trace_*.json` / `trace_*.json.gz` inside);
 * - a file whose first line is a JSON object with a `requests` array, or which as a whole is one:
 *   a Claude Code session file;
 * - a file whose first line is a JSON object with `hash_ids`: JSONL, SAGA's own when that line has
 *   any of SAGA's optional fields (`session`, `tenant`, `kind`, `stop`, `api_time`, `think_time`,
 *   `block_size`), else Mooncake's (the two read alike; the name only changes labels and defaults).
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { SagaError } from '../../errors';

export type TraceFormat = 'claude-code' | 'mooncake' | 'jsonl';
export const TRACE_FORMATS: readonly TraceFormat[] = ['claude-code', 'mooncake', 'jsonl'];

/** SAGA JSONL's fields beyond Mooncake's. */
export const SAGA_JSONL_EXTRA_FIELDS = ['session', 'tenant', 'kind', 'stop', 'api_time', 'think_time', 'block_size'] as const;

/** A malformed trace: names the file and, where there is one, the line (1-based). */
export function badTrace(file: string, line: number | undefined, message: string): SagaError {
  const where = line === undefined ? file : `${file}:${line}`;
  return new SagaError(`bad trace ${where}: ${message}`, 'ERR_SAGA_BAD_TRACE');
}

function notFound(file: string, why: string): SagaError {
  return new SagaError(`cannot read trace ${file}: ${why}`, 'ERR_SAGA_TRACE_NOT_FOUND');
}

/** Stats `file`, turning "no such file" and friends into ERR_SAGA_TRACE_NOT_FOUND. */
export function statTrace(file: string): fs.Stats {
  try {
    return fs.statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw notFound(file, code === 'ENOENT' ? 'no such file or directory' : (err as Error).message);
  }
}

/** The text of a trace file, gunzipped when it starts with gzip's magic bytes. */
export function readTraceText(file: string): string {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') throw notFound(file, 'is a directory (a directory is read as Claude Code sessions)');
    throw notFound(file, code === 'ENOENT' ? 'no such file or directory' : (err as Error).message);
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = zlib.gunzipSync(bytes);
    } catch (err) {
      throw badTrace(file, undefined, `gzip data is corrupt (${(err as Error).message})`);
    }
  }
  return bytes.toString('utf8');
}

function firstLine(text: string): { line: string; number: number } | undefined {
  let start = 0;
  let number = 1;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end).trim();
    if (line !== '') return { line, number };
    start = end + 1;
    number++;
  }
  return undefined;
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The format of a trace file's text (see the module comment); `file` is for messages. */
export function detectFormatOfText(text: string, file: string): TraceFormat {
  const first = firstLine(text);
  if (first === undefined) throw badTrace(file, undefined, 'the file is empty');
  const head = parseObject(first.line) ?? (first.line.startsWith('{') ? parseObject(text) : undefined);
  if (head !== undefined) {
    if (Array.isArray(head.requests)) return 'claude-code';
    if ('hash_ids' in head) return SAGA_JSONL_EXTRA_FIELDS.some((f) => f in head) ? 'jsonl' : 'mooncake';
  }
  throw badTrace(
    file,
    first.number,
    'cannot tell the format: expected a Claude Code session (a JSON object with "requests") or JSONL lines with "hash_ids"; ' +
      'give --format claude-code|mooncake|jsonl to say which',
  );
}

/** The format of the trace at `tracePath` (a directory is Claude Code sessions). */
export function detectFormat(tracePath: string): TraceFormat {
  if (statTrace(tracePath).isDirectory()) return 'claude-code';
  return detectFormatOfText(readTraceText(tracePath), tracePath);
}
