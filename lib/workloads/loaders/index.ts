/**
 * Trace loaders: Claude Code sessions, Mooncake JSONL and SAGA's own JSONL, each into the one Workload
 * type (../types.ts). `loadTrace` reads any of them, telling the format from the path when asked to.
 */
import type { Workload } from '../types';
import { badArgument } from '../../errors';
import { type ClaudeCodeLoadOptions, loadClaudeCode } from './claude_code';
import { type TraceFormat, TRACE_FORMATS, detectFormatOfText, readTraceText, statTrace } from './detect';
import { parseMooncake } from './mooncake';
import { parseJsonlTrace } from './saga_jsonl';

export { loadClaudeCode, claudeCodeFiles, CLAUDE_CODE_DEFAULT_SEED, CLAUDE_CODE_DEFAULT_WINDOW_S, type ClaudeCodeLoadOptions } from './claude_code';
export { loadMooncake, parseMooncake, MOONCAKE_BLOCK_SIZE } from './mooncake';
export { loadSagaJsonl, parseJsonlTrace, traceGapS, type JsonlLoadOptions } from './saga_jsonl';
export { detectFormat, detectFormatOfText, readTraceText, badTrace, TRACE_FORMATS, type TraceFormat } from './detect';

export interface TraceLoadOptions extends ClaudeCodeLoadOptions {
  /** `auto` (default) or one of TRACE_FORMATS. */
  format?: TraceFormat | 'auto';
}

/** Loads the trace at `tracePath` (a file, `.gz` or plain, or a directory of Claude Code sessions). */
export function loadTrace(tracePath: string, options: TraceLoadOptions = {}): Workload {
  const format = options.format ?? 'auto';
  if (format !== 'auto' && !TRACE_FORMATS.includes(format)) {
    throw badArgument(`unknown trace format "${String(format)}" (auto, ${TRACE_FORMATS.join(', ')})`);
  }
  const isDirectory = statTrace(tracePath).isDirectory();
  if (isDirectory || format === 'claude-code') {
    if (format !== 'auto' && format !== 'claude-code') {
      throw badArgument(`${tracePath} is a directory: only Claude Code sessions (--format claude-code) are read from one`);
    }
    return loadClaudeCode(tracePath, options);
  }
  const text = readTraceText(tracePath);
  const chosen = format === 'auto' ? detectFormatOfText(text, tracePath) : format;
  const jsonlOptions = options.blockSize === undefined ? {} : { blockSize: options.blockSize };
  switch (chosen) {
    case 'claude-code':
      return loadClaudeCode(tracePath, options);
    case 'mooncake':
      return parseMooncake(text, tracePath, jsonlOptions);
    case 'jsonl':
      return parseJsonlTrace(text, tracePath, 'jsonl', jsonlOptions);
  }
}
