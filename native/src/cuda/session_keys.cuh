// setSessionKeys on the device: one kernel scans every block once. The batch (session, key, minPosition)
// is stably sorted by session on the host, so entries of one session stay in batch order; each assigned
// block binary-searches its session's run and walks it in order, so the last matching entry wins, as
// when the batch is applied entry by entry. The number of (block, entry) matches is reduced per warp and
// summed with one atomic per warp.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "device_buffer.cuh"
#include "order_arrays.cuh"
#include "saga/types.h"

namespace saga {
namespace cuda {

struct SessionKeyEntry {
  double key;
  int32_t session;
  int32_t minPosition;
};

class SessionRekeyer {
 public:
  SessionRekeyer(int32_t blockCount, int smCount);
  // Applies the batch (device state must be current: flush pending updates first). Synchronizes `stream`.
  int64_t run(const OrderArrays& arrays, const SessionId* sessions, const double* keys, const int32_t* minPositions,
              size_t n, cudaStream_t stream);

 private:
  int32_t blockCount_;
  int smCount_;
  std::vector<uint32_t> order_;
  PinnedArray<SessionKeyEntry> hostEntries_;
  DeviceArray<SessionKeyEntry> deviceEntries_;
  PinnedArray<unsigned long long> hostCount_;
  DeviceArray<unsigned long long> deviceCount_;
};

}  // namespace cuda
}  // namespace saga
