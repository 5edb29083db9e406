#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include <string>

#include "saga/errors.h"
#include "sort_key.cuh"
#include "victim_select.cuh"

namespace saga {
namespace cuda {
namespace {

constexpr int kDigitBits = 11;
constexpr unsigned int kBins = 1u << kDigitBits;  // 2048
constexpr unsigned int kThreads = 256;
constexpr unsigned int kBinsPerThread = kBins / kThreads;
constexpr int kItems = 4;  // blocks per thread per loop step in the scanning kernels
static_assert(kBins % kThreads == 0, "histogram bins must split evenly over the threads");

using u64 = unsigned long long;

// Loads the kItems blocks a thread scans in one step (base, base + kThreads, ...) together, so their
// memory requests overlap; past `end` a block reads as not evictable.
__device__ __forceinline__ void loadItems(const OrderArrays& arrays, long long base, long long end,
                                          uint8_t (&flags)[kItems], double (&keys)[kItems]) {
#pragma unroll
  for (int u = 0; u < kItems; ++u) {
    const long long i = base + static_cast<long long>(u) * kThreads;
    flags[u] = i < end ? arrays.flags[i] : 0;
    keys[u] = i < end ? arrays.key[i] : 0.0;
  }
}

__global__ void initSelectKernel(SelectHeader* header, unsigned int* histogram, unsigned int need) {
  for (unsigned int b = threadIdx.x; b < kBins; b += blockDim.x) histogram[b] = 0;
  if (threadIdx.x == 0) {
    header->prefix[0] = header->prefix[1] = 0;
    header->mask[0] = header->mask[1] = 0;
    header->need = need;
    header->done = 0;
    header->selected = 0;
    header->count = 0;
    header->ticket = 0;
    header->pad = 0;
  }
}

// One radix-selection pass over the digit (word, shift, width) of the keys that match the fixed prefix.
__global__ void __launch_bounds__(kThreads)
    histogramPassKernel(OrderArrays arrays, int32_t first, int32_t end, int idBits, int word, int shift, int width,
                        int firstPass, SelectHeader* header, unsigned int* histogram) {
  using BlockScan = cub::BlockScan<unsigned int, kThreads>;
  __shared__ unsigned int shared[kBins];
  __shared__ typename BlockScan::TempStorage scanTemp;
  __shared__ int isLast;

  // Written by an earlier kernel only, so the whole block reads the same value.
  if (header->done != 0) return;

  for (unsigned int b = threadIdx.x; b < kBins; b += kThreads) shared[b] = 0;
  __syncthreads();

  const u64 p0 = header->prefix[0], p1 = header->prefix[1];
  const u64 m0 = header->mask[0], m1 = header->mask[1];
  const u64 digitMask = (1ULL << width) - 1ULL;
  const bool loMatters = word == 1 || m1 != 0;
  // kItems blocks a thread per step, their loads issued together (the pass is bandwidth-bound).
  const long long step = static_cast<long long>(gridDim.x) * kThreads * kItems;
  for (long long base = first + static_cast<long long>(blockIdx.x) * kThreads * kItems + threadIdx.x; base < end;
       base += step) {
    uint8_t flags[kItems];
    double keys[kItems];
    loadItems(arrays, base, end, flags, keys);
#pragma unroll
    for (int u = 0; u < kItems; ++u) {
      const long long i = base + static_cast<long long>(u) * kThreads;
      if ((flags[u] & kEvictable) == 0) continue;
      const u64 hi = orderedKeyBits(keys[u]);
      if ((hi & m0) != p0) continue;
      u64 lo = 0;
      if (loMatters) {
        lo = tieBreakBits(arrays.position[i], static_cast<int32_t>(i), idBits);
        if ((lo & m1) != p1) continue;
      }
      const unsigned int digit = static_cast<unsigned int>(((word == 0 ? hi : lo) >> shift) & digitMask);
      atomicAdd(&shared[digit], 1u);
    }
  }
  __syncthreads();
  for (unsigned int b = threadIdx.x; b < kBins; b += kThreads) {
    const unsigned int c = shared[b];
    if (c != 0) atomicAdd(&histogram[b], c);
  }
  // Ticket: the last block to finish sees every block's counts (threadFenceReduction pattern).
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) isLast = atomicAdd(&header->ticket, 1u) == gridDim.x - 1 ? 1 : 0;
  __syncthreads();
  if (isLast == 0) return;
  __threadfence();

  // Last block: find the bin holding the need-th key, fix its digit, reset the histogram.
  unsigned int counts[kBinsPerThread];
  unsigned int sum = 0;
  const unsigned int base = threadIdx.x * kBinsPerThread;
#pragma unroll
  for (unsigned int j = 0; j < kBinsPerThread; ++j) {
    counts[j] = __ldcg(&histogram[base + j]);
    sum += counts[j];
  }
  unsigned int need = header->need;  // every thread reads it before the one writer (after the scan)
  unsigned int before = 0, total = 0;
  BlockScan(scanTemp).ExclusiveSum(sum, before, total);
  if (firstPass != 0 && need > total) need = total;  // fewer evictable blocks than asked for
  if (need == 0) {
    if (threadIdx.x == 0) {
      header->selected = 0;
      header->done = 1;
    }
  } else {
    if (firstPass != 0 && threadIdx.x == 0) header->selected = need;
#pragma unroll
    for (unsigned int j = 0; j < kBinsPerThread; ++j) {
      const unsigned int c = counts[j];
      if (before < need && need <= before + c) {
        const unsigned int rest = need - before;  // keys to take inside this bin, >= 1
        header->need = rest;
        header->prefix[word] |= static_cast<u64>(base + j) << shift;
        header->mask[word] |= digitMask << shift;
        if (c == rest) header->done = 1;  // the whole bin is taken: the set is determined
      }
      before += c;
    }
  }
#pragma unroll
  for (unsigned int j = 0; j < kBinsPerThread; ++j) histogram[base + j] = 0;
  if (threadIdx.x == 0) header->ticket = 0;
}

// Writes the sort keys of the selected blocks: those whose key, truncated to the fixed bits, is <= the
// fixed prefix. One atomic per warp for the output slots.
__global__ void __launch_bounds__(kThreads)
    compactSelectedKernel(OrderArrays arrays, int32_t first, int32_t end, int idBits, unsigned int capacity,
                          SelectHeader* header, u64* outHi, u64* outLo) {
  const u64 p0 = header->prefix[0], p1 = header->prefix[1];
  const u64 m0 = header->mask[0], m1 = header->mask[1];
  const unsigned int lane = threadIdx.x & 31u;
  const long long step = static_cast<long long>(gridDim.x) * kThreads * kItems;
  // `base - threadIdx.x` is the same for the whole block, so every warp runs the loop with all 32 lanes
  // (the ballots below need them).
  for (long long base = first + static_cast<long long>(blockIdx.x) * kThreads * kItems + threadIdx.x;
       base - threadIdx.x < end; base += step) {
    uint8_t flags[kItems];
    double keys[kItems];
    loadItems(arrays, base, end, flags, keys);
#pragma unroll
    for (int u = 0; u < kItems; ++u) {
      const long long i = base + static_cast<long long>(u) * kThreads;
      bool take = false;
      u64 hi = 0, lo = 0;
      if ((flags[u] & kEvictable) != 0) {
        hi = orderedKeyBits(keys[u]);
        const u64 th = hi & m0;
        if (th <= p0) {
          lo = tieBreakBits(arrays.position[i], static_cast<int32_t>(i), idBits);
          take = th < p0 || (lo & m1) <= p1;
        }
      }
      const unsigned int ballot = __ballot_sync(0xffffffffu, take);
      if (ballot != 0) {
        unsigned int slot0 = 0;
        if (lane == 0) slot0 = atomicAdd(&header->count, static_cast<unsigned int>(__popc(ballot)));
        slot0 = __shfl_sync(0xffffffffu, slot0, 0);
        if (take) {
          const unsigned int slot = slot0 + static_cast<unsigned int>(__popc(ballot & ((1u << lane) - 1u)));
          if (slot < capacity) {
            outHi[slot] = hi;
            outLo[slot] = lo;
          }
        }
      }
    }
  }
}

}  // namespace

VictimSelector::VictimSelector(int32_t blockCount, int smCount)
    : blockCount_(blockCount), idBits_(idBitsFor(blockCount)), smCount_(smCount > 0 ? smCount : 1) {
  header_.allocate(1, "cudaMalloc(select state)");
  histogram_.allocate(kBins, "cudaMalloc(select histogram)");
  hostHeader_.allocate(1, "cudaMallocHost(select state)");
}

void VictimSelector::reserve(size_t n) {
  cand_.reserve(2 * n, "cudaMalloc(select candidates)");
  tmp_.reserve(2 * n, "cudaMalloc(select sort buffer)");
  hostLo_.reserve(n, "cudaMallocHost(select result)");
}

size_t VictimSelector::select(const OrderArrays& arrays, int32_t first, int32_t end, size_t k, BlockId* out,
                              cudaStream_t stream) {
  if (k == 0 || end <= first) return 0;
  const size_t range = static_cast<size_t>(end - first);
  const unsigned int capacity = static_cast<unsigned int>(k < range ? k : range);
  reserve(capacity);

  initSelectKernel<<<1, kThreads, 0, stream>>>(header_.get(), histogram_.get(), capacity);
  checkLaunch("initSelectKernel launch");

  // Radix passes, most significant digit first: 64 bits of hi, then the 32 + idBits used bits of lo.
  // A few blocks per SM; each thread then covers kItems blocks per step, several steps for 1M blocks.
  const unsigned int grid = gridFor(range, kThreads * kItems, static_cast<unsigned int>(smCount_) * 4u);
  bool firstPass = true;
  for (int word = 0; word < 2; ++word) {
    int remaining = word == 0 ? 64 : 32 + idBits_;
    while (remaining > 0) {
      const int width = remaining < kDigitBits ? remaining : kDigitBits;
      remaining -= width;
      histogramPassKernel<<<grid, kThreads, 0, stream>>>(arrays, first, end, idBits_, word, remaining, width,
                                                          firstPass ? 1 : 0, header_.get(), histogram_.get());
      checkLaunch("histogramPassKernel launch");
      firstPass = false;
    }
  }

  // Slots past the selected ones keep all-ones keys, which sort after every real key (the largest real
  // hi is +Infinity's, 0xFFF0...). hi and lo lie back to back: one memset.
  const size_t bytes = static_cast<size_t>(capacity) * sizeof(u64);
  u64* candHi = cand_.get();
  u64* candLo = cand_.get() + capacity;
  u64* tmpHi = tmp_.get();
  u64* tmpLo = tmp_.get() + capacity;
  check(cudaMemsetAsync(candHi, 0xFF, 2 * bytes, stream), "cudaMemsetAsync(select candidates)");
  compactSelectedKernel<<<grid, kThreads, 0, stream>>>(arrays, first, end, idBits_, capacity, header_.get(), candHi,
                                                        candLo);
  checkLaunch("compactSelectedKernel launch");

  // Lexicographic (hi, lo) order: stable sort by lo, then stable sort by hi.
  const int items = static_cast<int>(capacity);
  size_t tempBytes = 0;
  check(cub::DeviceRadixSort::SortPairs(nullptr, tempBytes, candLo, tmpLo, candHi, tmpHi,
                                        items, 0, 64, stream),
        "cub::DeviceRadixSort::SortPairs (size query)");
  sortTemp_.reserve(tempBytes > 0 ? tempBytes : 1, "cudaMalloc(select sort temp)");
  tempBytes = sortTemp_.size();
  check(cub::DeviceRadixSort::SortPairs(sortTemp_.get(), tempBytes, candLo, tmpLo, candHi,
                                        tmpHi, items, 0, 64, stream),
        "cub::DeviceRadixSort::SortPairs (by position and id)");
  tempBytes = sortTemp_.size();
  check(cub::DeviceRadixSort::SortPairs(sortTemp_.get(), tempBytes, tmpHi, candHi, tmpLo,
                                        candLo, items, 0, 64, stream),
        "cub::DeviceRadixSort::SortPairs (by key)");

  check(cudaMemcpyAsync(hostLo_.get(), candLo, bytes, cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync(select result)");
  check(cudaMemcpyAsync(hostHeader_.get(), header_.get(), sizeof(SelectHeader), cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync(select state)");
  check(cudaStreamSynchronize(stream), "select: cudaStreamSynchronize");

  const SelectHeader& h = hostHeader_[0];
  if (h.done != 1 || h.count != h.selected || h.selected > capacity) {
    throw Error(ErrorCode::Internal, "CUDA select: inconsistent selection (done " + std::to_string(h.done) +
                                         ", selected " + std::to_string(h.selected) + ", compacted " +
                                         std::to_string(h.count) + ", capacity " + std::to_string(capacity) + ")");
  }
  const u64 idMask = (1ULL << idBits_) - 1ULL;
  for (unsigned int i = 0; i < h.selected; ++i) {
    const BlockId id = static_cast<BlockId>(hostLo_[i] & idMask);
    if (id < first || id >= end) {
      throw Error(ErrorCode::Internal, "CUDA select: block id " + std::to_string(id) + " outside the tier");
    }
    out[i] = id;
  }
  return h.selected;
}

}  // namespace cuda
}  // namespace saga
