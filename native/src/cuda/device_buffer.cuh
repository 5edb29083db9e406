// Owning handles for CUDA memory and streams: device arrays (cudaMalloc, never managed memory), pinned
// host arrays (cudaMallocHost) and a stream. Each frees what it holds in its destructor; errors there
// are ignored (a destructor must not throw, and a broken device has already been reported).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "cuda_check.cuh"

namespace saga {
namespace cuda {

template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { reset(); }

  // Replaces the contents with `n` uninitialised elements.
  void allocate(size_t n, const char* what) {
    reset();
    if (n == 0) return;
    void* p = nullptr;
    check(cudaMalloc(&p, n * sizeof(T)), what);
    ptr_ = static_cast<T*>(p);
    size_ = n;
  }
  // Makes room for at least `n` elements (contents are not kept when it grows); grows geometrically.
  void reserve(size_t n, const char* what) {
    if (n <= size_) return;
    size_t grown = size_ * 2;
    allocate(n > grown ? n : grown, what);
  }
  void reset() noexcept {
    if (ptr_ != nullptr) (void)cudaFree(ptr_);
    ptr_ = nullptr;
    size_ = 0;
  }
  T* get() const { return ptr_; }
  size_t size() const { return size_; }

 private:
  T* ptr_ = nullptr;
  size_t size_ = 0;
};

template <typename T>
class PinnedArray {
 public:
  PinnedArray() = default;
  PinnedArray(const PinnedArray&) = delete;
  PinnedArray& operator=(const PinnedArray&) = delete;
  ~PinnedArray() { reset(); }

  void allocate(size_t n, const char* what) {
    reset();
    if (n == 0) return;
    void* p = nullptr;
    check(cudaMallocHost(&p, n * sizeof(T)), what);
    ptr_ = static_cast<T*>(p);
    size_ = n;
  }
  // Like DeviceArray::reserve, but keeps the first `keep` elements.
  void reserve(size_t n, const char* what, size_t keep = 0) {
    if (n <= size_) return;
    size_t grown = size_ * 2;
    size_t target = n > grown ? n : grown;
    void* p = nullptr;
    check(cudaMallocHost(&p, target * sizeof(T)), what);
    T* fresh = static_cast<T*>(p);
    for (size_t i = 0; i < keep && i < size_; ++i) fresh[i] = ptr_[i];
    reset();
    ptr_ = fresh;
    size_ = target;
  }
  void reset() noexcept {
    if (ptr_ != nullptr) (void)cudaFreeHost(ptr_);
    ptr_ = nullptr;
    size_ = 0;
  }
  T* get() const { return ptr_; }
  T& operator[](size_t i) const { return ptr_[i]; }
  size_t size() const { return size_; }

 private:
  T* ptr_ = nullptr;
  size_t size_ = 0;
};

class Stream {
 public:
  Stream() { check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags"); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() {
    if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
  }
  cudaStream_t get() const { return stream_; }
  void synchronize(const char* what) const { check(cudaStreamSynchronize(stream_), what); }

 private:
  cudaStream_t stream_ = nullptr;
};

// Blocks of `threads` covering `n` items, capped (kernels that take a cap loop grid-stride).
inline unsigned int gridFor(size_t n, unsigned int threads, unsigned int cap = 65535u) {
  size_t blocks = (n + threads - 1) / threads;
  if (blocks == 0) blocks = 1;
  return static_cast<unsigned int>(blocks < cap ? blocks : cap);
}

}  // namespace cuda
}  // namespace saga
