/**
 * `saga model create` (a random-weight GGUF for tests and demos) and `saga engine` (the OpenAI-compatible
 * server on llama.cpp whose KV residency a SAGA policy decides).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { badArgument } from '../errors';
import { isOraclePolicy, policyNames } from '../policy/index';
import { cliInteger } from '../util/cli_numbers';
import { ENGINE_DEFAULTS, LlamaEngine, type LlamaEngineOptions } from './llama_engine';
import { RANDOM_MODEL_PRESETS, createRandomModel, type RandomModelPresetName } from './random_model';
import { createEngineServer } from './server';

const DEFAULT_PORT = 8080;
const DEFAULT_HOST = '127.0.0.1';

function addModelCommand(program: Command): void {
  const model = program.command('model').description('model files for saga engine');
  model
    .command('create')
    .description('write a Llama GGUF with RANDOM weights (for tests and demos only: its output is noise; its prefill and decode costs are real)')
    .argument('<OUT>', 'the .gguf file to write')
    .option('--preset <name>', Object.entries(RANDOM_MODEL_PRESETS).map(([k, p]) => `${k} (${p.description})`).join('; '), 'tiny')
    .option('--seed <S>', 'seed of the weights (same seed, same bytes)', '1')
    .action((out: string, opts: { preset: string; seed: string }) => {
      if (!Object.prototype.hasOwnProperty.call(RANDOM_MODEL_PRESETS, opts.preset)) throw badArgument(`--preset must be one of ${Object.keys(RANDOM_MODEL_PRESETS).join(', ')}, got "${opts.preset}"`);
      const seed = cliInteger('--seed', opts.seed, 0, 0xffffffff);
      const dir = path.dirname(path.resolve(out));
      if (!fs.existsSync(dir)) throw badArgument(`no directory ${dir} to write ${out} in`);
      const bytes = createRandomModel({ preset: opts.preset as RandomModelPresetName, seed, outPath: out });
      console.log(`wrote ${out}: ${opts.preset} preset, seed ${seed}, ${(bytes / 1e6).toFixed(1)} MB (random weights: for tests and demos only)`);
    });
}

interface EngineCliOptions {
  model: string;
  sequences: string;
  context?: string;
  policy: string;
  port: string;
  host: string;
  threads: string;
  hostTierMib: string;
  hostDir?: string;
}

function addEngineCommand(program: Command): void {
  const runnable = policyNames().filter((p) => !isOraclePolicy(p));
  program
    .command('engine')
    .description(
      'serve a GGUF model over an OpenAI-compatible API (llama.cpp, CPU) with SAGA deciding which agent sessions keep their KV resident, ' +
        'which go to the host tier and which are dropped; sessions from x-saga-session / x-saga-tenant / x-saga-kind headers or the `user` field',
    )
    .requiredOption('--model <PATH>', 'GGUF model file (saga model create writes a random one for demos)')
    .option('--sequences <N>', 'sequences in the context: sessions whose KV stays resident at once', String(ENGINE_DEFAULTS.sequences))
    .option('--context <TOKENS>', `tokens per sequence (default: ${ENGINE_DEFAULTS.contextSize} or the model's own, if smaller)`)
    .option('--policy <name>', `policy bundle: ${runnable.join(', ')}`, ENGINE_DEFAULTS.policy)
    .option('--host-tier-mib <MiB>', 'host-memory tier for offloaded sessions (state files; 0: none, as vLLM by default)', String(ENGINE_DEFAULTS.hostTierMiB))
    .option('--host-dir <DIR>', 'directory of the host tier (default /dev/shm, else the temp dir)')
    .option('--threads <N>', 'CPU threads for llama.cpp', String(ENGINE_DEFAULTS.threads))
    .option('--port <P>', 'TCP port (0: any free one)', String(DEFAULT_PORT))
    .option('--host <ADDR>', 'address to listen on', DEFAULT_HOST)
    .action(async (opts: EngineCliOptions) => {
      const options: LlamaEngineOptions = {
        modelPath: opts.model,
        sequences: cliInteger('--sequences', opts.sequences, 1, 1024),
        ...(opts.context === undefined ? {} : { contextSize: cliInteger('--context', opts.context, 16) }),
        policy: opts.policy,
        threads: cliInteger('--threads', opts.threads, 1, 1024),
        hostTierMiB: cliInteger('--host-tier-mib', opts.hostTierMib, 0),
        ...(opts.hostDir === undefined ? {} : { hostDir: opts.hostDir }),
      };
      const port = cliInteger('--port', opts.port, 0, 65535);
      const engine = await LlamaEngine.create(options);
      const server = createEngineServer({
        engines: [engine],
        loadModel: (modelPath) => LlamaEngine.create({ ...options, modelPath, modelId: undefined }),
      });
      const address = await server.listen({ port, host: opts.host });
      // One line a launcher can wait for.
      console.log(`saga engine: ${engine.modelId} on ${address} (policy ${engine.policyName}, ${options.sequences} sequences x ${engine.contextSize} tokens)`);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await server.close();
      await engine.close();
    });
}

export function addEngineCommands(program: Command): void {
  addModelCommand(program);
  addEngineCommand(program);
}
