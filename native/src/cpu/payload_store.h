// Block payloads in host memory: the CPU backend's store (both tiers are plain memory here).
#pragma once
#include <cstring>
#include <vector>

#include "saga/payload_store.h"

namespace saga {

class CpuPayloadStore final : public PayloadStore {
 public:
  CpuPayloadStore(int32_t blocks, int32_t payloadBytes)
      : bytes_(static_cast<size_t>(payloadBytes)), data_(static_cast<size_t>(blocks) * bytes_, 0) {}

  void copy(const BlockId* from, const BlockId* to, size_t n) override {
    for (size_t i = 0; i < n; ++i) std::memcpy(slot(to[i]), slot(from[i]), bytes_);
  }
  void write(const BlockId* ids, size_t n, const uint8_t* data) override {
    for (size_t i = 0; i < n; ++i) std::memcpy(slot(ids[i]), data + i * bytes_, bytes_);
  }
  void read(const BlockId* ids, size_t n, uint8_t* out) override {
    for (size_t i = 0; i < n; ++i) std::memcpy(out + i * bytes_, slot(ids[i]), bytes_);
  }

 private:
  uint8_t* slot(BlockId id) { return data_.data() + static_cast<size_t>(id) * bytes_; }
  size_t bytes_;
  std::vector<uint8_t> data_;
};

}  // namespace saga
