// select(tier, k) on the device: the k first blocks of a tier in eviction order, exactly as the CPU
// order gives them.
//
// Every evictable block of the tier's id range has a unique 128-bit sort key (sort_key.cuh). The k-th
// smallest key is found by radix selection, most significant digit first, 11 bits a pass: each pass
// histograms the digit of the blocks whose key matches the digits fixed so far, and the last thread
// block of the pass (a ticket counter) scans the histogram, fixes the digit holding the k-th key and
// stops the selection early once every key under the fixed prefix is taken. All of it stays on the
// device: no host round trip between passes, passes after the end return at once. Then the blocks at or
// below the fixed prefix (exactly min(k, evictable) of them) are compacted, sorted by (hi, lo) with two
// stable CUB radix sorts, and copied back. Ties (many equal keys) cost nothing extra: the selection
// simply continues into the position and id bits.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "device_buffer.cuh"
#include "order_arrays.cuh"
#include "saga/types.h"

namespace saga {
namespace cuda {

// Selection state on the device; the header is copied back at the end for checking.
struct SelectHeader {
  unsigned long long prefix[2];  // fixed digits of (hi, lo)
  unsigned long long mask[2];    // which bits are fixed
  unsigned int need;             // how many keys under the prefix still to take
  unsigned int done;             // 1 once the selected set is determined
  unsigned int selected;         // min(k, evictable in range)
  unsigned int count;            // blocks written by the compaction
  unsigned int ticket;           // finished thread blocks of the running pass
  unsigned int pad;
};

class VictimSelector {
 public:
  VictimSelector(int32_t blockCount, int smCount);
  // Writes min(k, evictable in [first, end)) ids to out. Device state must be current. Synchronizes.
  size_t select(const OrderArrays& arrays, int32_t first, int32_t end, size_t k, BlockId* out, cudaStream_t stream);

 private:
  void reserve(size_t n);

  int32_t blockCount_;
  int idBits_;
  int smCount_;
  DeviceArray<SelectHeader> header_;
  DeviceArray<unsigned int> histogram_;
  DeviceArray<unsigned long long> cand_, tmp_;  // [hi x capacity | lo x capacity] each
  DeviceArray<unsigned char> sortTemp_;
  size_t sortTempItems_ = 0;  // item count sortTemp_ was sized for
  PinnedArray<unsigned long long> hostLo_;
  PinnedArray<SelectHeader> hostHeader_;
};

}  // namespace cuda
}  // namespace saga
