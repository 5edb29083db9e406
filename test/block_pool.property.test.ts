/**
 * Differential property test: random sequences of valid and invalid operations on small pools, run on
 * the native KvCache and on the reference model (test/support/reference_pool.ts). After every step:
 * the same return value, outputs and error code; the whole snapshot identical; the pool invariants
 * (test/support/pool_assertions.ts checkInvariants) hold on the native pool. Seeded, so every run
 * replays the same sequences; a failure prints the shrunk sequence and the pool config.
 *
 * The CUDA backend runs the same property where a device answers; nothing here needs a GPU.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvCache } from '../lib/kv/kv_cache';
import { type BackendName, nativeBackend } from '../lib/native';
import { checkInvariants, diffSnapshots } from './support/pool_assertions';
import { Resolver, apply, configArb, expectSameOutcome, largeConfigArb, opArb, opArbWith, type Op, type PoolConfig } from './support/random_ops';
import { ReferencePool } from './support/reference_pool';

const SEED = Number(process.env.SAGA_PROPERTY_SEED ?? 0x5a6a);
const RUNS = Number(process.env.SAGA_PROPERTY_RUNS ?? 400);

/** Replays `ops` on a fresh native cache and model, checking after every step; returns step stats. */
function replay(backend: BackendName, config: PoolConfig, ops: Op[]): { errors: number; ok: number } {
  const cache = new KvCache({ ...config, backend });
  const model = new ReferencePool(config);
  const resolver = new Resolver(config);
  let errors = 0;
  let ok = 0;
  expect(diffSnapshots(model.snapshot(), cache.snapshot())).toEqual([]);
  ops.forEach((op, step) => {
    const before = model.snapshot();
    const call = resolver.resolve(op, before);
    const payloadDefined = call.payloadIds ? model.payloadIsDefined(call.payloadIds) : true;
    const expected = apply(model, call);
    const got = apply(cache, call);
    expectSameOutcome({ ...call, describe: `step ${step}: ${call.describe}` }, expected, got, payloadDefined);
    if (expected.error !== undefined) errors++;
    else ok++;
    const after = model.snapshot();
    if (expected.error !== undefined) expect(diffSnapshots(before, after), 'the model changed on error').toEqual([]);
    expect(diffSnapshots(after, cache.snapshot()), `step ${step}: ${call.describe}: snapshot (expected = model, got = native)`).toEqual([]);
    expect(cache.counts(), `step ${step}: counts`).toEqual(model.counts());
    checkInvariants(cache, resolver.probeHashes(after));
  });
  return { errors, ok };
}

interface PropertyShape {
  configs: fc.Arbitrary<PoolConfig>;
  ops: fc.Arbitrary<Op>;
  minOps: number;
  maxOps: number;
}
const SMALL: PropertyShape = { configs: configArb, ops: opArb, minOps: 1, maxOps: 80 };
/** Fewer, longer runs on larger pools: heap compaction, long free queues, deep eviction. */
const LONG: PropertyShape = { configs: largeConfigArb, ops: opArbWith({ maxBatch: 40 }), minOps: 200, maxOps: 500 };
const LONG_RUNS = Math.max(1, Math.round(RUNS / 25));

function runProperty(backend: BackendName, shape: PropertyShape, runs: number): void {
  let errors = 0;
  let ok = 0;
  fc.assert(
    fc.property(shape.configs, fc.array(shape.ops, { minLength: shape.minOps, maxLength: shape.maxOps, size: 'max' }), (config, ops) => {
      const stats = replay(backend, config, ops);
      errors += stats.errors;
      ok += stats.ok;
    }),
    { seed: SEED, numRuns: runs, endOnFailure: false },
  );
  // the generator must keep producing both kinds of calls, or the property says little
  expect(ok).toBeGreaterThan(runs * shape.minOps * 0.3 + runs * 10);
  expect(errors).toBeGreaterThan(runs * 5);
}

describe('BlockPool (cpu) against the reference model', () => {
  it(`agrees on ${RUNS} random operation sequences`, () => runProperty('cpu', SMALL, RUNS));
  it(`agrees on ${LONG_RUNS} long sequences over larger pools`, () => runProperty('cpu', LONG, LONG_RUNS));

  it('exercises eviction, offload, restore and every error code', () => {
    // A direct check of coverage: count what the model does over a sample of the same sequences.
    const seen = new Set<string>();
    fc.assert(
      fc.property(configArb, fc.array(opArb, { minLength: 1, maxLength: 80, size: 'max' }), (config, ops) => {
        const model = new ReferencePool(config);
        const resolver = new Resolver(config);
        for (const op of ops) {
          const before = model.counts();
          const call = resolver.resolve(op, model.snapshot());
          const outcome = apply(model, call);
          if (outcome.error) seen.add((outcome.error as { code: string }).code);
          else {
            seen.add(`ok:${call.name}`);
            const n = (call.args[0] as ArrayLike<unknown>).length;
            if (call.name === 'allocate' && before.deviceFree < n) seen.add('evicted by allocate');
            if (call.name === 'offload' && before.hostFree < n) seen.add('evicted by offload');
            if (call.name === 'restore' && before.deviceFree < n) seen.add('evicted by restore');
          }
        }
      }),
      { seed: SEED, numRuns: 100 },
    );
    for (const code of [
      'ERR_SAGA_BAD_ARGUMENT',
      'ERR_SAGA_UNKNOWN_BLOCK',
      'ERR_SAGA_BLOCK_STATE',
      'ERR_SAGA_DOUBLE_RELEASE',
      'ERR_SAGA_OUT_OF_BLOCKS',
      'ERR_SAGA_DUPLICATE_HASH',
      'ERR_SAGA_BAD_KEY',
      'ERR_SAGA_TABLE_ROW',
      'ERR_SAGA_TABLE_FULL',
    ]) {
      expect(seen, code).toContain(code);
    }
    for (const op of ['allocate', 'commit', 'acquire', 'release', 'setKeys', 'setSessionKeys', 'evict', 'offload', 'restore', 'tableAppend', 'tableTruncate', 'writePayload', 'readPayload']) {
      expect(seen, `ok:${op}`).toContain(`ok:${op}`);
    }
    for (const event of ['evicted by allocate', 'evicted by offload', 'evicted by restore']) expect(seen, event).toContain(event);
  });
});

const cudaAvailable = nativeBackend().backend === 'cuda';
if (!cudaAvailable) console.info(`BlockPool (cuda) property test skipped: ${nativeBackend().reason}`);

describe.skipIf(!cudaAvailable)('BlockPool (cuda) against the reference model', () => {
  it(`agrees on ${RUNS} random operation sequences`, () => runProperty('cuda', SMALL, RUNS));
  it(`agrees on ${LONG_RUNS} long sequences over larger pools`, () => runProperty('cuda', LONG, LONG_RUNS));
});
