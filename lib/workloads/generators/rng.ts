/**
 * The distributions the workload generators draw from, over the project's seeded generator
 * (`lib/util/random.ts`: mulberry32, period 2^32). Every draw of a generator goes through here, so the
 * same seed gives the same workload on every platform (only Math.imul, shifts and Math.log/exp/cos/sqrt,
 * which V8 computes identically everywhere it runs this code).
 */
import { Random } from '../../util/random';

export { Random };

/** The standard normal's 90th percentile: a lognormal with median m and 90th percentile q has sigma = ln(q/m) / Z90. */
export const Z90 = 1.2815515655446004;

/** A lognormal distribution given by its median and 90th percentile (p90 >= median > 0), optionally clamped to [min, max]. */
export interface LognormalSpec {
  median: number;
  p90: number;
  min?: number;
  max?: number;
}

/**
 * An independent generator for stream `stream` of seed `seed`: the pair is mixed through murmur3's
 * 32-bit finaliser so that neighbouring seeds and streams start far apart on mulberry32's cycle.
 * `seed` may be any safe integer (its high bits are folded in).
 */
export function streamRandom(seed: number, stream: number): Random {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296) >>> 0;
  let h = fmix32(lo ^ Math.imul(hi, 0x9e3779b1));
  h = fmix32(h ^ Math.imul(stream + 1, 0x85ebca6b));
  return new Random(h);
}

/** murmur3's 32-bit finaliser (a bijection on uint32). */
export function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Exponential with rate `rate` (mean 1/rate), by inversion. */
export function exponential(rng: Random, rate: number): number {
  return -Math.log(1 - rng.next()) / rate; // 1 - next() is in (0, 1]
}

/** Standard normal, by Box-Muller (one draw of the pair; two uniforms per call keeps the stream simple). */
export function standardNormal(rng: Random): number {
  const u1 = 1 - rng.next(); // (0, 1]
  const u2 = rng.next();
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** The sigma of the lognormal with this median and 90th percentile. */
export function lognormalSigma(spec: LognormalSpec): number {
  return Math.log(spec.p90 / spec.median) / Z90;
}

/** A real draw from `spec` (clamped to [min, max] where given). */
export function lognormal(rng: Random, spec: LognormalSpec): number {
  const x = spec.median * Math.exp(lognormalSigma(spec) * standardNormal(rng));
  return clamp(x, spec.min ?? 0, spec.max ?? Infinity);
}

/** An integer draw from `spec`: rounded, at least max(1, min), at most max. */
export function lognormalInt(rng: Random, spec: LognormalSpec): number {
  return clamp(Math.round(lognormal(rng, spec)), Math.max(1, Math.ceil(spec.min ?? 1)), Math.floor(spec.max ?? Infinity));
}

/** The mean of the (unclamped) lognormal: median x exp(sigma^2 / 2). */
export function lognormalMean(spec: LognormalSpec): number {
  const s = lognormalSigma(spec);
  return spec.median * Math.exp((s * s) / 2);
}

/** True with probability p. */
export function bernoulli(rng: Random, p: number): boolean {
  return rng.next() < p;
}

/** An index drawn with probability proportional to `weights` (non-negative, not all zero). */
export function categorical(rng: Random, weights: readonly number[]): number {
  let total = 0;
  for (const w of weights) total += w;
  let u = rng.next() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i];
    if (u < 0) return i;
  }
  // Rounding left u at (or a hair above) zero: the last index with weight.
  for (let i = weights.length - 1; i >= 0; i--) if (weights[i] > 0) return i;
  return weights.length - 1;
}

/**
 * The first `n` arrival times (seconds, ascending) of a Poisson process with rate `ratePerS`:
 * cumulative sums of exponential inter-arrival times.
 */
export function poissonArrivals(rng: Random, n: number, ratePerS: number): Float64Array {
  const out = new Float64Array(n);
  let t = 0;
  for (let i = 0; i < n; i++) {
    t += exponential(rng, ratePerS);
    out[i] = t;
  }
  return out;
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}
