// The CUDA eviction order's per-block state in device memory (structure of arrays), shared by the
// kernels of the order: pending-update scatter, session re-keying, moves and victim selection.
#pragma once
#include <cstdint>

namespace saga {
namespace cuda {

// flags[id] bits.
constexpr uint8_t kAssigned = 1;   // the block holds data (assign .. unassign)
constexpr uint8_t kEvictable = 2;  // the block is in its tier's evictable set

struct OrderArrays {
  double* key = nullptr;         // eviction key; 0 for free blocks
  int32_t* session = nullptr;    // kNoSession for free blocks
  int32_t* position = nullptr;   // 0 for free blocks
  uint8_t* flags = nullptr;      // kAssigned | kEvictable
};

}  // namespace cuda
}  // namespace saga
