// The eviction order as one unsigned 128-bit sort key per block, so that "smaller key evicted first"
// becomes plain unsigned comparison, usable by radix selection and radix sort:
//   hi = the f64 key mapped to an order-preserving u64 (ascending key),
//   lo = (~position, as an order-preserving u32) << idBits | id  (position DESCENDING, then id ascending).
// (hi, lo) compared lexicographically is exactly the CPU order's (key asc, position desc, id asc), and it
// is unique per block because lo contains the id.
#pragma once
#include <cstdint>

namespace saga {
namespace cuda {

// -0.0 and +0.0 compare equal as doubles, so both map to +0.0's code (the pool normalises keys already;
// this keeps the mapping right regardless). NaN never reaches the order.
__host__ __device__ __forceinline__ uint64_t orderedKeyBits(double key) {
  if (key == 0.0) key = 0.0;
#ifdef __CUDA_ARCH__
  uint64_t bits = static_cast<uint64_t>(__double_as_longlong(key));
#else
  uint64_t bits;
  __builtin_memcpy(&bits, &key, sizeof bits);
#endif
  // Negative: flip every bit (larger magnitude sorts first). Non-negative: set the sign bit.
  return (bits >> 63) != 0 ? ~bits : (bits | 0x8000000000000000ULL);
}

// idBits: enough bits for every block id (ids are >= 0), at most 32, so 32 + idBits <= 64.
__host__ __device__ __forceinline__ uint64_t tieBreakBits(int32_t position, int32_t id, int idBits) {
  // Signed int32 -> order-preserving u32 (flip the sign bit), then complement for descending order.
  uint32_t descending = ~(static_cast<uint32_t>(position) ^ 0x80000000u);
  return (static_cast<uint64_t>(descending) << idBits) | static_cast<uint32_t>(id);
}

// Bits needed for ids in [0, blockCount): at least 1.
inline int idBitsFor(int64_t blockCount) {
  int bits = 1;
  while (bits < 32 && (int64_t{1} << bits) < blockCount) ++bits;
  return bits;
}

}  // namespace cuda
}  // namespace saga
