/**
 * Dense numbers for 64-bit block hashes (0, 1, 2, ... in order of first sight): an open-addressing
 * table over the hashes' two 32-bit halves, so that passes over millions of block reads (unique counts,
 * the oracle's next-read pass) need no BigInt and no Map. Block hashes are well mixed (fmix64 for
 * traces, murmur3's finaliser for token blocks), so the low half indexes the table as it is.
 */
export class HashInterner {
  private lo: Uint32Array;
  private hi: Uint32Array;
  private ids: Int32Array;
  private mask: number;
  private count = 0;

  constructor(expected = 1024) {
    let size = 1024;
    while (size < expected * 2) size *= 2;
    this.lo = new Uint32Array(size);
    this.hi = new Uint32Array(size);
    this.ids = new Int32Array(size).fill(-1);
    this.mask = size - 1;
  }

  /** How many distinct hashes were seen. */
  get size(): number {
    return this.count;
  }

  /** The dense number of the hash whose halves are (lo, hi), numbering it if new. */
  intern(lo: number, hi: number): number {
    let slot = (lo ^ Math.imul(hi, 0x9e3779b1)) & this.mask;
    for (;;) {
      const id = this.ids[slot];
      if (id < 0) break;
      if (this.lo[slot] === lo && this.hi[slot] === hi) return id;
      slot = (slot + 1) & this.mask;
    }
    const id = this.count++;
    this.lo[slot] = lo;
    this.hi[slot] = hi;
    this.ids[slot] = id;
    if (this.count * 2 > this.ids.length) this.grow();
    return id;
  }

  /** Interns every hash of `hashes` into out[0..hashes.length). */
  internAll(hashes: BigUint64Array, out: Int32Array): void {
    // The two halves of each hash as stored (which is "low" depends on the platform's byte order, which
    // does not matter: the pair is the hash either way).
    const halves = new Uint32Array(hashes.buffer, hashes.byteOffset, hashes.length * 2);
    for (let i = 0; i < hashes.length; i++) out[i] = this.intern(halves[2 * i], halves[2 * i + 1]);
  }

  private grow(): void {
    const { lo, hi, ids } = this;
    const size = ids.length * 2;
    this.lo = new Uint32Array(size);
    this.hi = new Uint32Array(size);
    this.ids = new Int32Array(size).fill(-1);
    this.mask = size - 1;
    for (let s = 0; s < ids.length; s++) {
      if (ids[s] < 0) continue;
      let slot = (lo[s] ^ Math.imul(hi[s], 0x9e3779b1)) & this.mask;
      while (this.ids[slot] >= 0) slot = (slot + 1) & this.mask;
      this.lo[slot] = lo[s];
      this.hi[slot] = hi[s];
      this.ids[slot] = ids[s];
    }
  }
}
