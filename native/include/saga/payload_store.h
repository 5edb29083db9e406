// The KV bytes of each block, payloadBytes a block: device slots in device memory, host slots in host
// memory (pinned on CUDA, so copies run as DMA). Offload and restore copy between the two.
#pragma once
#include <cstddef>
#include <cstdint>

#include "saga/types.h"

namespace saga {

class PayloadStore {
 public:
  virtual ~PayloadStore() = default;
  // Copies block from[i]'s bytes to block to[i] (between tiers; cudaMemcpyAsync on CUDA). Returns when
  // the copies are complete.
  virtual void copy(const BlockId* from, const BlockId* to, size_t n) = 0;
  // Writes / reads payloadBytes per id, ids[i]'s bytes at data[i * payloadBytes].
  virtual void write(const BlockId* ids, size_t n, const uint8_t* data) = 0;
  virtual void read(const BlockId* ids, size_t n, uint8_t* out) = 0;
};

}  // namespace saga
