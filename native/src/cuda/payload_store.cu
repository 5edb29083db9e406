#include <cstring>

#include "payload_store.cuh"

namespace saga {
namespace cuda {

CudaPayloadStore::CudaPayloadStore(int32_t deviceCapacity, int32_t hostCapacity, int32_t payloadBytes)
    : deviceCapacity_(deviceCapacity), bytes_(payloadBytes > 0 ? static_cast<size_t>(payloadBytes) : 0) {
  if (bytes_ == 0) return;
  const size_t deviceBytes = static_cast<size_t>(deviceCapacity > 0 ? deviceCapacity : 0) * bytes_;
  const size_t hostBytes = static_cast<size_t>(hostCapacity > 0 ? hostCapacity : 0) * bytes_;
  device_.allocate(deviceBytes, "cudaMalloc(device payload slots)");
  host_.allocate(hostBytes, "cudaMallocHost(host payload slots)");
  // Zeroed, like the CPU store, so a read before any write gives the same bytes on both backends.
  if (deviceBytes > 0) {
    check(cudaMemsetAsync(device_.get(), 0, deviceBytes, stream_.get()), "cudaMemsetAsync(device payload slots)");
  }
  if (hostBytes > 0) std::memset(host_.get(), 0, hostBytes);
  stream_.synchronize("payload init: cudaStreamSynchronize");
}

uint8_t* CudaPayloadStore::slot(BlockId id) const {
  if (onDevice(id)) return device_.get() + static_cast<size_t>(id) * bytes_;
  return host_.get() + static_cast<size_t>(id - deviceCapacity_) * bytes_;
}

void CudaPayloadStore::copy(const BlockId* from, const BlockId* to, size_t n) {
  if (bytes_ == 0 || n == 0) return;
  // Runs: from and to both consecutive and each within one tier -> one copy.
  size_t i = 0;
  while (i < n) {
    size_t j = i + 1;
    while (j < n && from[j] == from[j - 1] + 1 && to[j] == to[j - 1] + 1 && onDevice(from[j]) == onDevice(from[i]) &&
           onDevice(to[j]) == onDevice(to[i])) {
      ++j;
    }
    // Unified addressing: cudaMemcpyDefault works out device/pinned-host direction from the pointers.
    check(cudaMemcpyAsync(slot(to[i]), slot(from[i]), (j - i) * bytes_, cudaMemcpyDefault, stream_.get()),
          "cudaMemcpyAsync(payload copy)");
    i = j;
  }
  stream_.synchronize("payload copy: cudaStreamSynchronize");
}

void CudaPayloadStore::write(const BlockId* ids, size_t n, const uint8_t* data) {
  if (bytes_ == 0 || n == 0) return;
  // In order, so a repeated id ends with its last bytes (stream order on the device, program order on
  // the host; the two never share a slot).
  size_t i = 0;
  while (i < n) {
    size_t j = i + 1;
    while (j < n && ids[j] == ids[j - 1] + 1 && onDevice(ids[j]) == onDevice(ids[i])) ++j;
    const uint8_t* src = data + i * bytes_;
    if (onDevice(ids[i])) {
      check(cudaMemcpyAsync(slot(ids[i]), src, (j - i) * bytes_, cudaMemcpyHostToDevice, stream_.get()),
            "cudaMemcpyAsync(payload write)");
    } else {
      std::memcpy(slot(ids[i]), src, (j - i) * bytes_);
    }
    i = j;
  }
  stream_.synchronize("payload write: cudaStreamSynchronize");
}

void CudaPayloadStore::read(const BlockId* ids, size_t n, uint8_t* out) {
  if (bytes_ == 0 || n == 0) return;
  size_t i = 0;
  while (i < n) {
    size_t j = i + 1;
    while (j < n && ids[j] == ids[j - 1] + 1 && onDevice(ids[j]) == onDevice(ids[i])) ++j;
    uint8_t* dst = out + i * bytes_;
    if (onDevice(ids[i])) {
      check(cudaMemcpyAsync(dst, slot(ids[i]), (j - i) * bytes_, cudaMemcpyDeviceToHost, stream_.get()),
            "cudaMemcpyAsync(payload read)");
    } else {
      std::memcpy(dst, slot(ids[i]), (j - i) * bytes_);
    }
    i = j;
  }
  stream_.synchronize("payload read: cudaStreamSynchronize");
}

}  // namespace cuda
}  // namespace saga
