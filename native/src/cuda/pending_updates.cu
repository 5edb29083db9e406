#include "pending_updates.cuh"

namespace saga {
namespace cuda {
namespace {

constexpr unsigned int kThreads = 256;

// One thread per record; every id appears at most once, so the threads never touch the same block.
__global__ void applyPendingKernel(const PendingRecord* records, unsigned int n, OrderArrays arrays) {
  unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const PendingRecord r = records[i];
  const int32_t id = r.id;
  if (r.mask & kWriteKey) arrays.key[id] = r.key;
  if (r.mask & kWriteSession) arrays.session[id] = r.session;
  if (r.mask & kWritePosition) arrays.position[id] = r.position;
  if (r.mask & (kWriteAssigned | kWriteEvictable)) {
    uint8_t f = arrays.flags[id];
    if (r.mask & kWriteAssigned) f = static_cast<uint8_t>((f & ~kAssigned) | ((r.mask & kAssignedValue) ? kAssigned : 0));
    if (r.mask & kWriteEvictable) {
      f = static_cast<uint8_t>((f & ~kEvictable) | ((r.mask & kEvictableValue) ? kEvictable : 0));
    }
    arrays.flags[id] = f;
  }
}

}  // namespace

PendingUpdates::PendingUpdates(int32_t blockCount) : blockCount_(static_cast<size_t>(blockCount)) {
  slotOf_.assign(blockCount_, -1);
  size_t initial = blockCount_ < 1024 ? blockCount_ : 1024;
  host_.allocate(initial, "cudaMallocHost(pending order updates)");
}

void PendingUpdates::grow() {
  size_t target = host_.size() * 2;
  if (target < 16) target = 16;
  if (target > blockCount_) target = blockCount_;
  host_.reserve(target, "cudaMallocHost(pending order updates)", count_);
}

void PendingUpdates::flush(const OrderArrays& arrays, cudaStream_t stream) {
  if (count_ == 0) return;
  device_.reserve(count_, "cudaMalloc(pending order updates)");
  check(cudaMemcpyAsync(device_.get(), host_.get(), count_ * sizeof(PendingRecord), cudaMemcpyHostToDevice, stream),
        "cudaMemcpyAsync(pending order updates)");
  const unsigned int n = static_cast<unsigned int>(count_);
  applyPendingKernel<<<gridFor(n, kThreads, 0x7fffffffu), kThreads, 0, stream>>>(device_.get(), n, arrays);
  checkLaunch("applyPendingKernel launch");
  for (size_t i = 0; i < count_; ++i) slotOf_[static_cast<size_t>(host_[i].id)] = -1;
  count_ = 0;
}

}  // namespace cuda
}  // namespace saga
