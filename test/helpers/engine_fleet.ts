/**
 * Real `saga engine` processes for the gateway's tests and bench: N engines, each a child process running
 * the CLI from source (node --import tsx, as `npm test` runs the sources: no build needed), on a free port
 * (--port 0; the port is read from the line the engine prints once listening), all serving the same
 * generated random-weight model, with few, short sequences so that sessions compete for KV.
 *
 *   const fleet = await startEngineFleet({ engines: 3, sequences: 2, contextTokens: 1024 });
 *   fleet.urls[0] ... ; await fleet.kill(1);   // SIGKILL, as a crash
 *   await fleet.close();                       // every engine stopped, the model removed
 *
 * Leaks: every child holds a pipe to this process on its stdin and exits when it closes, so engines go
 * with their parent even if the parent is SIGKILLed; the parent's `exit` kills the ones still running and
 * removes the temp dirs (model, launcher) of fleets never closed.
 *
 * Also here, for the tests and bench that drive a fleet: `startTsProcess` (any script or `saga` command in a
 * child, e.g. `saga serve` with writeFleetFiles' launcher), `agentSender` (runAgentWorkload's `send` over
 * HTTP with identity headers, recording every call), and `fleetGatewayConfig` (a gateway in front of it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import type { AgentCall, AgentCallResult } from '../../lib/engine/agent_client';
import { createRandomModel, type RandomModelPresetName } from '../../lib/engine/random_model';
import type { EngineKind, GatewayConfigInput, GatewayPolicyName } from '../../lib/router/config';
import { SESSION_END_PATH } from '../../lib/router/server';

const REPO = path.resolve(__dirname, '..', '..');
/** The line `saga engine` prints once it listens (lib/engine/command.ts): model id and URL. */
const ENGINE_READY = /^saga engine: (\S+) on (http:\/\/\S+)/;
/** A loaded CI machine may take this long to start node, tsx and llama.cpp. */
const DEFAULT_START_TIMEOUT_MS = 60_000;
/** How long close() lets a child stop on SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 5_000;
/** Characters of a child's stderr kept for error messages. */
const STDERR_TAIL = 4_000;

// ---------------------------------------------------------------------------------------------------------
// Child processes and temp dirs of this module, killed and removed when this process exits (a test that
// timed out while its fleet was starting never gets to close it).

const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of liveChildren) c.kill('SIGKILL');
    for (const dir of liveDirs) fs.rmSync(dir, { recursive: true, force: true });
  });
}

function track(child: ChildProcess): void {
  installExitHook();
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
}

/**
 * A script that runs `saga` from source (a .ts launcher, run through tsx), or as the package's bin runs it,
 * from the compiled dist/ (`compiled`: a .js launcher; dist/ must be built), and exits when its parent's
 * end of stdin closes (the parent died or let go), so that no engine outlives the test that started it.
 */
export function writeCliLauncher(dir: string, compiled = false): string {
  const file = path.join(dir, compiled ? 'saga-cli.js' : 'saga-cli.ts');
  const cli = JSON.stringify(compiled ? path.join(REPO, 'dist', 'lib', 'cli.js') : path.join(REPO, 'lib', 'cli'));
  fs.writeFileSync(
    file,
    [
      compiled ? `const { main } = require(${cli});` : `import { main } from ${cli};`,
      `process.stdin.on('end', () => process.exit(0));`,
      `process.stdin.resume();`,
      `main(process.argv.slice(2)).then((code) => process.exit(code), (err) => { console.error(err); process.exit(1); });`,
      '',
    ].join('\n'),
  );
  return file;
}

/** A started child process: what its ready line matched, and how to stop it. */
export interface CliProcess {
  readonly child: ChildProcess;
  /** The match of the ready pattern on the child's stdout. */
  readonly ready: RegExpExecArray;
  /** Resolves when the process has exited (at once if it already has). */
  readonly exited: Promise<void>;
  /** The last few KB of its stderr. */
  stderr(): string;
  /** SIGTERM, then SIGKILL after a grace period; resolves once it has exited. */
  stop(): Promise<void>;
  /** SIGKILL; resolves once it has exited. */
  kill(): Promise<void>;
}

/**
 * Runs `node [NODE_ARGS] --import tsx SCRIPT ARGS` (a .js script without tsx) from the repository root and
 * resolves once a line of its stdout matches `ready`; rejects (the child killed) if it exits first or
 * `timeoutMs` passes.
 */
export async function startTsProcess(
  script: string,
  args: readonly string[],
  ready: RegExp,
  timeoutMs = DEFAULT_START_TIMEOUT_MS,
  nodeArgs: readonly string[] = [],
): Promise<CliProcess> {
  const loader = script.endsWith('.js') ? [] : ['--import', 'tsx'];
  const child = spawn(process.execPath, [...nodeArgs, ...loader, script, ...args], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  track(child);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-STDERR_TAIL);
  });
  const kill = async (): Promise<void> => {
    child.kill('SIGKILL');
    await exited;
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  try {
    const match = await new Promise<RegExpExecArray>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${path.basename(script)} ${args[0] ?? ''} did not start within ${timeoutMs / 1000} s: ${stderr}`)), timeoutMs);
      lines.on('line', (line) => {
        const m = ready.exec(line);
        if (m === null) return;
        clearTimeout(timer);
        resolve(m);
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${path.basename(script)} ${args[0] ?? ''} exited (${String(child.exitCode ?? child.signalCode)}) before it was ready: ${stderr}`));
      });
    });
    return { child, ready: match, exited, stderr: () => stderr, stop, kill };
  } catch (err) {
    await kill();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The fleet

export interface EngineFleetOptions {
  /** Engine processes. */
  readonly engines: number;
  /** `--sequences` of each engine: sessions whose KV stays resident at once. */
  readonly sequences: number;
  /** `--context` of each engine: tokens per sequence. */
  readonly contextTokens: number;
  /** Random-weight model preset (default tiny). */
  readonly preset?: RandomModelPresetName;
  /** Seed of the model's weights (default 1). */
  readonly modelSeed?: number;
  /** `--policy` of each engine (default vllm: the engines are the baseline; the gateway is under test). */
  readonly policy?: string;
  /** `--threads` of each engine (default 1). */
  readonly threads?: number;
  readonly startTimeoutMs?: number;
}

export interface EngineFleet {
  /** Base URLs (http://127.0.0.1:PORT), engine i at index i. */
  readonly urls: readonly string[];
  /** The model id every engine serves. */
  readonly modelId: string;
  /** Whether engine i's process is still running. */
  alive(i: number): boolean;
  /** SIGKILLs engine i, as a crash would; resolves once it has exited. */
  kill(i: number): Promise<void>;
  /** Stops every engine and removes the model; safe to call more than once. */
  close(): Promise<void>;
}

/** The files a fleet needs (a model and a launcher), in a temp dir removed by `remove`. */
export interface FleetFiles {
  readonly dir: string;
  readonly modelPath: string;
  readonly launcher: string;
  remove(): void;
}

export function writeFleetFiles(preset: RandomModelPresetName = 'tiny', modelSeed = 1): FleetFiles {
  installExitHook();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'saga-fleet-'));
  liveDirs.add(dir);
  const modelPath = path.join(dir, `${preset}.gguf`);
  createRandomModel({ preset, seed: modelSeed, outPath: modelPath });
  const remove = () => {
    fs.rmSync(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
  };
  return { dir, modelPath, launcher: writeCliLauncher(dir), remove };
}

/** Starts `options.engines` engines at once and resolves when each answers /healthz. */
export async function startEngineFleet(options: EngineFleetOptions): Promise<EngineFleet> {
  if (!Number.isInteger(options.engines) || options.engines < 1) throw new Error(`engines must be a positive integer, got ${options.engines}`);
  const files = writeFleetFiles(options.preset, options.modelSeed);
  const args = ['engine', '--model', files.modelPath, '--port', '0', '--host', '127.0.0.1'];
  args.push('--sequences', String(options.sequences), '--context', String(options.contextTokens));
  args.push('--policy', options.policy ?? 'vllm', '--threads', String(options.threads ?? 1));
  const started = await Promise.allSettled(
    Array.from({ length: options.engines }, () => startTsProcess(files.launcher, args, ENGINE_READY, options.startTimeoutMs)),
  );
  const processes = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await Promise.all(processes.map((p) => p.stop()));
    files.remove();
  };
  try {
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const urls = processes.map((p) => p.ready[2]);
    for (const url of urls) {
      const health = await fetch(`${url}/healthz`);
      if (!health.ok) throw new Error(`saga engine at ${url}: /healthz answered ${health.status}`);
    }
    return {
      urls,
      modelId: processes[0].ready[1],
      alive: (i) => processes[i].child.exitCode === null && processes[i].child.signalCode === null,
      kill: (i) => processes[i].kill(),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Agent programs over HTTP (runAgentWorkload's `send`), recording every call

/** One call as the client saw it. */
export interface CallRecord {
  readonly session: string;
  readonly tenant: string;
  /** The call's index within its session. */
  readonly index: number;
  /** HTTP status of the answer that ended the call (200, or the error that failed it). */
  readonly status: number;
  readonly promptTokens: number;
  readonly cachedTokens: number;
  readonly completionTokens: number;
  /** performance.now() when the call was first sent and when its final answer arrived. */
  readonly startMs: number;
  readonly endMs: number;
  /** Answers of 429 (overload) before this one. */
  readonly overloaded: number;
  /** The response headers of the final answer (the gateway may name the engine that served it). */
  readonly headers: Headers;
}

export interface AgentSenderOptions {
  /** Base URL of the gateway or engine. */
  readonly url: string;
  readonly model: string;
  /** Prepended to every session id (so that two runs on the same engines never share a session's KV). */
  readonly sessionPrefix?: string;
  /** Every call, appended when it ends. */
  readonly records?: CallRecord[];
  /** Called with every call's record when it ends (before the call's promise settles). */
  readonly onRecord?: (record: CallRecord) => void;
  /** 429 answers a call may get (each waited out for its Retry-After) before it fails. */
  readonly maxOverloaded?: number;
  /** After a program's last call is answered, tell the gateway it ended (DELETE /saga/sessions/:id; `saga serve` only). */
  readonly endSessions?: boolean;
}

interface CompletionBody {
  readonly usage?: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens?: number } };
}

/**
 * A `send` for runAgentWorkload: POSTs /v1/completions (identity headers, ignore_eos, max_tokens = the
 * call's output) and, as a client should, waits out a 429's Retry-After and tries again. Rejects on any
 * other non-200 answer, after recording it.
 */
export function agentSender(options: AgentSenderOptions): (call: AgentCall) => Promise<AgentCallResult> {
  const calls = new Map<string, number>();
  const maxOverloaded = options.maxOverloaded ?? 1000;
  return async (call) => {
    const session = `${options.sessionPrefix ?? ''}${call.session}`;
    const index = calls.get(session) ?? 0;
    calls.set(session, index + 1);
    const body = JSON.stringify({ model: options.model, prompt: call.prompt, max_tokens: call.maxTokens, temperature: 0, ignore_eos: true });
    const headers = { 'content-type': 'application/json', 'x-saga-session': session, 'x-saga-tenant': call.tenant, 'x-saga-kind': call.kind };
    const startMs = performance.now();
    for (let overloaded = 0; ; overloaded++) {
      const response = await fetch(`${options.url}/v1/completions`, { method: 'POST', headers, body });
      const text = await response.text();
      if (response.status === 429 && overloaded < maxOverloaded) {
        const retryAfterS = Number(response.headers.get('retry-after') ?? '1');
        await new Promise((resolve) => setTimeout(resolve, 1000 * (Number.isFinite(retryAfterS) ? retryAfterS : 1)));
        continue;
      }
      const usage = response.status === 200 ? (JSON.parse(text) as CompletionBody).usage : undefined;
      const record: CallRecord = {
        session,
        tenant: call.tenant,
        index,
        status: response.status,
        promptTokens: usage?.prompt_tokens ?? 0,
        cachedTokens: usage?.prompt_tokens_details?.cached_tokens ?? 0,
        completionTokens: usage?.completion_tokens ?? 0,
        startMs,
        endMs: performance.now(),
        overloaded,
        headers: response.headers,
      };
      options.records?.push(record);
      options.onRecord?.(record);
      if (usage === undefined) throw new Error(`${options.url} answered ${response.status} to ${session} call ${index}: ${text.slice(0, 500)}`);
      if (options.endSessions === true && call.lastCall === true) {
        const ended = await fetch(options.url + SESSION_END_PATH.replace(':id', encodeURIComponent(session)), { method: 'DELETE' });
        if (ended.status !== 204) throw new Error(`${options.url} answered ${ended.status} to ending ${session}: ${(await ended.text()).slice(0, 500)}`);
      }
      return { promptTokens: record.promptTokens, cachedTokens: record.cachedTokens, completionTokens: record.completionTokens };
    }
  };
}

// ---------------------------------------------------------------------------------------------------------
// A gateway config in front of the fleet

export interface FleetGatewayOptions {
  readonly policy: GatewayPolicyName;
  /** Calls the gateway keeps in flight per engine (the rest wait in its queue). */
  readonly capacity: number;
  /** Tenants and their fair-share weights. */
  readonly tenants: readonly { readonly name: string; readonly weight: number }[];
  readonly maxQueuedPerEngine?: number;
  readonly maxBodyBytes?: number;
  /** The engines' kind (default saga-engine). */
  readonly kind?: EngineKind;
  /** The engines' prefill rate, for the cost of moving a session (default: the gateway's). */
  readonly prefillTokensPerS?: number;
}

/** The config of a gateway on a free port in front of `urls` (upstreams named engine-0, engine-1, ...). */
export function fleetGatewayConfig(urls: readonly string[], options: FleetGatewayOptions): GatewayConfigInput {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    policy: options.policy,
    engines: urls.map((url, i) => ({
      name: `engine-${i}`,
      url,
      kind: options.kind ?? 'saga-engine',
      capacity: options.capacity,
      ...(options.prefillTokensPerS === undefined ? {} : { prefillTokensPerS: options.prefillTokensPerS }),
    })),
    tenants: options.tenants.map((t) => ({ name: t.name, weight: t.weight })),
    ...(options.maxQueuedPerEngine === undefined ? {} : { admission: { maxQueuedPerEngine: options.maxQueuedPerEngine } }),
    ...(options.maxBodyBytes === undefined ? {} : { limits: { maxBodyBytes: options.maxBodyBytes } }),
  };
}
