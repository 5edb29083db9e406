/**
 * A tiny seeded pseudo-random generator, so that every random draw in SAGA is reproducible.
 *
 * Algorithm: mulberry32 (Tommy Ettinger, public domain): a 32-bit state advanced by the Weyl increment
 * 0x6D2B79F5, output through an xorshift-multiply finaliser. Period 2^32, passes gjrand's and
 * PractRand's basic batteries up to its period; plenty for spreading sessions and sampling workload
 * parameters, not for cryptography. The same seed gives the same sequence on every platform (only
 * 32-bit integer arithmetic: Math.imul and unsigned shifts).
 */
export class Random {
  private state: number;

  /** `seed`: any finite number; its low 32 bits (after truncation) are the initial state. */
  constructor(seed: number) {
    if (typeof seed !== 'number' || !Number.isFinite(seed)) throw new TypeError(`seed must be a finite number, got ${String(seed)}`);
    this.state = Math.trunc(seed) >>> 0;
  }

  /** The next 32-bit unsigned integer. */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1), in steps of 2^-32. */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n) (n a positive integer < 2^32; tiny modulo bias is accepted). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}
