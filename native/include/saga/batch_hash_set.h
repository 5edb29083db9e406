// The hashes seen so far in one batch, to find a hash repeated within it. A small open-addressing
// table reused across calls: a slot counts only if it carries the current call's generation, so
// starting a batch costs O(1) and the pool's hash index never holds half-validated entries.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "saga/types.h"

namespace saga {

class BatchHashSet {
 public:
  // Starts an empty set for a batch of up to n hashes.
  void begin(size_t n) {
    size_t slots = 16;
    while (slots < n * 2) slots <<= 1;
    if (slots > slots_.size()) {
      slots_.assign(slots, Slot{0, 0});
      generation_ = 0;
    }
    mask_ = slots_.size() - 1;
    if (++generation_ == 0) {  // wrapped: old stamps could read as current
      for (Slot& s : slots_) s.generation = 0;
      generation_ = 1;
    }
  }

  // Adds `hash`; false if it was already in the set.
  bool insert(BlockHash hash) {
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.generation != generation_) {
        s.hash = hash;
        s.generation = generation_;
        return true;
      }
      if (s.hash == hash) return false;
    }
  }

 private:
  struct Slot {
    BlockHash hash;
    uint64_t generation;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  uint64_t generation_ = 0;
};

}  // namespace saga
