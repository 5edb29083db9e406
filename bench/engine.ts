/**
 * Bench of `saga engine` against the simulator: the same agent workload replayed in real time against a
 * real llama.cpp engine (the `small` random-weight model, one CPU thread) once per policy, and simulated
 * on one engine whose cost model is calibrated to this CPU and model, so that the two can be compared:
 * does `saga` complete agent programs faster than `vllm` on a real engine, and how well does the
 * simulator predict what the engine does?
 *
 *   npm run bench:engine                          the configuration reported in bench/RESULTS.md
 *   npm run bench:engine -- --quick               a smoke test (3 small tasks, ~2 minutes)
 *   npm run bench:engine -- --host-tier-mib 96    both policies with a host tier of state files
 *   npm run bench:engine -- --predict-only        the calibration and the simulator's figures only
 *   npm run bench:engine -- --seed 2 --tasks 8 --rate 0.02 --time-scale 0.2 --context 4096 --workload mixed ...
 *
 * What it does, in order:
 * 1. writes the `small` model (createRandomModel) into a temp dir;
 * 2. generates the workload (generateWorkload, seeded) and scales it down to the engine (scaleWorkload:
 *    tokens x token-scale, times x time-scale, each task cut where its context would overflow a sequence);
 * 3. calibrates: prefill and decode of the model on one thread through node-llama-cpp, fitted to the
 *    simulator's roofline (CostModel) as an effective FLOP/s, attention efficiency and bandwidth;
 * 4. per policy, one at a time (two engines would share the 2 cores): starts `saga engine` as a child
 *    process, replays the workload over HTTP (/v1/completions, identity headers, ignore_eos, max_tokens =
 *    the call's output), reads its counters from /metrics, stops it;
 * 5. simulates the same workload under each policy on the simulated saga engine (lib/sim/sequence_engine.ts:
 *    its sequences each holding one session, the same victims and holds) with the calibrated costs;
 * 6. prints the configuration, the machine, the calibration, measured vs predicted, and the speedups.
 *
 * Timings are wall-clock on a shared machine: other processes running at the same time slow the engine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { PROMPT_EXTRA_TOKENS, runAgentWorkload, type AgentCall, type AgentCallResult } from '../lib/engine/agent_client';
import { loadLlamaRuntime, type LlamaContextSequence } from '../lib/engine/llama_runtime';
import { RANDOM_MODEL_PRESETS, buildVocabulary, createRandomModel } from '../lib/engine/random_model';
import type { GpuPreset, ModelPreset } from '../lib/constants';
import { geomean, quantile } from '../lib/metrics/metrics';
import { createPolicy } from '../lib/policy/index';
import { simulateSequenceEngine } from '../lib/sim/sequence_engine';
import { CostModel, type BatchShape, type CostConstants, kvBytesPerToken, parameterCounts } from '../lib/sim/cost_model';
import { generateWorkload } from '../lib/workloads/generators/index';
import { scaleWorkload } from '../lib/workloads/scale';
import type { Workload } from '../lib/workloads/types';
import { Random } from '../lib/util/random';

const REPO = path.resolve(__dirname, '..');
const MODEL_PRESET = 'small';
const MODEL_SEED = 1;
/** What `saga engine` runs with: one thread (two collapse decode on these 2-core machines, issue 5). */
const ENGINE_THREADS = 1;
/** node-llama-cpp's batch (prefill chunk) in LlamaEngine: min(512, context). */
const ENGINE_BATCH_TOKENS = 512;
/** The engine generates until max_tokens (ignore_eos), so every call finishes with this reason. */
const ENGINE_FINISH_REASON = 'length';
/** How long an engine may take to load and listen, and to stop, before the bench gives up on it. */
const ENGINE_START_TIMEOUT_MS = 120_000;
const ENGINE_STOP_TIMEOUT_MS = 30_000;
/** Calibration: repetitions per measurement (the median is kept) and decode steps per measurement. */
const CALIBRATION_REPS = 3;
const CALIBRATION_DECODE_STEPS = 32;
/** Calibration: the short prompt of the prefill fit, and the short context of the decode check. */
const CALIBRATION_SHORT_TOKENS = 256;
const CALIBRATION_SHORT_CONTEXT = 64;

interface BenchConfig {
  readonly workload: string;
  readonly tasks: number;
  readonly ratePerS: number;
  readonly seed: number;
  readonly tokenScale: number;
  readonly timeScale: number;
  readonly sequences: number;
  readonly contextTokens: number;
  readonly hostTierMiB: number;
  readonly policies: readonly string[];
  /** Calibrate and simulate only (no engine runs): for choosing a configuration quickly. */
  readonly predictOnly: boolean;
}

/** The reported configuration (bench/RESULTS.md says how it was chosen). */
const DEFAULTS: BenchConfig = {
  workload: 'swebench',
  tasks: 16,
  ratePerS: 0.05,
  seed: 1,
  tokenScale: 0.0625,
  timeScale: 0.5,
  sequences: 3,
  contextTokens: 2048,
  hostTierMiB: 0,
  policies: ['vllm', 'saga'],
  predictOnly: false,
};

/** `--quick`: a smoke test of every step in about two minutes. */
const QUICK: Partial<BenchConfig> = { tasks: 3, ratePerS: 0.5, timeScale: 0.1, sequences: 2 };

function readConfig(argv: readonly string[]): BenchConfig {
  const program = new Command('bench:engine')
    .description('saga engine (real llama.cpp, small model, 1 thread) per policy, measured and as the simulator predicts it')
    .option('--quick', 'a smoke test: a few small tasks')
    .option('--workload <kind>', 'swebench | webarena | mixed')
    .option('--tasks <N>', 'agent programs in the workload')
    .option('--rate <TASKS_PER_S>', 'Poisson task arrivals per second (before time scaling)')
    .option('--seed <S>', 'seed of the workload')
    .option('--token-scale <X>', 'multiplies every token count, in (0, 1] (1/16 at least in effect: blocks of one token)')
    .option('--time-scale <X>', 'multiplies tool gaps and arrivals')
    .option('--sequences <N>', 'engine sequences: sessions whose KV stays resident at once')
    .option('--context <TOKENS>', 'tokens per sequence')
    .option('--host-tier-mib <MiB>', 'host tier of the engine (0: none); the simulator has none')
    .option('--policies <list>', 'comma-separated, baseline first')
    .option('--predict-only', 'calibrate and simulate only, without running the engine')
    .parse(argv, { from: 'user' });
  const o = program.opts<Record<string, string | boolean | undefined>>();
  const base: BenchConfig = o.quick === true ? { ...DEFAULTS, ...QUICK } : DEFAULTS;
  const num = (key: string, fallback: number): number => {
    const text = o[key];
    if (typeof text !== 'string') return fallback;
    const value = Number(text);
    if (!Number.isFinite(value)) throw new Error(`option ${key} must be a number, got "${text}"`);
    return value;
  };
  return {
    workload: typeof o.workload === 'string' ? o.workload : base.workload,
    tasks: num('tasks', base.tasks),
    ratePerS: num('rate', base.ratePerS),
    seed: num('seed', base.seed),
    tokenScale: num('tokenScale', base.tokenScale),
    timeScale: num('timeScale', base.timeScale),
    sequences: num('sequences', base.sequences),
    contextTokens: num('context', base.contextTokens),
    hostTierMiB: num('hostTierMib', base.hostTierMiB),
    policies: typeof o.policies === 'string' ? o.policies.split(',').map((p) => p.trim()) : base.policies,
    predictOnly: o.predictOnly === true,
  };
}

// ---------------------------------------------------------------------------------------------------------
// The workload

function benchWorkload(config: BenchConfig): Workload {
  const generated = generateWorkload(config.workload, { tasks: config.tasks, ratePerS: config.ratePerS, seed: config.seed });
  return scaleWorkload(generated, { tokenScale: config.tokenScale, timeScale: config.timeScale, maxContextTokens: config.contextTokens - PROMPT_EXTRA_TOKENS });
}

/** Context of a decode step, averaged over every output token of the workload. */
function meanDecodeContext(workload: Workload): number {
  let steps = 0;
  let context = 0;
  for (const task of workload.tasks) {
    for (const call of task.calls) {
      steps += call.outputTokens;
      context += call.outputTokens * (call.promptTokens + call.outputTokens / 2);
    }
  }
  return Math.round(context / Math.max(1, steps));
}

/** Salt (2^64 / golden ratio) spreading task numbers over hash values. */

/**
 * The workload as the engine's policies see it, for the simulator: every call ends with the engine's
 * finish reason and names no tool (the engine sees neither: a call's output is noise, cut at
 * max_tokens). The simulation salts block hashes per session itself (lib/sim/sequence_engine.ts).
 */
function asTheEngineSeesIt(workload: Workload): Workload {
  const tasks = workload.tasks.map((task) => {
    const calls = task.calls.map((call) => ({
      blockHashes: call.blockHashes,
      promptTokens: call.promptTokens,
      outputTokens: call.outputTokens,
      gapAfterS: call.gapAfterS,
      stop: ENGINE_FINISH_REASON,
    }));
    return { ...task, calls };
  });
  return { ...workload, tasks };
}

// ---------------------------------------------------------------------------------------------------------
// Calibration: this CPU and model as the simulator's roofline

/** The `small` preset as a simulator model (lib/engine/random_model.ts; weights and KV in F16). */
function smallModelPreset(): ModelPreset {
  const p = RANDOM_MODEL_PRESETS[MODEL_PRESET];
  const shape = {
    layers: p.layers,
    hiddenSize: p.embedding,
    attentionHeads: p.heads,
    kvHeads: p.kvHeads,
    headDim: p.embedding / p.heads,
    intermediateSize: p.feedForward,
    vocabSize: buildVocabulary().tokens.length,
    dtypeBytes: 2,
  };
  const counted = parameterCounts({ ...shape, name: '', label: '', parameters: 0, source: '' });
  return { ...shape, name: MODEL_PRESET, label: `random ${MODEL_PRESET} (${p.description})`, parameters: counted.total, source: 'lib/engine/random_model.ts RANDOM_MODEL_PRESETS.small' };
}

interface Measured {
  /** Seconds to the first token of a prompt of `tokens` tokens on an empty sequence. */
  readonly prefill: { tokens: number; seconds: number }[];
  /** Seconds of one decode step of `batch` sequences each at `context` tokens. */
  readonly decode: { batch: number; context: number; seconds: number }[];
}

interface Calibration {
  readonly model: ModelPreset;
  readonly gpu: GpuPreset;
  readonly constants: Partial<CostConstants>;
  readonly measured: Measured;
  /** The decode context the bandwidth was fitted at. */
  readonly fitContext: number;
}

const median = (values: number[]): number => quantile(values, 0.5);

/**
 * Measures prefill (three prompt lengths) and decode (one sequence at a short and at the workload's
 * mean context; every sequence at once at that context) on a context like the engine's.
 */
async function measureCpu(modelPath: string, config: BenchConfig, fitContext: number): Promise<Measured> {
  const llama = await loadLlamaRuntime();
  const model = await llama.loadModel({ modelPath });
  const context = await model.createContext({ contextSize: config.contextTokens, sequences: config.sequences, threads: ENGINE_THREADS, batchSize: Math.min(ENGINE_BATCH_TOKENS, config.contextTokens) });
  const random = new Random(7);
  const tokens = (n: number) => {
    const words = Array.from({ length: n }, () => ` ${String.fromCharCode(97 + random.int(26))}`).join('');
    return model.tokenize(words).slice(0, n);
  };
  const seqs = Array.from({ length: config.sequences }, () => context.getSequence());
  /** Evaluates `input` and decodes `steps` tokens after the first; seconds to the first token. */
  const evaluate = async (seq: LlamaContextSequence, input: ReturnType<typeof tokens>, steps: number) => {
    const start = performance.now();
    let first = start;
    let n = 0;
    for await (const _ of seq.evaluate(input, { temperature: 0 })) {
      if (n++ === 0) first = performance.now();
      if (n > steps) break;
    }
    return (first - start) / 1000;
  };
  const prefill = async (n: number) => {
    const s: number[] = [];
    for (let r = 0; r < CALIBRATION_REPS; r++) {
      await seqs[0].clearHistory();
      s.push(await evaluate(seqs[0], tokens(n), 0));
    }
    return { tokens: n, seconds: median(s) };
  };
  const decode = async (batch: number, at: number) => {
    const s: number[] = [];
    for (let r = 0; r < CALIBRATION_REPS; r++) {
      for (let i = 0; i < batch; i++) {
        await seqs[i].clearHistory();
        await evaluate(seqs[i], tokens(at), 0);
      }
      // One more token and the steps after it, all sequences at once: steps + 1 batched iterations.
      const start = performance.now();
      await Promise.all(seqs.slice(0, batch).map((seq) => evaluate(seq, tokens(1), CALIBRATION_DECODE_STEPS)));
      s.push((performance.now() - start) / 1000 / (CALIBRATION_DECODE_STEPS + 1));
    }
    return { batch, context: at, seconds: median(s) };
  };
  try {
    const long = Math.min(config.contextTokens - CALIBRATION_DECODE_STEPS - 2, Math.max(2 * CALIBRATION_SHORT_TOKENS, 2 * fitContext));
    return {
      prefill: [await prefill(Math.min(CALIBRATION_SHORT_TOKENS, long >> 2)), await prefill(long >> 1), await prefill(long)],
      decode: [await decode(1, CALIBRATION_SHORT_CONTEXT), await decode(1, fitContext), await decode(config.sequences, fitContext)],
    };
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

/**
 * The roofline (lib/sim/cost_model.ts) fitted to the measurements, with every efficiency 1 and no fixed
 * overhead, so that the rates are effective ones:
 * - prefill is compute-bound: its times at three prompt lengths give, by least squares, the dense FLOP/s
 *   (2 x parameters per token) and the attention's rate per query-key pair (as an efficiency relative to
 *   the dense one);
 * - a decode step of one sequence is bandwidth-bound (weights + KV streamed): its time at the workload's
 *   mean decode context gives the bandwidth.
 * The other decode measurements are not fitted: they show where the roofline misses this CPU.
 */
function fitRoofline(measured: Measured, fitContext: number): Calibration {
  const model = smallModelPreset();
  const params = parameterCounts(model);
  // t = (2 dense P + 2 lmHead) u + P(P+1)/2 b, u = 1 / FLOP/s, b = seconds per pair: least squares
  // over the prompt lengths (normal equations of two unknowns).
  let xx = 0;
  let xy = 0;
  let yy = 0;
  let xt = 0;
  let yt = 0;
  for (const { tokens: p, seconds } of measured.prefill) {
    const x = 2 * params.dense * p + 2 * params.lmHead;
    const y = (p * (p + 1)) / 2;
    xx += x * x;
    xy += x * y;
    yy += y * y;
    xt += x * seconds;
    yt += y * seconds;
  }
  const det = xx * yy - xy * xy;
  const u = (xt * yy - yt * xy) / det;
  const pairS = (xx * yt - xy * xt) / det;
  const flopsPerS = 1 / u;
  const attentionEfficiency = (4 * model.layers * model.attentionHeads * model.headDim * u) / pairS;
  const step = measured.decode.find((d) => d.batch === 1 && d.context === fitContext);
  if (step === undefined) throw new Error('no single-sequence decode measurement at the fit context');
  const weightBytes = (params.dense + params.lmHead) * model.dtypeBytes;
  const bytesPerS = (weightBytes + (fitContext + 1) * kvBytesPerToken(model)) / step.seconds;
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const gpu: GpuPreset = {
    name: 'cpu-1-thread',
    label: `${cpu}, ${ENGINE_THREADS} thread (measured)`,
    peakBf16FlopsPerS: flopsPerS,
    hbmBytes: os.totalmem(),
    hbmBytesPerS: bytesPerS,
    nvlinkBytesPerS: 0,
    source: 'bench/engine.ts: prefill and decode of the small model measured at bench start',
  };
  const constants: Partial<CostConstants> = { gemmEfficiency: 1, attentionEfficiency, bandwidthEfficiency: 1, iterationOverheadS: 0 };
  return { model, gpu, constants, measured, fitContext };
}

/** The model's time for a decode step of `batch` sequences at `context` tokens. */
function modelDecodeS(cost: CostModel, batch: number, context: number): number {
  const one = CostModel.piece(context, 1, true);
  const shape: BatchShape = { tokens: batch, attentionPairs: batch * one.attentionPairs, kvTokens: batch * one.kvTokens, sampled: batch };
  return cost.iterationS(shape);
}

function calibrationLines(cal: Calibration, cost: CostModel): string[] {
  const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;
  const vs = (measured: number, predicted: number) => `${ms(measured)} measured, ${ms(predicted)} model (${(((predicted - measured) / measured) * 100).toFixed(0)}%)`;
  return [
    `effective ${(cal.gpu.peakBf16FlopsPerS / 1e9).toFixed(1)} GFLOP/s dense, attention at ${(cal.constants.attentionEfficiency ?? 1).toFixed(2)} of it, ${(cal.gpu.hbmBytesPerS / 1e9).toFixed(2)} GB/s`,
    ...cal.measured.prefill.map((p) => `prefill ${p.tokens} tokens: ${vs(p.seconds, cost.prefillS(p.tokens, 0, ENGINE_BATCH_TOKENS))} (fitted together)`),
    ...cal.measured.decode.map(
      (d) => `decode step, ${d.batch} sequence(s) at ${d.context} tokens: ${vs(d.seconds, modelDecodeS(cost, d.batch, d.context))}${d.batch === 1 && d.context === cal.fitContext ? ' (fitted)' : ''}`,
    ),
  ];
}

// ---------------------------------------------------------------------------------------------------------
// The real engine

/** Engines started and not yet exited: stopped if the bench is interrupted. */
const liveEngines = new Set<ChildProcess>();

interface EngineProcess {
  readonly url: string;
  readonly modelId: string;
  stop(): Promise<void>;
}

/** `saga engine` from source, through tsx (the CLI module exports main; this file calls it). */
function writeLauncher(dir: string): string {
  const file = path.join(dir, 'saga-cli.ts');
  const cli = JSON.stringify(path.join(REPO, 'lib', 'cli'));
  fs.writeFileSync(file, `import { main } from ${cli};\nmain(process.argv.slice(2)).then((code) => process.exit(code), (err) => { console.error(err); process.exit(1); });\n`);
  return file;
}

async function startEngine(launcher: string, modelPath: string, policy: string, config: BenchConfig, hostDir: string): Promise<EngineProcess> {
  const args = ['--import', 'tsx', launcher, 'engine', '--model', modelPath, '--policy', policy, '--sequences', String(config.sequences), '--context', String(config.contextTokens)];
  args.push('--threads', String(ENGINE_THREADS), '--host-tier-mib', String(config.hostTierMiB), '--host-dir', hostDir, '--port', '0');
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  liveEngines.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => liveEngines.delete(child));
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const listening = await new Promise<{ url: string; modelId: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`saga engine did not start within ${ENGINE_START_TIMEOUT_MS / 1000} s: ${stderr}`)), ENGINE_START_TIMEOUT_MS);
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      const m = /^saga engine: (\S+) on (http:\/\/\S+)/.exec(line);
      if (m === null) return;
      clearTimeout(timer);
      resolve({ modelId: m[1], url: m[2] });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`saga engine exited (${String(code)}) before listening: ${stderr}`));
    });
  });
  const health = await fetch(`${listening.url}/healthz`);
  if (!health.ok) throw new Error(`saga engine's /healthz answered ${health.status}`);
  return { ...listening, stop: () => stopProcess(child, exited) };
}

async function stopProcess(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), ENGINE_STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

interface CompletionBody {
  readonly usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens?: number } };
}

function httpSender(engine: EngineProcess): (call: AgentCall) => Promise<AgentCallResult> {
  return async (call) => {
    const response = await fetch(`${engine.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-saga-session': call.session, 'x-saga-tenant': call.tenant, 'x-saga-kind': call.kind },
      body: JSON.stringify({ model: engine.modelId, prompt: call.prompt, max_tokens: call.maxTokens, temperature: 0, stream: false, ignore_eos: true }),
    });
    if (!response.ok) throw new Error(`saga engine answered ${response.status}: ${await response.text()}`);
    const { usage } = (await response.json()) as CompletionBody;
    return { promptTokens: usage.prompt_tokens, cachedTokens: usage.prompt_tokens_details?.cached_tokens ?? 0, completionTokens: usage.completion_tokens };
  };
}

/** The engine's residency counters, from its Prometheus text. */
async function residencyCounters(engine: EngineProcess): Promise<Record<'offloads' | 'drops' | 'restores', number>> {
  const text = await (await fetch(`${engine.url}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^saga_engine_${name}_total\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { offloads: read('offloads'), drops: read('drops'), restores: read('restores') };
}

// ---------------------------------------------------------------------------------------------------------
// Results

interface Outcome {
  readonly tctGeomeanS: number;
  readonly cachedShare: number;
  readonly outputTokensPerS: number;
}

interface Measurement extends Outcome {
  readonly wallS: number;
  readonly counters: Record<'offloads' | 'drops' | 'restores', number>;
}

async function measurePolicy(launcher: string, modelPath: string, policy: string, config: BenchConfig, workload: Workload, hostDir: string): Promise<Measurement> {
  const engine = await startEngine(launcher, modelPath, policy, config, hostDir);
  try {
    const run = await runAgentWorkload(workload, httpSender(engine));
    const counters = await residencyCounters(engine);
    return {
      tctGeomeanS: geomean(run.taskTimesS),
      cachedShare: run.cachedTokens / run.promptTokens,
      outputTokensPerS: run.completionTokens / run.wallS,
      wallS: run.wallS,
      counters,
    };
  } finally {
    await engine.stop();
  }
}

/**
 * The simulated saga engine (lib/sim/sequence_engine.ts): its sequences each holding one session, its
 * batch, its costs fitted to this CPU, the same policy bundle seeing what the real engine's sees.
 */
function predictPolicy(policy: string, config: BenchConfig, view: Workload, cost: CostModel): Outcome {
  const bundle = createPolicy(policy, { workload: view });
  const result = simulateSequenceEngine(view, bundle, {
    sequences: config.sequences,
    contextTokens: config.contextTokens,
    batchTokens: Math.min(ENGINE_BATCH_TOKENS, config.contextTokens),
    cost,
  });
  const total = (field: 'promptTokens' | 'cachedTokens' | 'outputTokens') => result.tasks.reduce((n, t) => n + t[field], 0);
  return {
    tctGeomeanS: geomean(result.tasks.map((t) => t.endS - t.arrivalS)),
    cachedShare: total('cachedTokens') / total('promptTokens'),
    outputTokensPerS: total('outputTokens') / result.makespanS,
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const secs = (x: number) => x.toFixed(1);

/** The table of measured and predicted figures per policy, and each policy's speedup over the first. */
function comparisonLines(policies: readonly string[], measured: ReadonlyMap<string, Measurement>, predicted: ReadonlyMap<string, Outcome>): string[] {
  const na = '-';
  const lines = [
    '## measured (saga engine) vs predicted (simulator)',
    '',
    '| policy | TCT geomean s, measured | predicted | cached share, measured | predicted | output tok/s, measured | predicted | wall s | offloads / drops / restores |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const policy of policies) {
    const m = measured.get(policy);
    const p = predicted.get(policy) as Outcome;
    const c = m?.counters;
    lines.push(
      `| ${policy} | ${m ? secs(m.tctGeomeanS) : na} | ${secs(p.tctGeomeanS)} | ${m ? pct(m.cachedShare) : na} | ${pct(p.cachedShare)} | ` +
        `${m ? m.outputTokensPerS.toFixed(1) : na} | ${p.outputTokensPerS.toFixed(1)} | ${m ? secs(m.wallS) : na} | ${c ? `${c.offloads} / ${c.drops} / ${c.restores}` : na} |`,
    );
  }
  lines.push('');
  const tct = (map: ReadonlyMap<string, Outcome>, policy: string) => map.get(policy)?.tctGeomeanS ?? NaN;
  const [baseline, ...others] = policies;
  for (const policy of others) {
    const ps = tct(predicted, baseline) / tct(predicted, policy);
    const ms = tct(measured, baseline) / tct(measured, policy);
    const off = Number.isNaN(ms) ? '' : `, measured ${ms.toFixed(3)}x (prediction ${(((ps - ms) / ms) * 100).toFixed(0)}% off)`;
    lines.push(`speedup ${policy}/${baseline} (geomean TCT): predicted ${ps.toFixed(3)}x${off}`);
  }
  return lines;
}

async function main(): Promise<void> {
  const config = readConfig(process.argv.slice(2));
  const say = (line = '') => process.stdout.write(`${line}\n`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'saga-bench-engine-'));
  const hostRoot = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const hostDir = fs.mkdtempSync(path.join(hostRoot, 'saga-bench-host-'));
  const removeDirs = () => {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(hostDir, { recursive: true, force: true });
  };
  const interrupted = () => {
    for (const child of liveEngines) child.kill('SIGTERM');
    removeDirs();
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    const modelPath = path.join(dir, `${MODEL_PRESET}.gguf`);
    createRandomModel({ preset: MODEL_PRESET, seed: MODEL_SEED, outPath: modelPath });
    const launcher = writeLauncher(dir);
    const workload = benchWorkload(config);
    const view = asTheEngineSeesIt(workload);
    const calls = workload.tasks.reduce((n, t) => n + t.calls.length, 0);
    // Measured where a decode step still fits the sequence (past its end llama.cpp would shift the context).
    const fitContext = Math.min(meanDecodeContext(workload), config.contextTokens - CALIBRATION_DECODE_STEPS - 2);

    say('# saga engine bench (bench/engine.ts)');
    say();
    say(`command: npm run bench:engine${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`);
    say(`machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, load average ${os.loadavg()[0].toFixed(2)} at start (a shared machine: other processes slow the engine)`);
    say(`model: random ${MODEL_PRESET} (${RANDOM_MODEL_PRESETS[MODEL_PRESET].description}), llama.cpp via node-llama-cpp, ${ENGINE_THREADS} thread`);
    say(`engine: ${config.sequences} sequences x ${config.contextTokens} tokens, host tier ${config.hostTierMiB > 0 ? `${config.hostTierMiB} MiB` : 'none'}; policies ${config.policies.join(', ')} (one engine at a time)`);
    say(`workload: ${config.workload}, ${config.tasks} tasks at ${config.ratePerS} tasks/s, seed ${config.seed}; scaled: ${workload.name}`);
    say(`          ${workload.tasks.length} tasks, ${calls} calls, block ${workload.blockSize} tokens, mean decode context ${fitContext} tokens`);
    say();
    say('## calibration (simulator cost model fitted to this CPU)');
    const cal = fitRoofline(await measureCpu(modelPath, config, fitContext), fitContext);
    const cost = new CostModel(cal.model, cal.gpu, 1, cal.constants);
    for (const line of calibrationLines(cal, cost)) say(`- ${line}`);
    say();

    const measured = new Map<string, Measurement>();
    for (const policy of config.predictOnly ? [] : config.policies) {
      process.stderr.write(`replaying against saga engine --policy ${policy} ...\n`);
      const m = await measurePolicy(launcher, modelPath, policy, config, workload, hostDir);
      measured.set(policy, m);
      process.stderr.write(`  ${policy}: TCT geomean ${secs(m.tctGeomeanS)} s, cached ${pct(m.cachedShare)}, wall ${secs(m.wallS)} s\n`);
    }
    // The simulator has no host tier: with one, its prediction is of the engine without it.
    const predicted = new Map(config.policies.map((p) => [p, predictPolicy(p, config, view, cost)]));
    for (const line of comparisonLines(config.policies, measured, predicted)) say(line);
    say();
    say('How the simulation (lib/sim/sequence_engine.ts) differs from the engine:');
    say('- time: a step costs the sum of its sequences\' pieces alone (the calibration\'s batched decode shows the');
    say('  engine near that); scheduling overheads, HTTP and the client\'s timers are not modelled;');
    say('- cached tokens: the previous prompt\'s blocks the new prompt starts with (the engine compares tokens);');
    if (config.hostTierMiB > 0) say('- the simulation has no host tier: its prediction is of the engine without one;');
    say('- the policies see what the engine sees (no stop reason or tool, no program end, no KV shared between sessions).');
  } finally {
    removeDirs();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:engine: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
