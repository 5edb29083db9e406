/**
 * llama.cpp through node-llama-cpp: loaded once, CPU only, never building or downloading anything (its
 * prebuilt binaries are tried and, when they cannot load here, the reason is kept for the error).
 *
 * node-llama-cpp is an ES module and this package is CommonJS: it is reached through a dynamic `import()`,
 * which TypeScript keeps as is under `"module": "node16"` (Node 20 cannot `require` an ES module).
 *
 * Model files are checked in a child process before this process loads them: llama.cpp aborts the whole
 * process (an assert, not an exception) on some malformed files, e.g. one without
 * `llama.feed_forward_length`.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { SagaError } from '../errors';

// Types only: nothing is loaded until loadLlamaRuntime runs.
type NodeLlamaCpp = typeof import('node-llama-cpp', { with: { 'resolution-mode': 'import' } });
export type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;
export type LlamaModel = Awaited<ReturnType<Llama['loadModel']>>;
export type LlamaContext = Awaited<ReturnType<LlamaModel['createContext']>>;
export type LlamaContextSequence = ReturnType<LlamaContext['getSequence']>;

/** GGUF files start with these four bytes. */
const GGUF_MAGIC = Buffer.from('GGUF', 'latin1');
/** How long a model check may take before the file is declared unusable. */
const PROBE_TIMEOUT_MS = 60_000;
/** Hex digits of the script's hash in its file name: enough to tell versions apart. */
const PROBE_NAME_HEX = 12;

let runtime: Promise<Llama> | undefined;

function nodeLlamaCppUrl(): string {
  return pathToFileURL(require.resolve('node-llama-cpp')).href;
}

/** The process's llama.cpp (CPU build). Rejects with ERR_SAGA_ENGINE_UNAVAILABLE and the reason. */
export function loadLlamaRuntime(): Promise<Llama> {
  runtime ??= (async () => {
    let lib: NodeLlamaCpp;
    try {
      lib = await import('node-llama-cpp');
    } catch (err) {
      throw new SagaError(`node-llama-cpp is not installed or cannot load: ${(err as Error).message}`, 'ERR_SAGA_ENGINE_UNAVAILABLE');
    }
    try {
      return await lib.getLlama({ gpu: false, build: 'never', logLevel: lib.LlamaLogLevel.error, progressLogs: false });
    } catch (err) {
      throw new SagaError(
        `llama.cpp's prebuilt CPU binary for ${process.platform}-${process.arch} cannot load here (install @node-llama-cpp/${process.platform}-${process.arch}): ${(err as Error).message}`,
        'ERR_SAGA_ENGINE_UNAVAILABLE',
      );
    }
  })();
  runtime.catch(() => {
    runtime = undefined; // a later call tries again (e.g. after installing the binary)
  });
  return runtime;
}

export interface ModelFileInfo {
  /** The context length the model was trained with (`llama.context_length`). */
  readonly trainContextSize: number;
}

/** The child's script: load the model's metadata and vocabulary with llama.cpp, print what it found. */
const PROBE_SCRIPT = `
const [url, modelPath] = process.argv.slice(-2);
const lib = await import(url);
const llama = await lib.getLlama({ gpu: false, build: 'never', logLevel: lib.LlamaLogLevel.error, progressLogs: false });
const model = await llama.loadModel({ modelPath, vocabOnly: false });
process.stdout.write(JSON.stringify({ trainContextSize: model.trainContextSize }));
await model.dispose();
`;

let probeScriptPath: string | undefined;

/**
 * The script as a file: node-llama-cpp re-runs the process's own arguments to test its binary, so no `-e`.
 * One file per script content in the temp dir, shared by every process and written atomically (write,
 * then rename), so nothing accumulates there.
 */
function probeScript(): string {
  if (probeScriptPath !== undefined && fs.existsSync(probeScriptPath)) return probeScriptPath;
  const digest = createHash('sha256').update(PROBE_SCRIPT).digest('hex').slice(0, PROBE_NAME_HEX);
  const target = path.join(os.tmpdir(), `saga-probe-model-${digest}.mjs`);
  if (!fs.existsSync(target)) {
    const partial = `${target}.${process.pid}.tmp`;
    fs.writeFileSync(partial, PROBE_SCRIPT);
    fs.renameSync(partial, target);
  }
  probeScriptPath = target;
  return target;
}

function badModel(filePath: string, why: string): SagaError {
  return new SagaError(`model file ${filePath} cannot be used: ${why}`, 'ERR_SAGA_BAD_MODEL');
}

/**
 * Checks that llama.cpp loads `filePath`, in a child process so that a file that makes llama.cpp abort
 * costs the child, not this process. Rejects with ERR_SAGA_BAD_MODEL and the reason.
 */
export async function probeModelFile(filePath: string): Promise<ModelFileInfo> {
  let head: Buffer;
  try {
    const fd = fs.openSync(filePath, 'r');
    try {
      head = Buffer.alloc(4);
      fs.readSync(fd, head, 0, 4, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw badModel(filePath, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message);
  }
  if (!head.equals(GGUF_MAGIC)) throw badModel(filePath, 'not a GGUF file (it does not start with "GGUF")');
  const url = nodeLlamaCppUrl();
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [probeScript(), url, filePath],
      { timeout: PROBE_TIMEOUT_MS, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          const why = err.signal ? `llama.cpp crashed loading it (${err.signal})` : 'llama.cpp refused it';
          const lines = (stderr || err.message).split('\n').map((l) => l.trim());
          const detail = (lines.find((l) => /error/i.test(l) && !l.startsWith('at ')) ?? lines.find((l) => l !== '') ?? '').slice(0, 500);
          reject(badModel(filePath, `${why}: ${detail}`));
          return;
        }
        try {
          resolve(JSON.parse(stdout) as ModelFileInfo);
        } catch {
          reject(badModel(filePath, `unexpected answer from the model check: ${stdout.slice(0, 200)}`));
        }
      },
    );
  });
}
