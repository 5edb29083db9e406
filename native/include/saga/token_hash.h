// Chained block hashes from token ids: block i's hash covers its tokens and block i-1's hash, so equal
// hashes mean equal prefixes (vLLM's hash_block_tokens). FNV-1a over 32-bit tokens, then the murmur3
// finalizer to spread the bits for open addressing. Never returns kNoHash.
#pragma once
#include <cstddef>
#include <cstdint>

#include "saga/types.h"

namespace saga {

constexpr uint64_t kHashRoot = 0xcbf29ce484222325ULL;  // FNV-1a offset basis: the parent of block 0
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

inline uint64_t finalizeHash(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h == kNoHash ? 1 : h;
}

// Hashes the full blocks of `tokens` (a trailing partial block is left out); returns how many it wrote.
inline size_t hashTokenBlocks(const uint32_t* tokens, size_t tokenCount, size_t blockSize, uint64_t parent,
                              BlockHash* out) {
  size_t blocks = blockSize == 0 ? 0 : tokenCount / blockSize;
  for (size_t b = 0; b < blocks; ++b) {
    uint64_t h = parent;
    const uint32_t* t = tokens + b * blockSize;
    for (size_t i = 0; i < blockSize; ++i) h = (h ^ t[i]) * kFnvPrime;
    parent = finalizeHash(h);
    out[b] = parent;
  }
  return blocks;
}

}  // namespace saga
