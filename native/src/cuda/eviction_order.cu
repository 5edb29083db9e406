#include "eviction_order.cuh"

namespace saga {
namespace cuda {
namespace {

constexpr unsigned int kThreads = 256;

// to[i] takes from[i]'s session, position and key and becomes evictable; from[i] is unassigned. The
// pool guarantees the two lists are disjoint and free of repeats, so no two threads touch one block.
__global__ void moveKernel(const int2* __restrict__ moves, unsigned int n, OrderArrays arrays) {
  unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int from = moves[i].x, to = moves[i].y;
  arrays.key[to] = arrays.key[from];
  arrays.session[to] = arrays.session[from];
  arrays.position[to] = arrays.position[from];
  arrays.flags[to] = static_cast<uint8_t>(kAssigned | kEvictable);
  arrays.key[from] = 0.0;
  arrays.session[from] = kNoSession;
  arrays.position[from] = 0;
  arrays.flags[from] = 0;
}

}  // namespace

CudaEvictionOrder::CudaEvictionOrder(int32_t deviceCapacity, int32_t hostCapacity, int smCount)
    : deviceCapacity_(deviceCapacity),
      blockCount_(deviceCapacity + hostCapacity),
      pending_(deviceCapacity + hostCapacity),
      rekeyer_(deviceCapacity + hostCapacity, smCount),
      selector_(deviceCapacity + hostCapacity, smCount) {
  const size_t n = static_cast<size_t>(blockCount_);
  key_.allocate(n, "cudaMalloc(order keys)");
  session_.allocate(n, "cudaMalloc(order sessions)");
  position_.allocate(n, "cudaMalloc(order positions)");
  flags_.allocate(n, "cudaMalloc(order flags)");
  // Free blocks: key +0.0 (all-zero bits), session -1 (all-one bits), position 0, no flags.
  check(cudaMemsetAsync(key_.get(), 0, n * sizeof(double), stream_.get()), "cudaMemsetAsync(order keys)");
  check(cudaMemsetAsync(session_.get(), 0xFF, n * sizeof(int32_t), stream_.get()), "cudaMemsetAsync(order sessions)");
  check(cudaMemsetAsync(position_.get(), 0, n * sizeof(int32_t), stream_.get()), "cudaMemsetAsync(order positions)");
  check(cudaMemsetAsync(flags_.get(), 0, n * sizeof(uint8_t), stream_.get()), "cudaMemsetAsync(order flags)");
  stream_.synchronize("CudaEvictionOrder init: cudaStreamSynchronize");
  arrays_.key = key_.get();
  arrays_.session = session_.get();
  arrays_.position = position_.get();
  arrays_.flags = flags_.get();
}

void CudaEvictionOrder::assign(BlockId id, SessionId session, int32_t position, double key) {
  PendingRecord& r = pending_.record(id);
  r.key = key;
  r.session = session;
  r.position = position;
  r.mask |= kWriteKey | kWriteSession | kWritePosition;
  pending_.setFlag(r, kWriteAssigned, kAssignedValue, true);
  pending_.setFlag(r, kWriteEvictable, kEvictableValue, false);
}

void CudaEvictionOrder::unassign(BlockId id) {
  PendingRecord& r = pending_.record(id);
  r.key = 0.0;
  r.session = kNoSession;
  r.position = 0;
  r.mask |= kWriteKey | kWriteSession | kWritePosition;
  pending_.setFlag(r, kWriteAssigned, kAssignedValue, false);
  pending_.setFlag(r, kWriteEvictable, kEvictableValue, false);
}

void CudaEvictionOrder::makeEvictable(BlockId id, double key) {
  PendingRecord& r = pending_.record(id);
  r.key = key;
  r.mask |= kWriteKey;
  pending_.setFlag(r, kWriteEvictable, kEvictableValue, true);
}

void CudaEvictionOrder::makeUnevictable(BlockId id) {
  // Only the flag: the key stays whatever it is on the device or pending.
  PendingRecord& r = pending_.record(id);
  pending_.setFlag(r, kWriteEvictable, kEvictableValue, false);
}

void CudaEvictionOrder::setKeys(const BlockId* ids, const double* keys, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    PendingRecord& r = pending_.record(ids[i]);
    r.key = keys[i];  // a repeated id keeps its last key
    r.mask |= kWriteKey;
  }
}

void CudaEvictionOrder::flush() { pending_.flush(arrays_, stream_.get()); }

void CudaEvictionOrder::move(const BlockId* from, const BlockId* to, size_t n) {
  if (n == 0) return;
  flush();
  hostMoves_.reserve(n, "cudaMallocHost(order moves)");
  for (size_t i = 0; i < n; ++i) hostMoves_[i] = make_int2(from[i], to[i]);
  deviceMoves_.reserve(n, "cudaMalloc(order moves)");
  check(cudaMemcpyAsync(deviceMoves_.get(), hostMoves_.get(), n * sizeof(int2), cudaMemcpyHostToDevice, stream_.get()),
        "cudaMemcpyAsync(order moves)");
  const unsigned int count = static_cast<unsigned int>(n);
  moveKernel<<<gridFor(n, kThreads, 0x7fffffffu), kThreads, 0, stream_.get()>>>(deviceMoves_.get(), count, arrays_);
  checkLaunch("moveKernel launch");
  stream_.synchronize("move: cudaStreamSynchronize");
}

int64_t CudaEvictionOrder::setSessionKeys(const SessionId* sessions, const double* keys, const int32_t* minPositions,
                                          size_t n) {
  if (n == 0) return 0;
  flush();
  return rekeyer_.run(arrays_, sessions, keys, minPositions, n, stream_.get());  // synchronizes
}

size_t CudaEvictionOrder::select(Tier tier, size_t k, BlockId* out) {
  const int32_t first = tier == Tier::Device ? 0 : deviceCapacity_;
  const int32_t end = tier == Tier::Device ? deviceCapacity_ : blockCount_;
  if (k == 0 || end <= first) return 0;
  flush();
  return selector_.select(arrays_, first, end, k, out, stream_.get());  // synchronizes
}

void CudaEvictionOrder::exportKeys(double* out) {
  flush();
  check(cudaMemcpyAsync(out, key_.get(), static_cast<size_t>(blockCount_) * sizeof(double), cudaMemcpyDeviceToHost,
                        stream_.get()),
        "cudaMemcpyAsync(order keys)");
  stream_.synchronize("exportKeys: cudaStreamSynchronize");
}

}  // namespace cuda
}  // namespace saga
