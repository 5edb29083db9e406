// Open-addressing map from block hash to block id: linear probing, power-of-two table at most a quarter
// full (measured at 1M blocks: 10.2 ns per looked-up block at a quarter, 12 at a half; probes that
// cross a cache line cost a second miss), backward-shift deletion (no tombstones, so probes stay short under churn). Hash 0 marks an
// empty slot, which is why kNoHash is never a block's hash. The hashes are already mixed
// (finalizeHash), so the low bits index the table directly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "saga/huge_page_allocator.h"
#include "saga/types.h"

namespace saga {

class HashIndex {
 public:
  explicit HashIndex(size_t maxEntries) {
    size_t slots = 16;
    while (slots < maxEntries * 4) slots <<= 1;
    slots_.assign(slots, Slot{kNoHash, kNoBlock});
    mask_ = slots - 1;
  }

  BlockId find(BlockHash hash) const {
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.hash == hash) return s.id;
      if (s.hash == kNoHash) return kNoBlock;
    }
  }

  // Hints the cache line of `hash`'s home slot, so a batch of lookups overlaps its memory misses.
  void prefetch(BlockHash hash) const { __builtin_prefetch(&slots_[hash & mask_]); }
  // For an erase: the home slot's line and the next slot's (the backward shift reads past the entry;
  // with four slots a line, one home slot in four is the last of its line).
  void prefetchForErase(BlockHash hash) const {
    __builtin_prefetch(&slots_[hash & mask_], 1);
    __builtin_prefetch(&slots_[(hash + 1) & mask_], 1);
  }

  // One probe for a hash that is to be inserted: if `hash` is present, returns its id and changes
  // nothing; else writes (hash, pending) into the empty slot that ends the probe, stores that slot's
  // position in *slot and returns kNoBlock. The slot is finished with setAt(slot, id) while nothing
  // was erased in between (backward-shift deletion moves entries), else with put.
  BlockId findOrReserve(BlockHash hash, BlockId pending, size_t* slot) {
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.hash == hash) return s.id;
      if (s.hash == kNoHash) {
        s.hash = hash;
        s.id = pending;
        *slot = i;
        return kNoBlock;
      }
    }
  }
  void setAt(size_t slot, BlockId id) { slots_[slot].id = id; }

  // Inserts or overwrites.
  void put(BlockHash hash, BlockId id) {
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.hash == hash || s.hash == kNoHash) {
        s.hash = hash;
        s.id = id;
        return;
      }
    }
  }

  void erase(BlockHash hash) {
    size_t i = hash & mask_;
    while (slots_[i].hash != hash) {
      if (slots_[i].hash == kNoHash) return;
      i = (i + 1) & mask_;
    }
    // Backward shift: pull later entries of the probe run into the hole while that keeps them reachable.
    for (size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
      const Slot& s = slots_[j];
      if (s.hash == kNoHash) break;
      size_t home = s.hash & mask_;
      // Move s into the hole at i only if its home does not lie cyclically in (i, j].
      bool homeBetween = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
      if (!homeBetween) {
        slots_[i] = s;
        i = j;
      }
    }
    slots_[i] = Slot{kNoHash, kNoBlock};
  }

 private:
  struct Slot {
    BlockHash hash;
    BlockId id;
  };
  FlatArray<Slot> slots_;
  size_t mask_ = 0;
};

}  // namespace saga
