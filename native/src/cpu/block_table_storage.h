// The block table in host memory: the CPU backend's storage, and the reference for the CUDA one.
#pragma once
#include <algorithm>
#include <vector>

#include "saga/block_tables.h"

namespace saga {

class CpuBlockTableStorage final : public BlockTableStorage {
 public:
  CpuBlockTableStorage(int32_t rows, int32_t cols)
      : cols_(cols), cells_(static_cast<size_t>(rows) * static_cast<size_t>(cols), kNoBlock) {}

  void scatter(const int32_t* rows, const int32_t* cols, const BlockId* values, size_t n) override {
    for (size_t i = 0; i < n; ++i) cells_[static_cast<size_t>(rows[i]) * cols_ + static_cast<size_t>(cols[i])] = values[i];
  }

  void readRows(const int32_t* rows, size_t n, BlockId* out) override {
    for (size_t i = 0; i < n; ++i) {
      const BlockId* row = cells_.data() + static_cast<size_t>(rows[i]) * cols_;
      std::copy(row, row + cols_, out + i * cols_);
    }
  }

  uintptr_t address() const override { return reinterpret_cast<uintptr_t>(cells_.data()); }

 private:
  size_t cols_;
  std::vector<BlockId> cells_;
};

}  // namespace saga
