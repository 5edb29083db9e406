/**
 * Prefix-chained block hashes from token ids, computed natively: block i's hash covers its tokens and
 * block i-1's hash, so equal hashes mean equal prefixes (vLLM's hash_block_tokens). Never 0n.
 */
import { badArgument } from '../errors';
import { nativeBackend } from '../native';

/** The parent hash of a sequence's first block (FNV-1a's offset basis). */
export const HASH_ROOT = 0xcbf29ce484222325n;

/** Hashes the full blocks of `tokens` (a trailing partial block is left out). */
export function hashTokenBlocks(tokens: Uint32Array, blockSize: number, parent: bigint = HASH_ROOT): BigUint64Array {
  if (!(tokens instanceof Uint32Array)) throw badArgument('tokens must be a Uint32Array');
  if (!Number.isInteger(blockSize) || blockSize < 1) throw badArgument(`blockSize must be a positive integer, got ${String(blockSize)}`);
  if (typeof parent !== 'bigint' || parent < 0n || parent >= 1n << 64n) throw badArgument('parent must be a bigint in [0, 2^64)');
  const out = new BigUint64Array(Math.floor(tokens.length / blockSize));
  nativeBackend().addon.hashTokens(tokens, blockSize, parent, out);
  return out;
}
