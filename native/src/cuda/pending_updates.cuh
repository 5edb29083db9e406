// Host-side buffering of the eviction order's cheap per-block calls (assign, unassign, makeEvictable,
// makeUnevictable, setKeys). Each block has at most one pending record, holding only the fields that
// were written since the last flush (a field mask), so e.g. makeUnevictable never overwrites a key that
// a kernel (setSessionKeys) changed on the device. flush() uploads all records with one copy and applies
// them with one scatter kernel.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "device_buffer.cuh"
#include "order_arrays.cuh"
#include "saga/types.h"

namespace saga {
namespace cuda {

struct PendingRecord {
  double key;
  int32_t id;
  int32_t session;
  int32_t position;
  uint32_t mask;  // PendingField bits
};

enum PendingField : uint32_t {
  kWriteKey = 1u << 0,
  kWriteSession = 1u << 1,
  kWritePosition = 1u << 2,
  kWriteAssigned = 1u << 3,   // set flags' kAssigned bit to kAssignedValue
  kWriteEvictable = 1u << 4,  // set flags' kEvictable bit to kEvictableValue
  kAssignedValue = 1u << 5,
  kEvictableValue = 1u << 6,
};

class PendingUpdates {
 public:
  explicit PendingUpdates(int32_t blockCount);

  // The record of `id`, created empty (mask 0) if the block has none pending. Valid until the next call.
  PendingRecord& record(BlockId id) {
    int32_t& slot = slotOf_[static_cast<size_t>(id)];
    if (slot < 0) {
      if (count_ == host_.size()) grow();
      slot = static_cast<int32_t>(count_);
      PendingRecord& r = host_[count_++];
      r.key = 0.0;
      r.id = id;
      r.session = kNoSession;
      r.position = 0;
      r.mask = 0;
      return r;
    }
    return host_[static_cast<size_t>(slot)];
  }

  void setFlag(PendingRecord& r, uint32_t writeBit, uint32_t valueBit, bool value) {
    r.mask = (r.mask | writeBit) & ~valueBit;
    if (value) r.mask |= valueBit;
  }

  bool empty() const { return count_ == 0; }

  // Enqueues the upload and the scatter kernel on `stream` and clears the list. The pinned upload buffer
  // is read asynchronously: the caller must synchronize `stream` before the next record() call (every
  // flushing operation of CudaEvictionOrder does, before it returns).
  void flush(const OrderArrays& arrays, cudaStream_t stream);

 private:
  void grow();

  std::vector<int32_t> slotOf_;  // per block: index of its pending record, or -1
  PinnedArray<PendingRecord> host_;
  DeviceArray<PendingRecord> device_;
  size_t count_ = 0;
  size_t blockCount_;
};

}  // namespace cuda
}  // namespace saga
