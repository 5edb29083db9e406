/**
 * `saga engine` on a real llama.cpp (node-llama-cpp, CPU) with a generated tiny model: the model file,
 * KV reuse and host-tier restore against cold runs at temperature 0, and bad input over HTTP with the
 * real engine behind the server (errors answered, the engine still serving, other sessions' KV kept).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GgufWriter } from '../lib/engine/gguf_writer';
import { LlamaEngine } from '../lib/engine/llama_engine';
import { probeModelFile } from '../lib/engine/llama_runtime';
import { createRandomModel } from '../lib/engine/random_model';
import { createEngineServer } from '../lib/engine/server';
import type { CompletionRequest } from '../lib/engine/types';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'saga-engine-test-'));
const tiny = path.join(dir, 'tiny.gguf');
/** A prompt of ~400 tokens, and its extension by a tool result. */
const BASE = ' the quick brown fox jumps over the lazy dog'.repeat(40);
const EXTENDED = `${BASE} and then the tool said: all tests passed`;

function request(session: string, prompt: string, maxTokens = 12): CompletionRequest {
  return { session, tenant: 't', kind: 'k', prompt, maxTokens, temperature: 0 };
}

beforeAll(() => {
  createRandomModel({ preset: 'tiny', seed: 1, outPath: tiny });
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('saga model create (random-weight GGUF)', () => {
  it('writes the same bytes for the same seed and different weights for another seed', () => {
    const again = path.join(dir, 'again.gguf');
    const other = path.join(dir, 'other.gguf');
    createRandomModel({ preset: 'tiny', seed: 1, outPath: again });
    createRandomModel({ preset: 'tiny', seed: 2, outPath: other });
    const a = fs.readFileSync(tiny);
    expect(a.subarray(0, 4).toString('latin1')).toBe('GGUF');
    expect(fs.readFileSync(again).equals(a)).toBe(true);
    const b = fs.readFileSync(other);
    expect(b.length).toBe(a.length);
    expect(b.equals(a)).toBe(false);
  });

  it('is loaded by llama.cpp with the preset context length', async () => {
    await expect(probeModelFile(tiny)).resolves.toEqual({ trainContextSize: 2048 });
  });

  it('refuses bad files with ERR_SAGA_BAD_MODEL, and survives one that makes llama.cpp abort', async () => {
    const notGguf = path.join(dir, 'not.gguf');
    fs.writeFileSync(notGguf, 'definitely not a model');
    const truncated = path.join(dir, 'truncated.gguf');
    fs.writeFileSync(truncated, fs.readFileSync(tiny).subarray(0, 4096));
    // No llama.feed_forward_length / head_count: llama.cpp asserts (aborts its process) on such a file.
    const headless = path.join(dir, 'headless.gguf');
    new GgufWriter().string('general.architecture', 'llama').uint32('llama.context_length', 128).uint32('llama.embedding_length', 64).uint32('llama.block_count', 1).writeFile(headless);
    for (const file of [notGguf, truncated, headless, path.join(dir, 'missing.gguf')]) {
      await expect(probeModelFile(file), file).rejects.toMatchObject({ code: 'ERR_SAGA_BAD_MODEL' });
    }
    await expect(LlamaEngine.create({ modelPath: headless })).rejects.toMatchObject({ code: 'ERR_SAGA_BAD_MODEL' });
  });
});

describe('LlamaEngine: KV reuse and restore give the tokens of a cold run', () => {
  let cold: string;

  beforeAll(async () => {
    const engine = await LlamaEngine.create({ modelPath: tiny, sequences: 1, contextSize: 1024 });
    try {
      const r = await engine.complete(request('cold', EXTENDED));
      expect(r.usage.cachedTokens).toBe(0);
      cold = r.text;
    } finally {
      await engine.close();
    }
  });

  it('reuses a session prefix (cached tokens reported) and generates what a cold run does', async () => {
    const engine = await LlamaEngine.create({ modelPath: tiny, sequences: 1, contextSize: 1024 });
    try {
      const first = await engine.complete(request('a', BASE));
      const second = await engine.complete(request('a', EXTENDED));
      expect(second.usage.cachedTokens).toBeGreaterThanOrEqual(first.usage.promptTokens - 1);
      expect(second.usage.cachedTokens).toBeLessThan(second.usage.promptTokens);
      expect(second.text).toBe(cold);
    } finally {
      await engine.close();
    }
  });

  it('restores an offloaded session from the host tier and generates what a cold run does', async () => {
    for (const policy of ['vllm', 'saga']) {
      const engine = await LlamaEngine.create({ modelPath: tiny, sequences: 1, contextSize: 1024, policy, hostTierMiB: 64, hostDir: path.join(dir, `host-${policy}`) });
      try {
        const first = await engine.complete(request('a', BASE));
        await engine.complete(request('b', ' something else entirely'.repeat(10))); // takes a's only sequence
        expect(engine.stats().offloadsTotal, policy).toBe(1);
        expect(engine.stats().hostTierSessions, policy).toBe(1);
        const back = await engine.complete(request('a', EXTENDED));
        expect(engine.stats().restoresTotal, policy).toBe(1);
        expect(back.usage.cachedTokens, policy).toBeGreaterThanOrEqual(first.usage.promptTokens - 1);
        expect(back.text, policy).toBe(cold);
      } finally {
        await engine.close();
      }
    }
  });

  it('without a host tier drops the session: recomputed, same tokens, no cached tokens claimed', async () => {
    const engine = await LlamaEngine.create({ modelPath: tiny, sequences: 1, contextSize: 1024 });
    try {
      await engine.complete(request('a', BASE));
      await engine.complete(request('b', ' something else entirely'.repeat(10)));
      const back = await engine.complete(request('a', EXTENDED));
      expect(engine.stats().dropsTotal).toBe(2); // a for b, then b for a
      expect(back.usage.cachedTokens).toBe(0);
      expect(back.text).toBe(cold);
    } finally {
      await engine.close();
    }
  });

  it('refuses policies it cannot run and bad sizes with stable codes', async () => {
    await expect(LlamaEngine.create({ modelPath: tiny, policy: 'belady' })).rejects.toMatchObject({ code: 'ERR_SAGA_UNKNOWN_POLICY' });
    await expect(LlamaEngine.create({ modelPath: tiny, policy: 'nope' })).rejects.toMatchObject({ code: 'ERR_SAGA_UNKNOWN_POLICY' });
    await expect(LlamaEngine.create({ modelPath: tiny, sequences: 0 })).rejects.toMatchObject({ code: 'ERR_SAGA_BAD_ARGUMENT' });
  });
});

describe('saga engine over HTTP with the real engine: bad input', () => {
  it('answers every bad request with an OpenAI error and keeps serving, other sessions kept', async () => {
    const engine = await LlamaEngine.create({ modelPath: tiny, sequences: 2, contextSize: 512, policy: 'saga' });
    const server = createEngineServer({ engines: [engine], loadModel: (p) => LlamaEngine.create({ modelPath: p }) });
    const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
      server.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', ...headers }, payload: typeof body === 'string' ? body : JSON.stringify(body) });
    try {
      const model = engine.modelId;
      const good = { model, prompt: BASE.slice(0, 600), max_tokens: 4, temperature: 0 };
      const first = await post('/v1/completions', good, { 'x-saga-session': 'keep' });
      expect(first.statusCode).toBe(200);
      const bad: [string, unknown, number, string | null][] = [
        ['/v1/completions', '{"model": ', 400, null],
        ['/v1/completions', { ...good, model: 'nope' }, 404, 'model'],
        ['/v1/completions', { ...good, max_tokens: -1 }, 400, 'max_tokens'],
        ['/v1/completions', { ...good, prompt: BASE.repeat(3) }, 400, 'prompt'],
        ['/v1/chat/completions', { model, messages: [{ role: 'user', content: BASE.repeat(3) }] }, 400, 'messages'],
        ['/saga/models', { path: path.join(dir, 'not.gguf') }, 400, 'path'],
      ];
      for (const [url, body, status, param] of bad) {
        const res = await post(url, body, { 'x-saga-session': 'bad' });
        expect(res.statusCode, JSON.stringify(body).slice(0, 60)).toBe(status);
        const err = res.json().error;
        expect(err.type).toBe('invalid_request_error');
        if (param !== null) expect(err.param).toBe(param);
      }
      // Still serving, and the first session's KV is still there.
      const again = await post('/v1/completions', { ...good, prompt: `${good.prompt} more` }, { 'x-saga-session': 'keep' });
      expect(again.statusCode).toBe(200);
      expect(again.json().usage.prompt_tokens_details.cached_tokens).toBeGreaterThanOrEqual(first.json().usage.prompt_tokens - 1);
      const models = await server.inject({ method: 'GET', url: '/v1/models' });
      expect(models.json().data.map((m: { id: string }) => m.id)).toEqual([model]);
    } finally {
      await server.close();
      await engine.close();
    }
  });
});
