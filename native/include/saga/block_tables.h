// Storage of the dense per-sequence block table, int32 [rows x cols], row-major, -1 where unused.
// On CUDA it lives in device memory next to the attention kernels that read it. Row lengths and all
// validation stay in the pool: storage only writes and reads cells.
#pragma once
#include <cstddef>
#include <cstdint>

#include "saga/types.h"

namespace saga {

class BlockTableStorage {
 public:
  virtual ~BlockTableStorage() = default;
  // table[rows[i]][cols[i]] = values[i]; the (row, col) pairs of one call are distinct.
  virtual void scatter(const int32_t* rows, const int32_t* cols, const BlockId* values, size_t n) = 0;
  // Copies whole rows: out[i * cols .. (i + 1) * cols) = table[rows[i]].
  virtual void readRows(const int32_t* rows, size_t n, BlockId* out) = 0;
  // Address of the table where it lives (device memory on CUDA), for kernels that read it.
  virtual uintptr_t address() const = 0;
};

}  // namespace saga
