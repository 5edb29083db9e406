/**
 * The hash index must never stop a call from returning. An allocate validates its batch before
 * changing anything; whatever the batch's size, it must either complete or throw (a batch larger than
 * free + cached device blocks throws ERR_SAGA_OUT_OF_BLOCKS). Each scenario runs in a child process
 * with a time limit, because a native call that loops forever cannot be interrupted in-process; the
 * children run side by side, so a hang costs one time limit, not one per scenario.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const repoRoot = path.resolve(__dirname, '..');
const LIMIT_MS = 8_000;

interface Finished {
  killed: boolean;
  status: number | null;
  stdout: string;
  stderr: string;
}

function start(args: (string | number)[]): Promise<Finished> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join('test', 'support', 'index_capacity_scenarios.ts'), ...args.map(String)], { cwd: repoRoot });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, LIMIT_MS);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ killed, status, stdout, stderr });
    });
  });
}

const oversized: [number, number][] = [
  [8, 9],
  [8, 16],
  [100, 300],
];
const fullThenOversized: [number, number, number][] = [
  [8, 8, 1],
  [8, 8, 64],
  [16, 4, 100],
];
const replaceAll = [8, 16, 20];
const results = new Map<string, Finished>();

beforeAll(async () => {
  const runs = [
    ...oversized.map(([d, n]) => ['oversized', d, n]),
    ...fullThenOversized.map(([d, h, n]) => ['fullThenOversized', d, h, n]),
    ...replaceAll.map((d) => ['replaceAll', d]),
  ];
  const done = await Promise.all(runs.map((args) => start(args)));
  runs.forEach((args, i) => results.set(args.join(' '), done[i]));
}, 60_000);

function result(...args: (string | number)[]): unknown {
  const r = results.get(args.join(' '));
  expect(r, 'scenario was run').toBeDefined();
  expect(r!.killed, `scenario "${args.join(' ')}" did not finish within ${LIMIT_MS / 1000} s`).toBe(false);
  expect(r!.status, r!.stderr).toBe(0);
  return JSON.parse(r!.stdout.trim().split('\n').pop() as string);
}

describe('allocate never hangs on the hash index', () => {
  it.each(oversized)('with %i device blocks, allocating %i hashed blocks throws ERR_SAGA_OUT_OF_BLOCKS', (capacity, n) => {
    expect(result('oversized', capacity, n)).toEqual({ ok: false, code: 'ERR_SAGA_OUT_OF_BLOCKS' });
  });

  it.each(fullThenOversized)(
    'with %i device blocks referenced and %i host blocks cached, allocating %i more throws ERR_SAGA_OUT_OF_BLOCKS',
    (d, h, n) => {
      expect(result('fullThenOversized', d, h, n)).toEqual({ ok: false, code: 'ERR_SAGA_OUT_OF_BLOCKS' });
    },
  );

  it.each(replaceAll)('with %i device blocks all cached, allocating as many new hashed blocks evicts them all', (capacity) => {
    // All keys are 0 and positions 0..D-1, so victims go deepest first: D-1, ..., 0; the free queue
    // was empty, so the evicted blocks are handed out in that order.
    const expectedIds = Array.from({ length: capacity }, (_, i) => capacity - 1 - i);
    expect(result('replaceAll', capacity)).toEqual({
      ok: true,
      value: {
        ids: expectedIds,
        oldFound: 0,
        counts: { deviceFree: 0, deviceCached: 0, deviceReferenced: capacity, hostFree: 0, hostCached: 0 },
      },
    });
  });
});
