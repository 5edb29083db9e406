#include <algorithm>
#include <string>

#include "saga/errors.h"

#include "session_keys.cuh"

namespace saga {
namespace cuda {
namespace {

constexpr unsigned int kThreads = 256;

__global__ void __launch_bounds__(kThreads)
    setSessionKeysKernel(const SessionKeyEntry* __restrict__ entries, int n, int32_t blockCount, OrderArrays arrays,
                         unsigned long long* __restrict__ updates) {
  unsigned long long local = 0;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long b = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; b < blockCount; b += stride) {
    // Independent loads first (bandwidth-bound scan), then the branch.
    const uint8_t f = arrays.flags[b];
    const int32_t s = arrays.session[b];
    const int32_t p = arrays.position[b];
    if ((f & kAssigned) == 0 || s < 0) continue;  // as on the CPU: blocks without a session match nothing
    // First entry of session s (entries are sorted by session).
    int lo = 0, hi = n;
    while (lo < hi) {
      int mid = (lo + hi) >> 1;
      if (entries[mid].session < s) lo = mid + 1; else hi = mid;
    }
    if (lo == n || entries[lo].session != s) continue;
    bool hit = false;
    double key = 0.0;
    for (int j = lo; j < n && entries[j].session == s; ++j) {
      if (p >= entries[j].minPosition) {
        key = entries[j].key;  // later entries of the batch overwrite earlier ones
        hit = true;
        ++local;
      }
    }
    if (hit) arrays.key[b] = key;
  }
  // Every thread of the grid gets here (the loop above has no early return).
  for (int offset = 16; offset > 0; offset >>= 1) local += __shfl_down_sync(0xffffffffu, local, offset);
  if ((threadIdx.x & 31u) == 0 && local != 0) atomicAdd(updates, local);
}

}  // namespace

SessionRekeyer::SessionRekeyer(int32_t blockCount, int smCount) : blockCount_(blockCount), smCount_(smCount) {
  hostCount_.allocate(1, "cudaMallocHost(session key count)");
  deviceCount_.allocate(1, "cudaMalloc(session key count)");
}

int64_t SessionRekeyer::run(const OrderArrays& arrays, const SessionId* sessions, const double* keys,
                            const int32_t* minPositions, size_t n, cudaStream_t stream) {
  if (n == 0) return 0;
  if (n > 0x7fffffffu) throw Error(ErrorCode::BadArgument, "setSessionKeys: batch of " + std::to_string(n) + " entries is too large");
  // Stable order by session: entries of one session keep their batch order.
  bool sorted = true;
  for (size_t i = 1; i < n && sorted; ++i) sorted = sessions[i - 1] <= sessions[i];
  order_.resize(n);
  for (size_t i = 0; i < n; ++i) order_[i] = static_cast<uint32_t>(i);
  if (!sorted) {
    std::stable_sort(order_.begin(), order_.end(), [sessions](uint32_t a, uint32_t b) { return sessions[a] < sessions[b]; });
  }
  hostEntries_.reserve(n, "cudaMallocHost(session key batch)");
  for (size_t i = 0; i < n; ++i) {
    uint32_t j = order_[i];
    hostEntries_[i] = SessionKeyEntry{keys[j], sessions[j], minPositions[j]};
  }
  deviceEntries_.reserve(n, "cudaMalloc(session key batch)");
  check(cudaMemcpyAsync(deviceEntries_.get(), hostEntries_.get(), n * sizeof(SessionKeyEntry), cudaMemcpyHostToDevice,
                        stream),
        "cudaMemcpyAsync(session key batch)");
  check(cudaMemsetAsync(deviceCount_.get(), 0, sizeof(unsigned long long), stream), "cudaMemsetAsync(session key count)");
  // Enough blocks to fill the GPU a few times over; each thread then handles several blocks.
  unsigned int grid = gridFor(static_cast<size_t>(blockCount_), kThreads, static_cast<unsigned int>(smCount_) * 8u);
  setSessionKeysKernel<<<grid, kThreads, 0, stream>>>(deviceEntries_.get(), static_cast<int>(n), blockCount_, arrays,
                                                       deviceCount_.get());
  checkLaunch("setSessionKeysKernel launch");
  check(cudaMemcpyAsync(hostCount_.get(), deviceCount_.get(), sizeof(unsigned long long), cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync(session key count)");
  check(cudaStreamSynchronize(stream), "setSessionKeys: cudaStreamSynchronize");
  return static_cast<int64_t>(hostCount_[0]);
}

}  // namespace cuda
}  // namespace saga
