/**
 * Bench of `saga serve` (issue 6), in two parts:
 *
 * 1. Added latency. A stub upstream that answers at once (a minimal Fastify server, writeStubLauncher) and
 *    the gateway (`saga serve`, one engine: the stub; by default compiled to dist/ first and run from there,
 *    as the package's `saga` bin runs it) each run in a child process; this process sends
 *    POST /v1/chat/completions at fixed overall rates, first to the stub directly, then through the
 *    gateway, and the two latency distributions are compared (added = gateway - direct, per quantile).
 *    Two load generators: autocannon (overallRate; its rate limit makes bursts, see CONNECTIONS) and an
 *    open loop at an even pace (pacedLoad). autocannon's latencies are its per-response times
 *    (process.hrtime, float ms, from its `response` events): its histogram keeps whole milliseconds only,
 *    too coarse for a sub-millisecond question.
 * 2. Task completion time. Three `saga engine` processes (random-weight model, one thread each, few short
 *    sequences so that sessions compete for KV) behind the gateway; a two-tenant agent workload (seeded
 *    generator, scaled down with scaleWorkload as bench/engine.ts does) replayed in real time through
 *    it, once per gateway policy, each on fresh engines (cold caches). On one more fresh engine: its
 *    prefill rate (cold prompts), and the isolated TCTs for slowdowns (each task alone, its calls back to
 *    back, plus its tool gaps). The gateway learns each engine's prefill rate and characters per token from
 *    its answers (lib/router/engine_rates.ts), with the config's `prefillTokensPerS` as the prior; the
 *    table shows what it learned. `--measured-prefill` adds a saga row with that prior set to the rate
 *    measured on the isolated engine; `--saga-prefill` adds rows at other priors.
 *
 *   npm run bench:gateway                   both parts, the configuration reported in bench/RESULTS.md (~9 min)
 *   npm run bench:gateway -- --quick        a smoke test of both (~1.5 minutes)
 *   npm run bench:gateway -- --part latency [--rates 1000] [--latency-policy round-robin] [--generators paced] [--seconds 10]
 *                                          [--pin] [--gateway-node-options "--max-semi-space-size=16"] [--latency-dump DIR]
 *                                          [--gateway-code dist|source]
 *   npm run bench:gateway -- --part tct [--seed 2] [--policies saga,affinity] [--saga-prefill 1] [--end-sessions]
 *
 * The machine is shared (2 cores here): autocannon, the gateway and the stub share them in part 1, three
 * engines and the gateway in part 2. Wall-clock timings move with whatever else runs.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import autocannon from 'autocannon';
import { Command } from 'commander';
import { Pool } from 'undici';
import { PROMPT_EXTRA_TOKENS, promptText, runAgentWorkload } from '../lib/engine/agent_client';
import { RANDOM_MODEL_PRESETS, type RandomModelPresetName } from '../lib/engine/random_model';
import { geomean, quantile } from '../lib/metrics/metrics';
import type { GatewayPolicyName } from '../lib/router/config';
import { GATEWAY } from '../lib/constants';
import { GATEWAY_POLICIES, startGateway } from '../lib/router/index';
import { generateWorkload } from '../lib/workloads/generators/index';
import { scaleWorkload } from '../lib/workloads/scale';
import type { Workload } from '../lib/workloads/types';
import {
  agentSender,
  fleetGatewayConfig,
  startEngineFleet,
  startTsProcess,
  writeCliLauncher,
  writeFleetFiles,
  type CallRecord,
  type CliProcess,
} from '../test/helpers/engine_fleet';

const REPO = path.resolve(__dirname, '..');

// ---------------------------------------------------------------------------------------------------------
// Part 1 settings

/** Overall request rates (requests/s); the issue's target is at 1,000. */
const RATES = [250, 500, 1000, 2000];
const QUICK_RATES = [250, 1000];
/** Seconds of load per rate and target (after a warm-up of the same length at the lowest rate). */
const LOAD_S = 10;
const QUICK_LOAD_S = 3;
/**
 * autocannon connections. Its rate limit is per connection and per second: each connection sends its
 * share (rate / connections) back to back, each request after the previous answer, then waits for the
 * next second. So the load comes as bursts of this many concurrent requests, the same for both targets.
 */
const CONNECTIONS = 10;
/** Connections of the paced generator's pool (enough that a request never waits for one). */
const PACED_CONNECTIONS = 64;
/** Sessions the requests rotate through (x-saga-session), so that the gateway tracks many programs. */
const LATENCY_SESSIONS = 64;
/** The gateway's engine (the stub): enough capacity and queue that nothing waits in the gateway for it. */
const STUB_CAPACITY = 1024;
const STUB_MAX_QUEUED = 4096;
const STUB_MODEL = 'stub-model';

// ---------------------------------------------------------------------------------------------------------
// Part 2 settings (the reported configuration; bench/RESULTS.md says how it was chosen)

interface TctConfig {
  readonly preset: RandomModelPresetName;
  readonly engines: number;
  readonly sequences: number;
  readonly contextTokens: number;
  /** The engines' own policy: the same under every gateway policy (vllm: the baseline engine). */
  readonly enginePolicy: string;
  /** Calls in flight per engine that the gateway allows (the rest wait in its queue). */
  readonly capacity: number;
  readonly tasks: number;
  readonly ratePerS: number;
  readonly seed: number;
  readonly tokenScale: number;
  readonly timeScale: number;
  readonly policies: readonly GatewayPolicyName[];
  /**
   * One more run: saga with each engine's `prefillTokensPerS` (the prior of the rate the gateway learns)
   * set to the prefill rate measured on the isolated engine instead of the default
   * (GATEWAY.prefillTokensPerS, an H100's order).
   */
  readonly measuredPrefillRun: boolean;
  /** More saga runs, with the engines' prefillTokensPerS at each of these rates. */
  readonly sagaPrefill: readonly number[];
  /** The agents tell the gateway when their program ends (DELETE /saga/sessions/:id after its last answer). */
  readonly endSessions: boolean;
}

const TCT_DEFAULTS: TctConfig = {
  preset: 'small',
  engines: 3,
  sequences: 2,
  contextTokens: 2048,
  enginePolicy: 'vllm',
  capacity: 2,
  tasks: 12,
  ratePerS: 0.1,
  seed: 1,
  tokenScale: 0.0625,
  timeScale: 0.1,
  policies: ['saga', 'round-robin', 'affinity'],
  measuredPrefillRun: false,
  sagaPrefill: [],
  endSessions: false,
};
const TCT_QUICK: Partial<TctConfig> = { preset: 'tiny', tasks: 6, ratePerS: 1, timeScale: 0.02, measuredPrefillRun: false };
/** Prefill measurement: a cold prompt of this many tokens (one word each), max_tokens 1, this many times (median kept). */
const PREFILL_PROBE_TOKENS = 1024;
const PREFILL_PROBE_REPS = 3;
/** Two tenants of different kinds and equal weight: coding agents (long growing contexts) and browsing agents. */
const TENANTS = [
  { name: 'coding', kind: 'swebench', share: 1, weight: 1 },
  { name: 'browsing', kind: 'webarena', share: 1, weight: 1 },
] as const;

// ---------------------------------------------------------------------------------------------------------

const say = (line = '') => process.stdout.write(`${line}\n`);
const progress = (line: string) => process.stderr.write(`${line}\n`);
const ms = (x: number) => x.toFixed(3);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

interface Options {
  readonly quick: boolean;
  readonly parts: readonly ('latency' | 'tct')[];
  /** Part 1: the rates, and the gateway's policy. */
  readonly rates: readonly number[];
  readonly latencyPolicy: GatewayPolicyName;
  /** Part 1: the load generators run (both by default), and seconds of load per rate and target. */
  readonly generators: readonly ('autocannon' | 'paced')[];
  readonly loadS: number | undefined;
  /** Part 1: the gateway on a CPU of its own, the stub and the load generators on another (taskset). */
  readonly pin: boolean;
  /** Part 1: node options of the gateway's process (V8 flags such as --max-semi-space-size). */
  readonly gatewayNodeOptions: readonly string[];
  /** Part 1: a folder to write each measured load's requests to (paced: send time and latency, ms), for diagnosis. */
  readonly latencyDump: string | undefined;
  /** Part 1: the gateway as the package's bin runs it (compiled dist/, built first) or from source through tsx. */
  readonly gatewayCode: 'dist' | 'source';
  readonly tct: TctConfig;
}

function readOptions(argv: readonly string[]): Options {
  const program = new Command('bench:gateway')
    .description('saga serve: added latency against a stub upstream, and agent task completion time per policy on three saga engines')
    .option('--quick', 'a smoke test of both parts')
    .option('--part <name>', 'latency | tct (default: both)')
    .option('--rates <list>', 'comma-separated requests/s (part 1)')
    .option('--latency-policy <name>', 'the gateway policy of part 1 (default saga)')
    .option('--generators <list>', 'part 1: load generators, comma-separated: paced, autocannon (default both)')
    .option('--seconds <S>', 'part 1: seconds of load per rate and target (default 10; --quick 3)')
    .option('--pin', 'part 1: the gateway and the pass-through proxy on CPU 1, the stub and this process (the load generators) on CPU 0 (taskset, Linux; skipped with a note where it is missing)')
    .option('--gateway-node-options <flags>', 'part 1: node options for the gateway process, space-separated (e.g. "--max-semi-space-size=16")')
    .option('--latency-dump <dir>', 'part 1: write every measured 2xx request to DIR/<generator>-<rate>-<direct|gateway|pass-through>.tsv (paced: send time and latency in ms; autocannon: latency)')
    .option('--gateway-code <form>', 'part 1: dist (default: the gateway as `saga serve` runs it, compiled; dist/ is built first) or source (lib/ through tsx)')
    .option('--seed <S>', 'seed of the workload (part 2)')
    .option('--tasks <N>', 'agent programs in the workload (part 2)')
    .option('--policies <list>', `gateway policies of part 2, comma-separated (${GATEWAY_POLICIES.join(', ')})`)
    .option('--measured-prefill', "part 2: one more saga run with the engines' prefillTokensPerS (the learned rates' prior) at the rate measured on the isolated engine")
    .option('--end-sessions', 'part 2: each agent tells the gateway when its program ended (DELETE /saga/sessions/:id after its last answer); without it, sessions end by idle expiry (30 min: never within a run)')
    .option('--saga-prefill <list>', 'part 2: more saga runs, with the engines\' prefillTokensPerS at each of these rates (1: stealing never pays)')
    .parse(argv, { from: 'user' });
  const o = program.opts<{
    quick?: boolean;
    part?: string;
    rates?: string;
    latencyPolicy?: string;
    generators?: string;
    seconds?: string;
    pin?: boolean;
    gatewayNodeOptions?: string;
    latencyDump?: string;
    gatewayCode?: string;
    seed?: string;
    tasks?: string;
    policies?: string;
    sagaPrefill?: string;
    measuredPrefill?: boolean;
    endSessions?: boolean;
  }>();
  if (o.part !== undefined && o.part !== 'latency' && o.part !== 'tct') throw new Error(`--part must be latency or tct, got ${o.part}`);
  if (o.gatewayCode !== undefined && o.gatewayCode !== 'dist' && o.gatewayCode !== 'source') throw new Error(`--gateway-code must be dist or source, got ${o.gatewayCode}`);
  const quick = o.quick === true;
  const base = quick ? { ...TCT_DEFAULTS, ...TCT_QUICK } : TCT_DEFAULTS;
  const int = (text: string | undefined, fallback: number) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`expected a non-negative integer, got ${text}`);
    return n;
  };
  const rates = o.rates === undefined ? (quick ? QUICK_RATES : RATES) : o.rates.split(',').map((r) => int(r.trim(), 0));
  if (rates.some((r) => r < 1)) throw new Error(`--rates must be positive integers, got ${o.rates}`);
  const policyName = (name: string): GatewayPolicyName => {
    if (!(GATEWAY_POLICIES as readonly string[]).includes(name)) throw new Error(`a gateway policy must be one of ${GATEWAY_POLICIES.join(', ')}, got ${name}`);
    return name as GatewayPolicyName;
  };
  const list = (text: string) => text.split(',').map((x) => x.trim());
  const policies = o.policies === undefined ? base.policies : list(o.policies).map(policyName);
  const sagaPrefill = o.sagaPrefill === undefined ? [] : list(o.sagaPrefill).map((x) => int(x, 0));
  if (sagaPrefill.some((r) => r < 1)) throw new Error(`--saga-prefill must be positive integers, got ${o.sagaPrefill}`);
  return {
    quick,
    parts: o.part === undefined ? ['latency', 'tct'] : [o.part as 'latency' | 'tct'],
    rates,
    latencyPolicy: policyName(o.latencyPolicy ?? 'saga'),
    generators: o.generators === undefined ? ['autocannon', 'paced'] : list(o.generators).map((g) => {
      if (g !== 'autocannon' && g !== 'paced') throw new Error(`--generators takes paced and autocannon, got ${g}`);
      return g;
    }),
    loadS: o.seconds === undefined ? undefined : Math.max(1, int(o.seconds, 0)),
    pin: o.pin === true,
    gatewayNodeOptions: o.gatewayNodeOptions === undefined ? [] : o.gatewayNodeOptions.split(/\s+/).filter((f) => f !== ''),
    latencyDump: o.latencyDump,
    gatewayCode: (o.gatewayCode ?? 'dist') as 'dist' | 'source',
    tct: { ...base, seed: int(o.seed, base.seed), tasks: int(o.tasks, base.tasks), policies, sagaPrefill, measuredPrefillRun: o.measuredPrefill === true || base.measuredPrefillRun, endSessions: o.endSessions === true || base.endSessions },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Part 1: added latency

interface LoadResult {
  readonly latenciesMs: Float64Array;
  /** Paced, when asked (--latency-dump): each 2xx request's send time, ms after the load's start, in the order of latenciesMs. */
  readonly sentMs?: Float64Array;
  readonly sent: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly achievedRps: number;
}

const REQUEST_BODY = JSON.stringify({ model: STUB_MODEL, messages: [{ role: 'user', content: 'ping' }], max_tokens: 1 });
const sessionHeader = (n: number) => `s${n % LATENCY_SESSIONS}`;

/** autocannon at `rate` requests/s against `url` for `seconds`; every 2xx response's latency, in ms. */
async function autocannonLoad(url: string, rate: number, seconds: number, _recordSends = false): Promise<LoadResult> {
  const latencies: number[] = [];
  let session = 0;
  const body = REQUEST_BODY;
  const options: autocannon.Options = {
    url: `${url}/v1/chat/completions`,
    connections: CONNECTIONS,
    overallRate: rate,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        body,
        setupRequest: (request) => ({
          ...request,
          headers: { ...request.headers, 'content-type': 'application/json', 'x-saga-session': sessionHeader(session++), 'x-saga-tenant': 'bench' },
        }),
      },
    ],
  };
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(options, (err: unknown, done: autocannon.Result) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(done)));
    instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTimeMs);
    });
  });
  return {
    latenciesMs: Float64Array.from(latencies),
    sent: result.requests.sent,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    achievedRps: result.requests.total / seconds,
  };
}

/**
 * Open loop at an even pace: request i is sent at start + i / rate (timers wake at most every millisecond
 * or so, so at 2,000/s requests leave in twos), each on a free connection of an undici Pool, without
 * waiting for earlier answers. Latency from the send to the end of the body.
 */
async function pacedLoad(url: string, rate: number, seconds: number, recordSends = false): Promise<LoadResult> {
  const pool = new Pool(url, { connections: PACED_CONNECTIONS });
  const latencies: number[] = [];
  const sends: number[] = [];
  const total = Math.round(rate * seconds);
  let non2xx = 0;
  let errors = 0;
  const one = async (i: number): Promise<void> => {
    const sent = performance.now();
    try {
      const response = await pool.request({
        path: '/v1/chat/completions',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-saga-session': sessionHeader(i), 'x-saga-tenant': 'bench' },
        body: REQUEST_BODY,
      });
      await response.body.arrayBuffer();
      if (response.statusCode >= 200 && response.statusCode < 300) {
        latencies.push(performance.now() - sent);
        if (recordSends) sends.push(sent - start);
      } else non2xx++;
    } catch {
      errors++;
    }
  };
  const inFlight: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < total; ) {
    const lagMs = start + (i * 1000) / rate - performance.now();
    if (lagMs > 0) await new Promise((resolve) => setTimeout(resolve, lagMs));
    for (const due = performance.now(); i < total && start + (i * 1000) / rate <= due; i++) inFlight.push(one(i));
  }
  const sendingS = (performance.now() - start) / 1000;
  await Promise.all(inFlight);
  await pool.close();
  return { latenciesMs: Float64Array.from(latencies), ...(recordSends ? { sentMs: Float64Array.from(sends) } : {}), sent: total, non2xx, errors, timeouts: 0, achievedRps: total / sendingS };
}

/**
 * A script that serves an upstream answering at once: a fixed OpenAI chat completion (usage included) to
 * every POST, /v1/models, /health; it prints its URL and exits when its parent lets go of stdin. Not
 * test/helpers/stub_upstream.ts: that stub keeps every request it receives and hashes each prompt (for its
 * tests' assertions), work and memory that grow over the ~10^5 requests of this bench; the gateway's
 * overhead is measured best against an upstream that does nothing.
 */
function writeStubLauncher(dir: string): string {
  const file = path.join(dir, 'stub.ts');
  const answer = {
    id: 'stub',
    object: 'chat.completion',
    created: 0,
    model: STUB_MODEL,
    choices: [{ index: 0, message: { role: 'assistant', content: 'pong' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 8, completion_tokens: 1, total_tokens: 9, prompt_tokens_details: { cached_tokens: 0 } },
  };
  const models = { object: 'list', data: [{ id: STUB_MODEL, object: 'model', created: 0, owned_by: 'stub' }] };
  fs.writeFileSync(
    file,
    [
      `import Fastify from ${JSON.stringify(require.resolve('fastify', { paths: [REPO] }))};`,
      `const answer = ${JSON.stringify(JSON.stringify(answer))};`,
      `const app = Fastify({ logger: false });`,
      `app.post('/v1/chat/completions', async (_request, reply) => reply.type('application/json').send(answer));`,
      `app.get('/v1/models', async () => (${JSON.stringify(models)}));`,
      `app.get('/health', async () => ({ status: 'ok' }));`,
      `process.stdin.on('end', () => process.exit(0));`,
      `process.stdin.resume();`,
      `app.listen({ host: '127.0.0.1', port: 0 }).then((url) => console.log('stub upstream on ' + url));`,
      '',
    ].join('\n'),
  );
  return file;
}

/**
 * The floor of part 1: a pass-through proxy with nothing of the gateway in it (node:http and an undici Pool,
 * the client the gateway uses; reads the body, parses its JSON as any OpenAI-aware router must, forwards the
 * bytes, answers with the upstream's status, type and body). Plain JavaScript, no loader. What it adds over
 * direct is what one more Node process hop costs on this machine; the gateway's excess over it is its own.
 */
function writePassThroughLauncher(dir: string): string {
  const file = path.join(dir, 'pass_through.mjs');
  fs.writeFileSync(
    file,
    [
      `import http from 'node:http';`,
      `import { Pool } from ${JSON.stringify(require.resolve('undici', { paths: [REPO] }))};`,
      `const upstream = new Pool(process.argv[2], { connections: ${PACED_CONNECTIONS} });`,
      `function forward(req, res, body) {`,
      `  try { JSON.parse(body.toString('utf8')); } catch { res.writeHead(400); res.end('bad JSON'); return; }`,
      `  upstream.request({ path: req.url, method: req.method, headers: { 'content-type': 'application/json' }, body })`,
      `    .then(async (r) => { const text = Buffer.from(await r.body.arrayBuffer()); res.writeHead(r.statusCode, { 'content-type': r.headers['content-type'], 'content-length': text.length }); res.end(text); })`,
      `    .catch((err) => { res.writeHead(502); res.end(String(err)); });`,
      `}`,
      `const server = http.createServer((req, res) => { const chunks = []; req.on('data', (c) => chunks.push(c)); req.on('end', () => forward(req, res, Buffer.concat(chunks))); });`,
      `server.keepAliveTimeout = 60000;`,
      `process.stdin.on('end', () => process.exit(0));`,
      `process.stdin.resume();`,
      `server.listen(0, '127.0.0.1', () => console.log('pass-through proxy on http://127.0.0.1:' + server.address().port));`,
      '',
    ].join('\n'),
  );
  return file;
}

const QUANTILES = [0.5, 0.9, 0.99] as const;
const GENERATORS = [
  { key: 'autocannon', name: `autocannon (overallRate, ${CONNECTIONS} connections: bursts)`, load: autocannonLoad },
  { key: 'paced', name: 'paced open loop (undici Pool, requests evenly spaced)', load: pacedLoad },
] as const;

/** The CPU affinity list of process `pid` (every thread: taskset -a), as taskset prints it; undefined without taskset. */
function cpuAffinity(pid: number): string | undefined {
  const out = spawnSync('taskset', ['-p', '-c', String(pid)], { encoding: 'utf8' });
  if (out.error !== undefined || out.status !== 0) return undefined;
  return /:\s*(\S+)\s*$/.exec(out.stdout)?.[1];
}

function setCpuAffinity(pid: number, cpus: string): void {
  const out = spawnSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { encoding: 'utf8' });
  if (out.error !== undefined || out.status !== 0) throw new Error(`taskset -a -p -c ${cpus} ${pid} failed: ${out.error?.message ?? out.stderr}`);
}

/**
 * `--pin`: the gateway and the pass-through proxy on CPU 1, the stub and this process (the load generators)
 * on CPU 0, every thread of each (taskset -a), as a deployment gives a gateway cores of its own. Returns the
 * layout in words and how to undo this process's pinning; unpinned (with why) where taskset is missing or
 * there is one CPU.
 */
function pinProcesses(pin: boolean, gatewayPids: readonly number[], stubPid: number): { readonly layout: string; restore(): void } {
  const unpinned = `unpinned: the OS schedules the stub, the gateway and the load generators over ${os.availableParallelism()} CPUs`;
  if (!pin) return { layout: unpinned, restore: () => undefined };
  const own = cpuAffinity(process.pid);
  if (own === undefined || os.availableParallelism() < 2) {
    const why = own === undefined ? 'taskset is not available here' : 'this machine has one CPU';
    progress(`--pin: not pinned (${why})`);
    return { layout: `${unpinned} (--pin asked, but ${why})`, restore: () => undefined };
  }
  for (const pid of gatewayPids) setCpuAffinity(pid, '1');
  setCpuAffinity(stubPid, '0');
  setCpuAffinity(process.pid, '0');
  return { layout: 'pinned (--pin, taskset): the gateway (and the pass-through proxy) on CPU 1; the stub and the load generators on CPU 0', restore: () => setCpuAffinity(process.pid, own) };
}

async function latencyPart(options: Options): Promise<void> {
  const { rates, latencyPolicy } = options;
  const seconds = options.loadS ?? (options.quick ? QUICK_LOAD_S : LOAD_S);
  const files = writeFleetFiles('tiny');
  const children: CliProcess[] = [];
  let restoreAffinity: () => void = () => undefined;
  try {
    const stub = await startTsProcess(writeStubLauncher(files.dir), [], /^stub upstream on (http:\/\/\S+)/);
    children.push(stub);
    const stubUrl = stub.ready[1];
    const configFile = path.join(files.dir, 'gateway.json');
    const config = fleetGatewayConfig([stubUrl], { policy: latencyPolicy, capacity: STUB_CAPACITY, tenants: [{ name: 'bench', weight: 1 }], maxQueuedPerEngine: STUB_MAX_QUEUED, kind: 'openai' });
    fs.writeFileSync(configFile, JSON.stringify(config));
    const gatewayArgs = ['serve', '--config', configFile, '--port', '0'];
    if (options.gatewayCode === 'dist') buildDist();
    const launcher = options.gatewayCode === 'dist' ? writeCliLauncher(files.dir, true) : files.launcher;
    const gateway = await startTsProcess(launcher, gatewayArgs, /^saga serve: listening on (http:\/\/\S+)/, undefined, options.gatewayNodeOptions);
    children.push(gateway);
    const gatewayUrl = gateway.ready[1];
    const passThrough = await startTsProcess(writePassThroughLauncher(files.dir), [stubUrl], /^pass-through proxy on (http:\/\/\S+)/);
    children.push(passThrough);
    const passThroughUrl = passThrough.ready[1];
    const pinning = pinProcesses(options.pin, [pidOf(gateway), pidOf(passThrough)], pidOf(stub));
    restoreAffinity = pinning.restore;

    say('## Part 1: added latency (stub upstream answering at once)');
    say();
    say(`- POST /v1/chat/completions (one short message, ${LATENCY_SESSIONS} sessions in turn), ${seconds} s per rate and target, after a warm-up at the lowest rate;`);
    say(`  two load generators: autocannon (${CONNECTIONS} connections, overallRate), whose rate limit is per connection and second (each connection`);
    say(`  sends rate/connections requests back to back, then waits for the next second), so its load comes in bursts of ${CONNECTIONS} concurrent requests;`);
    say(`  and an open-loop generator in this file that sends at an even pace (undici Pool of ${PACED_CONNECTIONS} connections)`);
    say(`- stub and gateway (\`saga serve\`, policy ${latencyPolicy}, one engine of kind openai: the stub) each in a child process, the load generators in the bench process`);
    say('- the floor: a pass-through proxy in a child process of its own (node:http and an undici Pool, plain JavaScript: reads and parses the body, forwards it,');
    say('  answers with the upstream\'s answer), measured after the gateway at each rate; what it adds is one more Node process hop on this machine, so');
    say('  "gateway - pass-through" is what the gateway adds beyond any Node proxy');
    say(`- CPUs: ${pinning.layout}`);
    say(`- gateway code: ${options.gatewayCode === 'dist' ? 'dist/, compiled by tsc (as the `saga` bin runs it)' : 'lib/ from source, through tsx'}`);
    say(`- gateway node options: ${options.gatewayNodeOptions.length === 0 ? 'none' : options.gatewayNodeOptions.join(' ')}`);
    say('- latency: per 2xx response (autocannon: its `response` events, float ms, not its whole-ms histogram); added = through the gateway - direct, per quantile');
    say();
    for (const generator of GENERATORS.filter((g) => options.generators.includes(g.key))) {
      say(`### ${generator.name}`);
      say();
      progress(`${generator.name}: warm-up, ${seconds} s at ${rates[0]} requests/s on each target`);
      for (const url of [stubUrl, gatewayUrl, passThroughUrl]) await generator.load(url, rates[0], seconds);
      say(
        '| rate req/s | direct p50 ms | p90 | p99 | gateway p50 ms | p90 | p99 | added p50 ms | added p99 ms | achieved req/s direct / gateway | non-2xx direct / gateway | errors+timeouts direct / gateway | ' +
          'pass-through p50 / p99 ms | pass-through added p50 / p99 ms | gateway - pass-through p50 / p99 ms | pass-through non-2xx + errors |',
      );
      say('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
      for (const rate of rates) {
        progress(`${generator.name}: ${rate} requests/s, direct, through the gateway, then through the pass-through proxy`);
        const dump = options.latencyDump;
        const direct = await generator.load(stubUrl, rate, seconds, dump !== undefined);
        const through = await generator.load(gatewayUrl, rate, seconds, dump !== undefined);
        const floor = await generator.load(passThroughUrl, rate, seconds, dump !== undefined);
        if (dump !== undefined) {
          fs.mkdirSync(dump, { recursive: true });
          for (const [target, result] of [['direct', direct], ['gateway', through], ['pass-through', floor]] as const) {
            fs.writeFileSync(path.join(dump, `${generator.key}-${rate}-${target}.tsv`), latencyTable(result));
          }
        }
        const q = (r: LoadResult) => QUANTILES.map((p) => quantile(r.latenciesMs, p));
        const [d50, d90, d99] = q(direct);
        const [g50, g90, g99] = q(through);
        const [f50, , f99] = q(floor);
        say(
          `| ${rate} | ${ms(d50)} | ${ms(d90)} | ${ms(d99)} | ${ms(g50)} | ${ms(g90)} | ${ms(g99)} | ${ms(g50 - d50)} | ${ms(g99 - d99)} | ` +
            `${direct.achievedRps.toFixed(0)} / ${through.achievedRps.toFixed(0)} | ${direct.non2xx} / ${through.non2xx} | ${direct.errors + direct.timeouts} / ${through.errors + through.timeouts} | ` +
            `${ms(f50)} / ${ms(f99)} | ${ms(f50 - d50)} / ${ms(f99 - d99)} | ${ms(g50 - f50)} / ${ms(g99 - f99)} | ${floor.non2xx + floor.errors + floor.timeouts} |`,
        );
      }
      say();
    }
  } finally {
    restoreAffinity();
    for (const child of children.reverse()) await child.stop();
    files.remove();
  }
}

/** Compiles lib/ to dist/ (tsconfig.build.json), so that the gateway measured is the current code as the `saga` bin runs it. */
function buildDist(): void {
  progress('building dist/ (tsc -p tsconfig.build.json) for the gateway');
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc', { paths: [REPO] }), '-p', 'tsconfig.build.json'], { cwd: REPO, encoding: 'utf8' });
  if (tsc.error !== undefined || tsc.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed: ${tsc.error?.message ?? tsc.stdout + tsc.stderr}`);
}

/** A load's 2xx requests, one a line: send time (ms after the load's start, paced only) and latency (ms). */
function latencyTable(result: LoadResult): string {
  const lines = ['sent_ms\tlatency_ms'];
  result.latenciesMs.forEach((latency, i) => lines.push(`${result.sentMs === undefined ? '' : result.sentMs[i].toFixed(3)}\t${latency.toFixed(3)}`));
  return `${lines.join('\n')}\n`;
}

function pidOf(p: CliProcess): number {
  if (p.child.pid === undefined) throw new Error('a child process without a pid');
  return p.child.pid;
}

// ---------------------------------------------------------------------------------------------------------
// Part 2: task completion time per gateway policy

function tctWorkload(config: TctConfig): Workload {
  const generated = generateWorkload('mixed', {
    tasks: config.tasks,
    ratePerS: config.ratePerS,
    seed: config.seed,
    tenants: TENANTS.map((t) => ({ name: t.name, kind: t.kind, share: t.share })),
  });
  return scaleWorkload(generated, { tokenScale: config.tokenScale, timeScale: config.timeScale, maxContextTokens: config.contextTokens - PROMPT_EXTRA_TOKENS });
}

interface Isolated {
  /** Isolated TCT of each task, in workload order. */
  readonly times: number[];
  /** The engine's prefill rate, prompt tokens per second (median of cold prompts). */
  readonly prefillTokensPerS: number;
}

/**
 * On one fresh, idle engine: its prefill rate (cold prompts, one token a word, max_tokens 1), then the
 * isolated TCT of every task (its calls back to back, plus its tool gaps).
 */
async function measureIsolated(workload: Workload, config: TctConfig): Promise<Isolated> {
  const fleet = await startEngineFleet({ engines: 1, sequences: config.sequences, contextTokens: config.contextTokens, preset: config.preset, policy: config.enginePolicy });
  try {
    const probe = agentSender({ url: fleet.urls[0], model: fleet.modelId, sessionPrefix: 'prefill-probe/' });
    const rates: number[] = [];
    for (let i = 0; i < PREFILL_PROBE_REPS; i++) {
      const start = performance.now();
      const r = await probe({ session: `p${i}`, tenant: 'probe', kind: 'probe', prompt: ' a'.repeat(PREFILL_PROBE_TOKENS), maxTokens: 1 });
      rates.push(r.promptTokens / ((performance.now() - start) / 1000));
    }
    const send = agentSender({ url: fleet.urls[0], model: fleet.modelId, sessionPrefix: 'isolated/' });
    const times: number[] = [];
    for (const [t, task] of workload.tasks.entries()) {
      let seconds = 0;
      for (const [c, call] of task.calls.entries()) {
        const start = performance.now();
        await send({ session: task.id, tenant: task.tenant, kind: task.kind, prompt: promptText(call, workload.blockSize, t, c), maxTokens: call.outputTokens });
        seconds += (performance.now() - start) / 1000 + call.gapAfterS;
      }
      times.push(seconds);
    }
    return { times, prefillTokensPerS: quantile(rates, 0.5) };
  } finally {
    await fleet.close();
  }
}

/** A gateway policy as run: its name in the table, and the engines' prefill rate given to the gateway, if any. */
interface PolicyRun {
  readonly label: string;
  readonly policy: GatewayPolicyName;
  readonly prefillTokensPerS?: number;
}

interface PolicyOutcome {
  readonly run: PolicyRun;
  readonly taskTimesS: number[];
  readonly cachedShare: number;
  readonly wallS: number;
  readonly calls: number;
  readonly overloaded: number;
  readonly gatewayMetrics: string;
}

async function runPolicy(policyRun: PolicyRun, workload: Workload, config: TctConfig): Promise<PolicyOutcome> {
  const fleet = await startEngineFleet({
    engines: config.engines,
    sequences: config.sequences,
    contextTokens: config.contextTokens,
    preset: config.preset,
    policy: config.enginePolicy,
  });
  try {
    const gatewayConfig = fleetGatewayConfig(fleet.urls, {
      policy: policyRun.policy,
      capacity: config.capacity,
      tenants: TENANTS.map((t) => ({ name: t.name, weight: t.weight })),
      prefillTokensPerS: policyRun.prefillTokensPerS,
    });
    const gateway = await startGateway(gatewayConfig);
    try {
      const records: CallRecord[] = [];
      const send = agentSender({ url: gateway.url, model: fleet.modelId, records, endSessions: config.endSessions });
      const run = await runAgentWorkload(workload, send);
      const gatewayMetrics = await (await fetch(`${gateway.url}/metrics`)).text();
      return {
        run: policyRun,
        taskTimesS: run.taskTimesS,
        cachedShare: run.cachedTokens / run.promptTokens,
        wallS: run.wallS,
        calls: records.length,
        overloaded: records.reduce((n, r) => n + r.overloaded, 0),
        gatewayMetrics,
      };
    } finally {
      await gateway.close();
    }
  } finally {
    await fleet.close();
  }
}

/** The sum of a Prometheus metric's samples whose labels contain `labels` (e.g. `outcome="moved"`); 0 if none. */
function metricSum(text: string, name: string, labels = ''): number {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) if ((m[1] ?? '').includes(labels)) sum += Number(m[2]);
  return sum;
}

async function tctPart(config: TctConfig): Promise<void> {
  const workload = tctWorkload(config);
  const calls = workload.tasks.reduce((n, t) => n + t.calls.length, 0);
  say('## Part 2: agent task completion time per gateway policy');
  say();
  say(`- engines: ${config.engines} x saga engine --policy ${config.enginePolicy}, model random ${config.preset} (${RANDOM_MODEL_PRESETS[config.preset].description}),`);
  say(`  --threads 1, --sequences ${config.sequences}, --context ${config.contextTokens}; fresh engines per gateway policy (cold caches); gateway in the bench process, capacity ${config.capacity} per engine`);
  say(`- workload: mixed, tenants ${TENANTS.map((t) => `${t.name} (${t.kind}, share ${t.share}, weight ${t.weight})`).join(' and ')}, ${config.tasks} tasks at ${config.ratePerS} tasks/s, seed ${config.seed}`);
  say(`- program ends: ${config.endSessions ? 'each agent ends its session after its last answer (--end-sessions: DELETE /saga/sessions/:id)' : 'not told (sessions end by idle expiry, 30 min: none within a run)'}`);
  say(`  scaled: ${workload.name}; ${workload.tasks.length} tasks, ${calls} calls; replayed in real time (runAgentWorkload), /v1/completions with identity headers, ignore_eos`);
  say('- isolated TCT: each task alone on one more fresh engine, its calls back to back, plus its tool gaps; slowdown = TCT / isolated');
  if (config.measuredPrefillRun || config.sagaPrefill.length > 0) {
    say('- rows "saga, prefillTokensPerS N": saga again, with each engine\'s prefillTokensPerS (the price of a moved call\'s recompute in the');
    say('  stealing test, as the prior of the rate the gateway learns) at N instead of the gateway default; "(measured)": the rate measured on the isolated engine');
  }
  say();
  progress(`isolated task times (${workload.tasks.length} tasks, one at a time)`);
  const { times: isolated, prefillTokensPerS } = await measureIsolated(workload, config);
  const runs: PolicyRun[] = config.policies.map((policy) => ({ label: policy, policy }));
  for (const rate of config.sagaPrefill) runs.push({ label: `saga, prefillTokensPerS ${rate}`, policy: 'saga', prefillTokensPerS: rate });
  if (config.measuredPrefillRun) runs.push({ label: `saga, prefillTokensPerS ${Math.round(prefillTokensPerS)} (measured)`, policy: 'saga', prefillTokensPerS: Math.round(prefillTokensPerS) });
  const outcomes: PolicyOutcome[] = [];
  for (const run of runs) {
    progress(`replaying through the gateway, ${run.label}, on fresh engines ...`);
    const outcome = await runPolicy(run, workload, config);
    outcomes.push(outcome);
    progress(`  ${run.label}: TCT geomean ${geomean(outcome.taskTimesS).toFixed(2)} s, cached ${pct(outcome.cachedShare)}, wall ${outcome.wallS.toFixed(1)} s`);
  }
  const saga = outcomes.find((o) => o.run.label === 'saga');
  const tenantNames = TENANTS.map((t) => t.name);
  say(`| policy | TCT geomean s | vs saga (TCT / saga's) | cached share | ${tenantNames.map((t) => `${t} slowdown (geomean)`).join(' | ')} | wall s | 429s | steals | calls moved from home | learned prefill tok/s, chars/token (engines' mean at the end) |`);
  say(`| --- | ---: | ---: | ---: | ${tenantNames.map(() => '---:').join(' | ')} | ---: | ---: | ---: | ---: | ---: |`);
  for (const o of outcomes) {
    const tct = geomean(o.taskTimesS);
    const slowdowns = tenantNames.map((tenant) => {
      const ratios = workload.tasks.flatMap((t, i) => (t.tenant === tenant ? [o.taskTimesS[i] / isolated[i]] : []));
      return ratios.length === 0 ? '-' : geomean(ratios).toFixed(2);
    });
    const steals = metricSum(o.gatewayMetrics, 'saga_gateway_steals_total');
    const moved = metricSum(o.gatewayMetrics, 'saga_gateway_session_routes_total', 'outcome="moved"');
    const learned = `${(metricSum(o.gatewayMetrics, 'saga_gateway_engine_prefill_tokens_per_second') / config.engines).toFixed(0)}, ${(metricSum(o.gatewayMetrics, 'saga_gateway_engine_chars_per_token') / config.engines).toFixed(2)}`;
    say(
      `| ${o.run.label} | ${tct.toFixed(2)} | ${saga === undefined ? '-' : (tct / geomean(saga.taskTimesS)).toFixed(3)} | ${pct(o.cachedShare)} | ${slowdowns.join(' | ')} | ` +
        `${o.wallS.toFixed(1)} | ${o.overloaded} | ${steals} | ${moved} | ${learned} |`,
    );
  }
  say();
  say(`isolated TCT geomean ${geomean(isolated).toFixed(2)} s; the engine's prefill, measured: ${Math.round(prefillTokensPerS)} tokens/s (gateway default ${GATEWAY.prefillTokensPerS})`);
}

async function main(): Promise<void> {
  const options = readOptions(process.argv.slice(2));
  // Exit (not die) on a signal, so that test/helpers/engine_fleet.ts's exit hook stops the children it started.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  say('# saga serve bench (bench/gateway.ts)');
  say();
  say(`command: npm run bench:gateway${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`);
  say(`machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, load average ${os.loadavg()[0].toFixed(2)} at start (shared)`);
  say();
  if (options.parts.includes('latency')) await latencyPart(options);
  if (options.parts.includes('tct')) await tctPart(options.tct);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:gateway: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
