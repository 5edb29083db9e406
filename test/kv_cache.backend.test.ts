/**
 * Constructor options and backend choice. No GPU is assumed: where CUDA cannot run, forcing it must
 * fail with ERR_SAGA_BACKEND_UNAVAILABLE and a reason, never crash; the CPU backend always works.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SagaError } from '../lib/errors';
import { KvCache, type KvCacheOptions } from '../lib/kv/kv_cache';
import { nativeBackend } from '../lib/native';
import { thrown } from './support/pool_assertions';

const repoRoot = path.resolve(__dirname, '..');
const cudaHere = nativeBackend().backend === 'cuda';

interface ProbeResult {
  ok: boolean;
  backend?: string;
  reason?: string;
  cacheBackend?: string;
  sagaError?: boolean;
  code?: string;
  message?: string;
}

/** Loads the addon in a fresh node process with SAGA_BACKEND set (or unset) and reports. */
function probe(sagaBackend: string | undefined): ProbeResult {
  const env = { ...process.env };
  delete env.SAGA_BACKEND;
  if (sagaBackend !== undefined) env.SAGA_BACKEND = sagaBackend;
  const child = spawnSync(process.execPath, ['--import', 'tsx', path.join('test', 'support', 'backend_probe.ts')], {
    cwd: repoRoot,
    env,
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(child.status, `child stderr: ${child.stderr}`).toBe(0); // no crash, whatever the backend
  const lines = child.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as ProbeResult;
}

function expectBadOptions(options: unknown): void {
  const err = thrown(() => new KvCache(options as KvCacheOptions));
  expect(err).toBeInstanceOf(SagaError);
  expect((err as SagaError).code).toBe('ERR_SAGA_BAD_ARGUMENT');
}

describe('KvCache options', () => {
  it.each([
    ['no options', undefined],
    ['null', null],
    ['a number', 4],
    ['no deviceCapacity', { hostCapacity: 2 }],
    ['deviceCapacity 0', { deviceCapacity: 0 }],
    ['deviceCapacity -1', { deviceCapacity: -1 }],
    ['deviceCapacity 1.5', { deviceCapacity: 1.5 }],
    ['deviceCapacity NaN', { deviceCapacity: NaN }],
    ['deviceCapacity "4"', { deviceCapacity: '4' }],
    ['deviceCapacity 2^31', { deviceCapacity: 2 ** 31 }],
    ['hostCapacity -1', { deviceCapacity: 2, hostCapacity: -1 }],
    ['payloadBytes -1', { deviceCapacity: 2, payloadBytes: -1 }],
    ['tableRows 1.5', { deviceCapacity: 2, tableRows: 1.5 }],
    ['tableCols -1', { deviceCapacity: 2, tableCols: -1 }],
    ['block ids past int32', { deviceCapacity: 2 ** 30, hostCapacity: 2 ** 30 }],
    ['backend "tpu"', { deviceCapacity: 2, backend: 'tpu' }],
  ])('rejects %s with ERR_SAGA_BAD_ARGUMENT', (_, options) => expectBadOptions(options));

  it('accepts the smallest cache and fills in defaults', () => {
    const cache = new KvCache({ deviceCapacity: 1, backend: 'cpu' });
    expect([cache.deviceCapacity, cache.hostCapacity, cache.payloadBytes, cache.tableRows, cache.tableCols]).toEqual([1, 0, 0, 0, 0]);
    expect(cache.snapshot().state.length).toBe(1);
  });
});

describe('backend choice', () => {
  it('records why it chose the backend it runs', () => {
    const native = nativeBackend();
    expect(['cpu', 'cuda']).toContain(native.backend);
    expect(native.reason.length).toBeGreaterThan(0);
    const cache = new KvCache({ deviceCapacity: 2 });
    expect(cache.backend).toBe(native.backend);
  });

  it('always offers the CPU backend', () => {
    expect(new KvCache({ deviceCapacity: 2, backend: 'cpu' }).backend).toBe('cpu');
  });

  it.skipIf(cudaHere)('rejects backend "cuda" with ERR_SAGA_BACKEND_UNAVAILABLE and the reason', () => {
    const err = thrown(() => new KvCache({ deviceCapacity: 2, backend: 'cuda' }));
    expect(err).toBeInstanceOf(SagaError);
    expect((err as SagaError).code).toBe('ERR_SAGA_BACKEND_UNAVAILABLE');
    expect((err as SagaError).message).toContain(nativeBackend().reason);
  });

  it.skipIf(cudaHere)('SAGA_BACKEND=cuda fails with ERR_SAGA_BACKEND_UNAVAILABLE in a process without CUDA', () => {
    const result = probe('cuda');
    expect(result.ok).toBe(false);
    expect(result.sagaError).toBe(true);
    expect(result.code).toBe('ERR_SAGA_BACKEND_UNAVAILABLE');
    expect(result.message?.length).toBeGreaterThan('SAGA_BACKEND=cuda'.length); // it says why
  });

  it('SAGA_BACKEND=cpu gives the CPU backend', () => {
    const result = probe('cpu');
    expect(result).toMatchObject({ ok: true, backend: 'cpu', cacheBackend: 'cpu' });
  });

  it('SAGA_BACKEND unset picks CUDA only where it runs, and says why', () => {
    const result = probe(undefined);
    expect(result.ok).toBe(true);
    expect(result.cacheBackend).toBe(result.backend);
    expect(result.reason?.length).toBeGreaterThan(0);
    // this process made the same choice, unless SAGA_BACKEND forced it here
    if (!process.env.SAGA_BACKEND) expect(result.backend).toBe(nativeBackend().backend);
    else expect(['cpu', 'cuda']).toContain(result.backend);
  });

  it('SAGA_BACKEND with another value is a bad argument', () => {
    const result = probe('tpu');
    expect(result).toMatchObject({ ok: false, sagaError: true, code: 'ERR_SAGA_BAD_ARGUMENT' });
  });
});
