/**
 * `saga replay`: the command-line face of ./run.ts. Every bad input (a missing file, a malformed line,
 * an unknown policy, a capacity of zero, a bad number) ends in one SagaError, which bin/saga.js prints
 * as one line (`saga: ... (ERR_SAGA_...)`) with a non-zero exit.
 */
import * as fs from 'node:fs';
import { Command, Option } from 'commander';
import { badArgument } from '../errors';
import { CLAUDE_CODE_DEFAULT_SEED, CLAUDE_CODE_DEFAULT_WINDOW_S, loadTrace, type TraceLoadOptions } from '../workloads/loaders';
import type { TraceFormat } from '../workloads/loaders/detect';
import { parseCapacity } from './capacity';
import { evictionPolicyDescription, evictionPolicyNames, parseEvictionPolicyList } from './policies';
import { formatReplayTable, runReplay } from './run';
import { cliInteger } from '../util/cli_numbers';

interface ReplayCliOptions {
  trace: string;
  format: TraceFormat | 'auto';
  blockSize?: string;
  capacity: string;
  policies: string;
  window: string;
  seed: string;
  json?: string;
}

function replay(opts: ReplayCliOptions): void {
  // Everything the user typed is checked before the trace is read.
  const policies = parseEvictionPolicyList(opts.policies);
  const capacity = parseCapacity(opts.capacity);
  const load: TraceLoadOptions = { format: opts.format };
  if (opts.blockSize !== undefined) load.blockSize = cliInteger('--block-size', opts.blockSize, 1);
  const windowS = Number(opts.window);
  if (opts.window.trim() === '' || !Number.isFinite(windowS) || windowS < 0) throw badArgument(`--window must be seconds >= 0, got "${opts.window}"`);
  load.windowS = windowS;
  load.seed = cliInteger('--seed', opts.seed);

  const workload = loadTrace(opts.trace, load);
  const tty = process.stderr.isTTY === true;
  const report = runReplay(workload, {
    policies,
    capacity,
    ...(tty ? { onProgress: (policy: string, done: number, total: number) => process.stderr.write(`\rreplaying ${policy}: ${done}/${total} requests\x1b[K`) } : {}),
  });
  if (tty) process.stderr.write('\r\x1b[K');
  if (opts.json !== undefined) {
    const text = `${JSON.stringify(report, null, 2)}\n`;
    if (opts.json === '-') {
      process.stdout.write(text);
      return;
    }
    try {
      fs.writeFileSync(opts.json, text);
    } catch (err) {
      throw badArgument(`cannot write --json ${opts.json}: ${(err as Error).message}`);
    }
  }
  console.log(formatReplayTable(report));
}

/** Adds `replay` to the `saga` program. */
export function addReplayCommand(program: Command): Command {
  const known = evictionPolicyNames()
    .map((name) => `  ${name.padEnd(8)}${evictionPolicyDescription(name)}`)
    .join('\n');
  return program
    .command('replay')
    .description(
      'block-level replay of a trace under eviction policies, no timing model: requests in timestamp order, each reads all its ' +
        'blocks (a read hits when the block is cached), then all its blocks are cached and the cache is trimmed to capacity in the ' +
        "policy's eviction order. Prints hit rate (hit block reads / block reads), missed blocks and the miss ratio against " +
        "Bélády's MIN, the offline oracle, reported as a bound.",
    )
    .requiredOption('--trace <path>', 'trace: a Mooncake or SAGA JSONL file, a Claude Code session file (each .gz or plain), or a directory of Claude Code trace_*.json(.gz) files')
    .addOption(
      new Option('--format <format>', 'trace format; auto tells it from the path and first line')
        .choices(['auto', 'claude-code', 'mooncake', 'jsonl'])
        .default('auto'),
    )
    .option('--block-size <tokens>', "tokens per block: the trace's own (64 for Claude Code, 512 for Mooncake and by default SAGA JSONL) or a multiple of it, formed from every k-th prefix-chained id (default: the trace's)")
    .option('--capacity <blocks|N%>', 'cache size: a number of blocks, or N% of the distinct blocks in the trace, rounded (must come to at least 1 block)', '5%')
    .option('--policies <list>', 'comma-separated eviction policies (listed below), in the order to report them', 'lru,belady')
    .option('--window <seconds>', 'Claude Code only: session starts are spread uniformly at random over this many seconds', String(CLAUDE_CODE_DEFAULT_WINDOW_S))
    .option('--seed <n>', 'Claude Code only: seed of that spreading (same seed, same replay)', String(CLAUDE_CODE_DEFAULT_SEED))
    .option('--json <file>', "also write the results as JSON to <file> ('-': print the JSON instead of the table): {trace, capacityBlocks, results: [{policy, bound, hitRate, missedBlocks, missRatioVsBelady, ...}], note}")
    .showHelpAfterError("(saga replay --help lists the options)")
    .addHelpText(
      'after',
      `\nPolicies:\n${known}\n\nExamples:\n` +
        '  saga replay --trace traces/mooncake/conversation_trace.jsonl.gz --capacity 1%\n' +
        '  saga replay --trace traces/claude-code --block-size 512 --capacity 5% --seed 7 --json out.json\n' +
        '  saga replay --trace mine.jsonl.gz --format jsonl --capacity 20000 --policies lru',
    )
    .action((opts: ReplayCliOptions) => replay(opts));
}
