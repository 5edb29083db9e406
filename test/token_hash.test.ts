/**
 * hashTokenBlocks against a BigInt rewrite of token_hash.h (test/support/token_hash_reference.ts), the
 * rewrite against published FNV-1a vectors, and the chaining properties the prefix cache relies on.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SagaError } from '../lib/errors';
import { HASH_ROOT, hashTokenBlocks } from '../lib/kv/token_hash';
import { thrown } from './support/pool_assertions';
import { FNV_OFFSET_BASIS, FNV_PRIME, MASK64, finalizeHash, fnv1aStep, referenceHashTokenBlocks } from './support/token_hash_reference';

const native = (tokens: number[], blockSize: number, parent?: bigint) => Array.from(hashTokenBlocks(Uint32Array.from(tokens), blockSize, parent));

/** The inverse of the FNV prime mod 2^64 (Newton's iteration; the prime is odd). */
function inversePrime(): bigint {
  let x = FNV_PRIME; // correct to 3 bits for an odd number; each step doubles the correct bits
  for (let i = 0; i < 6; i++) x = (x * (2n - FNV_PRIME * x)) & MASK64;
  return x;
}

describe('the BigInt reference', () => {
  it('computes published FNV-1a 64 values (one byte-sized token per byte)', () => {
    const fnv = (s: string) => [...Buffer.from(s)].reduce((h, byte) => fnv1aStep(h, byte), FNV_OFFSET_BASIS);
    expect(fnv('')).toBe(0xcbf29ce484222325n);
    expect(fnv('a')).toBe(0xaf63dc4c8601ec8cn);
    expect(fnv('foobar')).toBe(0x85944171f73967e8n);
  });

  it('uses the FNV offset basis as the root', () => {
    expect(HASH_ROOT).toBe(FNV_OFFSET_BASIS);
  });

  it('maps fmix64(0) = 0 to 1 and is a bijection elsewhere on a sample', () => {
    expect(finalizeHash(0n)).toBe(1n);
    const seen = new Set<bigint>();
    for (let i = 1n; i < 2000n; i++) seen.add(finalizeHash(i * 0x9e3779b97f4a7c15n & MASK64));
    expect(seen.size).toBe(1999);
  });
});

describe('hashTokenBlocks', () => {
  it('agrees with the reference on random tokens, block sizes and parents', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 70 }),
        fc.integer({ min: 1, max: 9 }),
        fc.option(fc.bigInt({ min: 0n, max: MASK64 }), { nil: undefined }),
        (tokens, blockSize, parent) => {
          expect(native(tokens, blockSize, parent)).toEqual(referenceHashTokenBlocks(tokens, blockSize, parent));
        },
      ),
      { seed: 20240611, numRuns: 400 },
    );
  });

  it('leaves a trailing partial block out', () => {
    expect(native([1, 2, 3, 4, 5], 2)).toHaveLength(2);
    expect(native([1, 2, 3], 4)).toEqual([]);
    expect(native([], 3)).toEqual([]);
    expect(native([1, 2, 3, 4, 5], 2)).toEqual(native([1, 2, 3, 4], 2));
  });

  it('chains: the hashes of the rest continue from the last hash of the start', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 0xffffffff }), { minLength: 8, maxLength: 40 }), fc.integer({ min: 1, max: 4 }), (tokens, blockSize) => {
        const whole = native(tokens, blockSize);
        const cut = blockSize * Math.floor(tokens.length / blockSize / 2);
        const first = native(tokens.slice(0, cut), blockSize);
        const rest = native(tokens.slice(cut), blockSize, first.length > 0 ? first[first.length - 1] : HASH_ROOT);
        expect([...first, ...rest]).toEqual(whole);
      }),
      { seed: 7, numRuns: 200 },
    );
  });

  it('changes every hash from the changed block on, and none before it', () => {
    const tokens = Array.from({ length: 24 }, (_, i) => i * 7919);
    const before = native(tokens, 4);
    const changed = [...tokens];
    changed[13] ^= 1 << 20; // block 3; a high bit, so the whole 32-bit token counts
    const after = native(changed, 4);
    expect(after.slice(0, 3)).toEqual(before.slice(0, 3));
    for (let b = 3; b < 6; b++) expect(after[b]).not.toBe(before[b]);
  });

  it('never returns 0: an FNV state of 0 becomes hash 1', () => {
    // blockSize 1: the state is (parent ^ t) * prime, which is 0 exactly when parent = t.
    expect(native([5], 1, 5n)).toEqual([1n]);
    // blockSize 2: ((p ^ t0) * prime ^ t1) * prime = 0 when p = t0 ^ (t1 * prime^-1).
    const t0 = 0x12345678;
    const t1 = 0x0badf00d;
    const p = BigInt(t0) ^ ((BigInt(t1) * inversePrime()) & MASK64);
    expect((((p ^ BigInt(t0)) * FNV_PRIME) & MASK64) ^ BigInt(t1)).toBe(0n);
    expect(native([t0, t1], 2, p)).toEqual([1n]);
  });

  it.each([
    ['tokens as a plain Array', () => hashTokenBlocks([1, 2] as unknown as Uint32Array, 1)],
    ['tokens as an Int32Array', () => hashTokenBlocks(new Int32Array(2) as unknown as Uint32Array, 1)],
    ['blockSize 0', () => hashTokenBlocks(new Uint32Array(2), 0)],
    ['blockSize 1.5', () => hashTokenBlocks(new Uint32Array(2), 1.5)],
    ['blockSize -2', () => hashTokenBlocks(new Uint32Array(2), -2)],
    ['parent -1n', () => hashTokenBlocks(new Uint32Array(2), 1, -1n)],
    ['parent 2^64', () => hashTokenBlocks(new Uint32Array(2), 1, 1n << 64n)],
    ['parent as a number', () => hashTokenBlocks(new Uint32Array(2), 1, 5 as unknown as bigint)],
  ])('rejects %s with ERR_SAGA_BAD_ARGUMENT', (_, call) => {
    const err = thrown(call);
    expect(err).toBeInstanceOf(SagaError);
    expect((err as SagaError).code).toBe('ERR_SAGA_BAD_ARGUMENT');
  });
});
