/**
 * Mooncake's traces (Kimi production, FAST'25): JSONL, one request a line with `timestamp` (ms),
 * `input_length`, `output_length` and `hash_ids` (one id per started 512-token block, prefix-chained,
 * global to the file; the last id of a prompt that does not end on a block boundary names its partial
 * block, kept as the call's partialBlockHash). No sessions: every request is its own single-call task
 * (tenant `default`, kind `mooncake`), arriving at its timestamp. Other fields on a line are ignored;
 * SAGA's own JSONL (./saga_jsonl.ts) is the superset that reads sessions and times.
 */
import type { Workload } from '../types';
import { readTraceText } from './detect';
import { type JsonlLoadOptions, parseJsonlTrace } from './saga_jsonl';

export { MOONCAKE_BLOCK_SIZE } from './saga_jsonl';

/** Parses Mooncake JSONL text (`file` names it in messages). */
export function parseMooncake(text: string, file: string, options: JsonlLoadOptions = {}): Workload {
  return parseJsonlTrace(text, file, 'mooncake', options);
}

/** Loads a Mooncake trace (`.jsonl.gz` or plain `.jsonl`). */
export function loadMooncake(file: string, options: JsonlLoadOptions = {}): Workload {
  return parseMooncake(readTraceText(file), file, options);
}
