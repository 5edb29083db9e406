/** The expected arrivals that find no free place (lib/util/poisson_excess.ts), against the defining sum. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { poissonExcess } from '../lib/util/poisson_excess';

/** Σ_k max(0, k − free)·P(N = k), summed far into the tail with P built by the recurrence p_{k+1} = p_k·mean/(k+1). */
function byDefinition(mean: number, free: number): number {
  let p = Math.exp(-mean);
  let sum = 0;
  for (let k = 0; k < mean + 40 * Math.sqrt(mean + 1) + 40; k++) {
    sum += Math.max(0, k - free) * p;
    p *= mean / (k + 1);
  }
  return sum;
}

describe('poissonExcess', () => {
  it('is the mean with no free place, and 0 with no arrivals', () => {
    expect(poissonExcess(2.5, 0)).toBeCloseTo(2.5, 12);
    expect(poissonExcess(0, 3)).toBe(0);
  });

  it('with one free place is mean − 1 + e^−mean', () => {
    expect(poissonExcess(0.5, 1)).toBeCloseTo(0.5 - 1 + Math.exp(-0.5), 12);
  });

  it('equals the defining sum (property)', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 60, noNaN: true }), fc.integer({ min: 0, max: 80 }), (mean, free) => {
        expect(poissonExcess(mean, free)).toBeCloseTo(byDefinition(mean, free), 9);
      }),
    );
  });

  it('stays finite and close to 0 where e^−mean underflows and the places outnumber the arrivals', () => {
    expect(poissonExcess(800, 1200)).toBeGreaterThanOrEqual(0);
    expect(poissonExcess(800, 1200)).toBeLessThan(1e-9);
    expect(poissonExcess(800, 0)).toBeCloseTo(800, 9);
  });

  it('falls as places are added', () => {
    for (let f = 1; f < 10; f++) expect(poissonExcess(4, f)).toBeLessThan(poissonExcess(4, f - 1));
  });

  it('refuses a bad mean or a bad count of places with ERR_SAGA_BAD_ARGUMENT', () => {
    for (const [mean, free] of [[-1, 0], [Number.NaN, 1], [Infinity, 1], [1, -1], [1, 1.5]]) {
      expect(() => poissonExcess(mean, free)).toThrow(expect.objectContaining({ code: 'ERR_SAGA_BAD_ARGUMENT' }));
    }
  });
});
