#include "block_tables.cuh"

namespace saga {
namespace cuda {
namespace {

constexpr unsigned int kThreads = 256;

// args = rows[n], cols[n], values[n]. The (row, col) pairs of one call are distinct.
__global__ void scatterCellsKernel(const int32_t* __restrict__ args, unsigned int n, int32_t rows, int32_t cols,
                                   int32_t* __restrict__ table) {
  unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int32_t r = args[i], c = args[n + i], v = args[2 * static_cast<size_t>(n) + i];
  if (r < 0 || r >= rows || c < 0 || c >= cols) return;  // the pool validates; never write out of bounds
  table[static_cast<size_t>(r) * static_cast<size_t>(cols) + static_cast<size_t>(c)] = v;
}

// out[i * cols + c] = table[rows[i] * cols + c]
__global__ void gatherRowsKernel(const int32_t* __restrict__ rowIds, size_t cells, int32_t rows, int32_t cols,
                                 const int32_t* __restrict__ table, int32_t* __restrict__ out) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t cell = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; cell < cells; cell += stride) {
    const size_t i = cell / static_cast<size_t>(cols), c = cell % static_cast<size_t>(cols);
    const int32_t r = rowIds[i];
    out[cell] = (r >= 0 && r < rows) ? table[static_cast<size_t>(r) * static_cast<size_t>(cols) + c] : -1;
  }
}

}  // namespace

CudaBlockTableStorage::CudaBlockTableStorage(int32_t rows, int32_t cols) : rows_(rows), cols_(cols) {
  const size_t cells = static_cast<size_t>(rows > 0 ? rows : 0) * static_cast<size_t>(cols > 0 ? cols : 0);
  if (cells == 0) return;
  table_.allocate(cells, "cudaMalloc(block table)");
  check(cudaMemsetAsync(table_.get(), 0xFF, cells * sizeof(int32_t), stream_.get()), "cudaMemsetAsync(block table)");
  stream_.synchronize("block table init: cudaStreamSynchronize");
}

void CudaBlockTableStorage::scatter(const int32_t* rows, const int32_t* cols, const BlockId* values, size_t n) {
  if (n == 0 || table_.get() == nullptr) return;
  hostArgs_.reserve(3 * n, "cudaMallocHost(block table arguments)");
  for (size_t i = 0; i < n; ++i) {
    hostArgs_[i] = rows[i];
    hostArgs_[n + i] = cols[i];
    hostArgs_[2 * n + i] = values[i];
  }
  deviceArgs_.reserve(3 * n, "cudaMalloc(block table arguments)");
  check(cudaMemcpyAsync(deviceArgs_.get(), hostArgs_.get(), 3 * n * sizeof(int32_t), cudaMemcpyHostToDevice,
                        stream_.get()),
        "cudaMemcpyAsync(block table arguments)");
  const unsigned int count = static_cast<unsigned int>(n);
  scatterCellsKernel<<<gridFor(n, kThreads, 0x7fffffffu), kThreads, 0, stream_.get()>>>(deviceArgs_.get(), count, rows_,
                                                                                       cols_, table_.get());
  checkLaunch("scatterCellsKernel launch");
  stream_.synchronize("block table scatter: cudaStreamSynchronize");
}

void CudaBlockTableStorage::readRows(const int32_t* rows, size_t n, BlockId* out) {
  if (n == 0 || cols_ <= 0) return;
  if (table_.get() == nullptr) {  // no rows at all: nothing valid can be asked; fill like an empty table
    for (size_t i = 0; i < n * static_cast<size_t>(cols_); ++i) out[i] = kNoBlock;
    return;
  }
  const size_t cells = n * static_cast<size_t>(cols_);
  hostArgs_.reserve(n, "cudaMallocHost(block table arguments)");
  for (size_t i = 0; i < n; ++i) hostArgs_[i] = rows[i];
  deviceArgs_.reserve(n, "cudaMalloc(block table arguments)");
  deviceOut_.reserve(cells, "cudaMalloc(block table rows)");
  check(cudaMemcpyAsync(deviceArgs_.get(), hostArgs_.get(), n * sizeof(int32_t), cudaMemcpyHostToDevice, stream_.get()),
        "cudaMemcpyAsync(block table rows to read)");
  gatherRowsKernel<<<gridFor(cells, kThreads, 65535u), kThreads, 0, stream_.get()>>>(deviceArgs_.get(), cells, rows_,
                                                                                    cols_, table_.get(),
                                                                                    deviceOut_.get());
  checkLaunch("gatherRowsKernel launch");
  check(cudaMemcpyAsync(out, deviceOut_.get(), cells * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_.get()),
        "cudaMemcpyAsync(block table rows)");
  stream_.synchronize("block table read: cudaStreamSynchronize");
}

}  // namespace cuda
}  // namespace saga
