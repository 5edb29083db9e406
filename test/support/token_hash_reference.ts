/**
 * token_hash.h written again with BigInt, one line per step: FNV-1a over 32-bit tokens (each token is
 * XORed in whole, then multiplied by the FNV prime, mod 2^64), then murmur3's fmix64 finalizer, with 0
 * mapped to 1 so no block ever gets kNoHash. Block i's parent is block i-1's hash; block 0's is the root.
 */
export const MASK64 = (1n << 64n) - 1n;
export const FNV_OFFSET_BASIS = 0xcbf29ce484222325n;
export const FNV_PRIME = 0x100000001b3n;

/** One FNV-1a step over a whole 32-bit token. */
export function fnv1aStep(h: bigint, token: number): bigint {
  return ((h ^ BigInt(token >>> 0)) * FNV_PRIME) & MASK64;
}

/** murmur3 fmix64, then 0 -> 1. */
export function finalizeHash(h: bigint): bigint {
  h ^= h >> 33n;
  h = (h * 0xff51afd7ed558ccdn) & MASK64;
  h ^= h >> 33n;
  h = (h * 0xc4ceb9fe1a85ec53n) & MASK64;
  h ^= h >> 33n;
  return h === 0n ? 1n : h;
}

export function referenceHashTokenBlocks(tokens: ArrayLike<number>, blockSize: number, parent: bigint = FNV_OFFSET_BASIS): bigint[] {
  const out: bigint[] = [];
  const blocks = Math.floor(tokens.length / blockSize);
  for (let b = 0; b < blocks; b++) {
    let h = parent;
    for (let i = 0; i < blockSize; i++) h = fnv1aStep(h, tokens[b * blockSize + i]);
    parent = finalizeHash(h);
    out.push(parent);
  }
  return out;
}
