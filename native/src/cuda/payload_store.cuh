// CudaPayloadStore: payloadBytes per block; device slots in one cudaMalloc allocation, host slots in one
// cudaMallocHost (pinned) allocation so tier-to-tier copies run as DMA. Copies are cudaMemcpyAsync on the
// store's stream, one per run of consecutive ids, and every call synchronizes before it returns.
#pragma once
#include <cstdint>

#include "device_buffer.cuh"
#include "saga/payload_store.h"

namespace saga {
namespace cuda {

class CudaPayloadStore final : public PayloadStore {
 public:
  CudaPayloadStore(int32_t deviceCapacity, int32_t hostCapacity, int32_t payloadBytes);

  void copy(const BlockId* from, const BlockId* to, size_t n) override;
  void write(const BlockId* ids, size_t n, const uint8_t* data) override;
  void read(const BlockId* ids, size_t n, uint8_t* out) override;

 private:
  bool onDevice(BlockId id) const { return id < deviceCapacity_; }
  uint8_t* slot(BlockId id) const;

  int32_t deviceCapacity_;
  size_t bytes_;
  Stream stream_;
  DeviceArray<uint8_t> device_;
  PinnedArray<uint8_t> host_;
};

}  // namespace cuda
}  // namespace saga
