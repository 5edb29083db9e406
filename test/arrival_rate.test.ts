/** The recent arrival rate an engine reports to routing (lib/util/arrival_rate.ts). */
import { describe, expect, it } from 'vitest';
import { ArrivalRate } from '../lib/util/arrival_rate';

describe('ArrivalRate', () => {
  it('is 0 before any arrival', () => {
    expect(new ArrivalRate(10).perS(5)).toBe(0);
  });

  it('converges to a steady rate and follows a change of rate within a few time constants', () => {
    const rate = new ArrivalRate(10);
    let t = 0;
    for (; t < 100; t += 0.5) rate.record(t); // 2 per second
    expect(rate.perS(t)).toBeGreaterThan(1.9);
    expect(rate.perS(t)).toBeLessThan(2.1);
    const switchS = t;
    for (; t < switchS + 50; t += 4) rate.record(t); // 0.25 per second
    expect(rate.perS(t)).toBeGreaterThan(0.2);
    expect(rate.perS(t)).toBeLessThan(0.3);
  });

  it('decays by e^-1 every time constant without arrivals, and counts an out-of-order time as now', () => {
    const rate = new ArrivalRate(10);
    rate.record(0);
    expect(rate.perS(0)).toBeCloseTo(0.1, 12);
    expect(rate.perS(10)).toBeCloseTo(0.1 / Math.E, 12);
    rate.record(10);
    rate.record(5);
    expect(rate.perS(10)).toBeCloseTo(0.1 / Math.E + 0.2, 12);
  });

  it('refuses a time constant that is not a positive finite number', () => {
    for (const bad of [0, -1, Number.NaN, Infinity]) expect(() => new ArrivalRate(bad)).toThrow(expect.objectContaining({ code: 'ERR_SAGA_BAD_ARGUMENT' }));
  });
});
