// CudaBlockTableStorage: the dense block table (int32 rows x cols, -1 where unused) in device memory,
// where attention kernels read it (address()). Writes are one upload + one scatter kernel; reads are
// one gather kernel + one download. Both synchronize before returning.
#pragma once
#include <cstdint>

#include "device_buffer.cuh"
#include "saga/block_tables.h"

namespace saga {
namespace cuda {

class CudaBlockTableStorage final : public BlockTableStorage {
 public:
  CudaBlockTableStorage(int32_t rows, int32_t cols);

  void scatter(const int32_t* rows, const int32_t* cols, const BlockId* values, size_t n) override;
  void readRows(const int32_t* rows, size_t n, BlockId* out) override;
  uintptr_t address() const override { return reinterpret_cast<uintptr_t>(table_.get()); }

 private:
  int32_t rows_, cols_;
  Stream stream_;
  DeviceArray<int32_t> table_;
  PinnedArray<int32_t> hostArgs_;
  DeviceArray<int32_t> deviceArgs_;
  DeviceArray<int32_t> deviceOut_;
};

}  // namespace cuda
}  // namespace saga
