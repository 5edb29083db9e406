/** `saga serve`'s config checks, program identity precedence, and the gateway's prompt estimates. */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkIdentityValue, readIdentity } from '../lib/engine/program_identity';
import { OpenAiError } from '../lib/engine/openai_errors';
import { BlockRecord } from '../lib/router/block_record';
import { loadGatewayConfig, parseGatewayConfig } from '../lib/router/config';
import { chatPromptText, estimatePrompt } from '../lib/router/prompt_estimate';
import { SagaError } from '../lib/errors';
import { main } from '../lib/cli';

const ENGINE = { name: 'e0', url: 'http://127.0.0.1:9001', kind: 'vllm', capacity: 4 };

function configError(json: unknown): SagaError {
  try {
    parseGatewayConfig(json);
  } catch (error) {
    expect(error).toBeInstanceOf(SagaError);
    expect((error as SagaError).code).toBe('ERR_SAGA_BAD_CONFIG');
    return error as SagaError;
  }
  throw new Error('expected the config to be refused');
}

describe('gateway config', () => {
  it('fills in every default from a config with engines only', () => {
    const config = parseGatewayConfig({ engines: [ENGINE] });
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(config.policy).toBe('saga');
    expect(config.admission).toEqual({ maxQueuedPerEngine: 64, retryAfterS: 1 });
    expect(config.timeouts).toEqual({ connectMs: 2000, firstByteMs: 60000, requestMs: 600000 });
    expect(config.limits).toEqual({ maxBodyBytes: 1048576 });
    expect(config.engines[0]).toMatchObject({ name: 'e0', kind: 'vllm', capacity: 4, slots: 4, priorityScheduling: false });
    expect(config.tenants).toEqual([]);
  });

  it('keeps what the file gives and is idempotent', () => {
    const json = {
      listen: { host: '0.0.0.0', port: 9000 },
      policy: 'round-robin',
      engines: [{ ...ENGINE, url: 'http://127.0.0.1:9001/' }, { name: 'l', url: 'http://h:8080', kind: 'llama.cpp', capacity: 2, slots: 4 }],
      tenants: [{ name: 'a', weight: 2, slo: { slowdown: 5 } }, { name: 'b' }],
      admission: { maxQueuedPerEngine: 8, retryAfterS: 3 },
    };
    const config = parseGatewayConfig(json);
    expect(config.engines[0].url).toBe('http://127.0.0.1:9001');
    expect(config.engines[1].slots).toBe(4);
    expect(config.engines.map((e) => e.kvTokens)).toEqual([undefined, undefined]);
    const sized = parseGatewayConfig({ engines: [{ ...ENGINE, kvTokens: 500_000 }, { ...ENGINE, name: 'e1', kvTokens: 250_000 }] });
    expect(sized.engines.map((e) => e.kvTokens)).toEqual([500_000, 250_000]);
    expect(parseGatewayConfig(sized)).toEqual(sized);
    expect(config.tenants).toEqual([{ name: 'a', weight: 2, slo: { slowdown: 5 } }, { name: 'b', weight: 1, slo: { slowdown: 2 } }]);
    expect(parseGatewayConfig(config)).toEqual(config);
  });

  it.each([
    [{}, /engines must be an array/],
    [{ engines: [] }, /engines must list at least one engine/],
    [{ engines: [{ ...ENGINE, url: 'ftp://x' }] }, /engines\[0\]\.url must be an http or https URL/],
    [{ engines: [{ ...ENGINE, url: 'http://x:8000/v1' }] }, /engines\[0\]\.url is the engine's base URL, without \/v1/],
    [{ engines: [{ ...ENGINE, kind: 'tgi' }] }, /engines\[0\]\.kind must be one of saga-engine, vllm, sglang, llama.cpp, openai/],
    [{ engines: [{ ...ENGINE, capacity: 0 }] }, /engines\[0\]\.capacity must be an integer in \[1,/],
    [{ engines: [{ ...ENGINE, capacity: 1.5 }] }, /engines\[0\]\.capacity must be an integer/],
    [{ engines: [ENGINE, { ...ENGINE }] }, /engines\[1\]\.name repeats the name "e0"/],
    [{ engines: [{ ...ENGINE, slots: 8 }] }, /engines\[0\]\.slots applies to kinds llama.cpp and saga-engine only/],
    [{ engines: [{ ...ENGINE, kind: 'llama.cpp', slots: 2 }] }, /engines\[0\]\.slots \(2\) must be at least capacity \(4\)/],
    [{ engines: [{ ...ENGINE, kind: 'sglang', priorityScheduling: true }] }, /priorityScheduling applies to kind vllm only/],
    [{ engines: [{ ...ENGINE, capcity: 4 }] }, /engines\[0\]\.capcity is not a known field/],
    [{ engines: [{ ...ENGINE, kvTokens: 0 }] }, /engines\[0\]\.kvTokens must be an integer in \[1,/],
    [{ engines: [{ ...ENGINE, kvTokens: '1M' }] }, /engines\[0\]\.kvTokens must be an integer/],
    [{ engines: [{ ...ENGINE, kvTokens: 1000 }, { ...ENGINE, name: 'e1' }] }, /engines\[1\]\.kvTokens is missing: give kvTokens for every engine or for none/],
    [{ engines: [ENGINE], policy: 'fastest' }, /policy must be one of saga, affinity, round-robin, least-loaded, saga-routing, afs/],
    [{ engines: [ENGINE], tenants: [{ name: 'a', weight: -1 }] }, /tenants\[0\]\.weight must be a positive number/],
    [{ engines: [ENGINE], tenants: [{ name: 'a', slo: { slowdown: 0.5 } }] }, /tenants\[0\]\.slo\.slowdown must be at least 1/],
    [{ engines: [ENGINE], tenants: [{ weight: 1 }] }, /tenants\[0\]\.name must be a non-empty string/],
    [{ engines: [ENGINE], listen: { port: 70000 } }, /listen\.port must be an integer in \[0, 65535\]/],
    [{ engines: [ENGINE], admission: { maxQueuedPerEngine: -1 } }, /admission\.maxQueuedPerEngine must be an integer/],
    [{ engines: [ENGINE], timeouts: { firstByteMs: '5s' } }, /timeouts\.firstByteMs must be an integer/],
    [{ engines: [ENGINE], limits: { maxBodyBytes: 0 } }, /limits\.maxBodyBytes must be an integer in \[1,/],
    [[ENGINE], /the config must be an object/],
  ])('refuses %j naming the field', (json, message) => {
    expect(configError(json).message).toMatch(message);
  });

  it('names the file when it cannot be read or is not JSON', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'saga-gw-'));
    const file = path.join(dir, 'gateway.json');
    expect(() => loadGatewayConfig(file)).toThrow(/cannot read .*gateway\.json/);
    fs.writeFileSync(file, '{"engines": [');
    expect(() => loadGatewayConfig(file)).toThrow(/gateway\.json is not valid JSON/);
    fs.writeFileSync(file, JSON.stringify({ engines: [ENGINE] }));
    expect(loadGatewayConfig(file).engines[0].name).toBe('e0');
  });
});

describe('saga serve on the command line', () => {
  it('refuses a bad config file before listening', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'saga-gw-'));
    const file = path.join(dir, 'gateway.json');
    fs.writeFileSync(file, JSON.stringify({ engines: [{ ...ENGINE, capacity: 'four' }] }));
    await expect(main(['serve', '--config', file])).rejects.toMatchObject({ code: 'ERR_SAGA_BAD_CONFIG', message: expect.stringMatching(/engines\[0\]\.capacity/) });
    await expect(main(['serve', '--config', file, '--port', '99999'])).rejects.toMatchObject({ code: 'ERR_SAGA_BAD_CONFIG' });
  });

  it('refuses a bad --port', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'saga-gw-'));
    const file = path.join(dir, 'gateway.json');
    fs.writeFileSync(file, JSON.stringify({ engines: [ENGINE] }));
    await expect(main(['serve', '--config', file, '--port', '99999'])).rejects.toMatchObject({ code: 'ERR_SAGA_BAD_ARGUMENT', message: expect.stringMatching(/--port/) });
  });
});

describe('program identity', () => {
  const anon = () => 'anonymous-1';

  it('takes the session from x-saga-session, then x-session-id, then x-session-token, then user', () => {
    const all = { 'x-saga-session': 's-saga', 'x-session-id': 's-id', 'x-session-token': 's-token' };
    expect(readIdentity(all, 'u', anon).session).toBe('s-saga');
    expect(readIdentity({ 'x-session-id': 's-id', 'x-session-token': 's-token' }, 'u', anon).session).toBe('s-id');
    expect(readIdentity({ 'x-session-token': 's-token' }, 'u', anon).session).toBe('s-token');
    expect(readIdentity({}, 'u', anon).session).toBe('u');
    expect(readIdentity({}, undefined, anon).session).toBe('anonymous-1');
  });

  it('takes tenant and kind from their headers, else default', () => {
    expect(readIdentity({ 'x-saga-tenant': 'acme', 'x-saga-kind': 'swebench' }, undefined, anon)).toEqual({ session: 'anonymous-1', tenant: 'acme', kind: 'swebench' });
    expect(readIdentity({}, undefined, anon)).toMatchObject({ tenant: 'default', kind: 'default' });
  });

  it('refuses control characters and overlong ids, naming the header', () => {
    expect(() => readIdentity({ 'x-session-id': 'a\u0001b' }, undefined, anon)).toThrow(OpenAiError);
    expect(() => readIdentity({ 'x-session-id': 'a\u0001b' }, undefined, anon)).toThrow(/x-session-id/);
    expect(() => readIdentity({ 'x-saga-tenant': 'x'.repeat(257) }, undefined, anon)).toThrow(/x-saga-tenant/);
  });

  it("refuses exactly the characters of Unicode's Cc category, wherever they stand", () => {
    const control = /\p{Cc}/u;
    for (let code = 0; code < 0x10000; code++) {
      const id = `a${String.fromCharCode(code)}b`;
      const refused = (() => {
        try {
          checkIdentityValue(id, 'user');
          return false;
        } catch {
          return true;
        }
      })();
      if (refused !== control.test(id)) throw new Error(`U+${code.toString(16)}: refused ${refused}`);
    }
    expect(checkIdentityValue('\u{1F642}', 'user')).toBe('\u{1F642}');
  });
});

describe('prompt estimates', () => {
  it('estimates 4 characters a token and hashes full 64-character blocks, prefix-chained', () => {
    const a = estimatePrompt('a'.repeat(200));
    expect(a.promptTokens).toBe(50);
    expect(a.blockHashes.length).toBe(3);
    const b = estimatePrompt(`${'a'.repeat(128)}${'b'.repeat(72)}`);
    expect([...b.blockHashes.slice(0, 2)]).toEqual([...a.blockHashes.slice(0, 2)]);
    expect(b.blockHashes[2]).not.toBe(a.blockHashes[2]);
  });

  it("keeps a growing conversation's earlier text as a prefix", () => {
    const first = [{ role: 'system', content: 'x'.repeat(300) }];
    const later = [...first, { role: 'assistant', content: 'y' }, { role: 'user', content: 'z' }];
    const tools = [{ type: 'function', function: { name: 'run' } }];
    expect(chatPromptText(later, tools).startsWith(chatPromptText(first, tools))).toBe(true);
  });

  it('remembers the blocks sent, a prefix outliving its tail', () => {
    const record = new BlockRecord(4);
    const hashes = new BigUint64Array([1n, 2n, 3n]);
    record.sent(hashes);
    expect(record.prefixBlocks(new BigUint64Array([1n, 2n, 9n]))).toBe(2);
    record.sent(new BigUint64Array([7n, 8n]));
    // Five hashes in a record of four: the tail of the older call left first, its head stayed.
    expect(record.size).toBe(4);
    expect(record.prefixBlocks(hashes)).toBe(2);
  });
});
