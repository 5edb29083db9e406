// The eviction order: every block's eviction key, and for the cached blocks of each tier the order in
// which they go: ascending key, then the deeper block (larger chain position) first, then the lower id.
// LRU is the case key = time of release; next-use policies set keys to predicted next-use times.
// One interface, one implementation per backend (a list and sorted-on-demand buckets on the CPU, device arrays and
// selection kernels on CUDA). The pool validates every call before it reaches an order: an order
// never sees a bad id, a NaN key or an impossible state change.
#pragma once
#include <cstddef>
#include <cstdint>

#include "saga/types.h"

namespace saga {

class EvictionOrder {
 public:
  virtual ~EvictionOrder() = default;

  // A free block starts holding data for `session` at chain `position`, not yet evictable.
  virtual void assign(BlockId id, SessionId session, int32_t position, double key) = 0;
  // The block holds nothing any more; it leaves the evictable set if it was in it. Its key reads 0.
  virtual void unassign(BlockId id) = 0;
  // The block enters the evictable set of its tier with `key` (it was not evictable).
  virtual void makeEvictable(BlockId id, double key) = 0;
  // The block leaves the evictable set (it was evictable); its key is kept.
  virtual void makeUnevictable(BlockId id) = 0;
  // Moves blocks between tiers: to[i] takes from[i]'s session, position and key and becomes evictable;
  // from[i] is unassigned. from[i] was evictable and to[i] free; the two lists are disjoint.
  virtual void move(const BlockId* from, const BlockId* to, size_t n) = 0;

  // keys[i] for ids[i], in order (a repeated id takes its last key); the block's evictable state is kept.
  virtual void setKeys(const BlockId* ids, const double* keys, size_t n) = 0;
  // In order i = 0..n-1: every assigned block of sessions[i] with position >= minPositions[i] takes
  // keys[i]. Returns how many (block, i) updates were made.
  virtual int64_t setSessionKeys(const SessionId* sessions, const double* keys, const int32_t* minPositions,
                                 size_t n) = 0;

  // Writes the first min(k, evictable in tier) blocks the order would evict from `tier`, first first.
  // Changes nothing observable. Returns how many it wrote.
  virtual size_t select(Tier tier, size_t k, BlockId* out) = 0;

  // Every block's key (0 for free blocks), for snapshots and differential tests.
  virtual void exportKeys(double* out) = 0;

  // A hint that `id` is about to be touched (the pool requests a batch's records ahead of use).
  virtual void prefetch(BlockId /*id*/) const {}
};

}  // namespace saga
