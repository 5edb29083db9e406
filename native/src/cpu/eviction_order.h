// CpuEvictionOrder: the reference eviction order. One lazy 4-ary min-heap per tier over entries
// (key, position, id, stamp): re-keying or removing a block does not search the heap, it bumps the
// block's stamp, which turns its old entry stale; stale entries are skipped when met and the heap is
// rebuilt from live entries when they outnumber the live ones. Removal is O(1), insertion O(1) on
// average for keys that grow (LRU), selection of k victims O(k log k) by a frontier walk.
// Per-session intrusive lists make setSessionKeys proportional to the session's blocks.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "saga/eviction_order.h"
#include "saga/types.h"

namespace saga {

class CpuEvictionOrder final : public EvictionOrder {
 public:
  CpuEvictionOrder(int32_t deviceCapacity, int32_t hostCapacity);

  void assign(BlockId id, SessionId session, int32_t position, double key) override;
  void unassign(BlockId id) override;
  void makeEvictable(BlockId id, double key) override;
  void makeUnevictable(BlockId id) override;
  void move(const BlockId* from, const BlockId* to, size_t n) override;
  void setKeys(const BlockId* ids, const double* keys, size_t n) override;
  int64_t setSessionKeys(const SessionId* sessions, const double* keys, const int32_t* minPositions,
                         size_t n) override;
  size_t select(Tier tier, size_t k, BlockId* out) override;
  void exportKeys(double* out) override;

 private:
  struct Entry {
    double key;
    int32_t position;
    BlockId id;
    uint32_t stamp;
  };
  struct Heap {
    std::vector<Entry> entries;
    size_t live = 0;  // evictable blocks of the tier; entries.size() - live are stale
  };

  // True when a goes before b: smaller key, then deeper position, then smaller id.
  static bool before(const Entry& a, const Entry& b) {
    if (a.key != b.key) return a.key < b.key;
    if (a.position != b.position) return a.position > b.position;
    return a.id < b.id;
  }
  bool isLive(const Entry& e) const { return evictable_[e.id] != 0 && stamp_[e.id] == e.stamp; }
  Heap& heapOf(BlockId id) { return heaps_[id < deviceCapacity_ ? 0 : 1]; }
  void push(BlockId id);  // a fresh entry for an evictable block
  void compactIfStale(Heap& heap);  // rebuilds once stale entries outnumber live ones
  void siftUp(std::vector<Entry>& h, size_t i);
  void siftDown(std::vector<Entry>& h, size_t i);
  void popRoot(std::vector<Entry>& h);
  void rebuild(Heap& heap);
  void linkSession(BlockId id);
  void unlinkSession(BlockId id);

  int32_t deviceCapacity_;
  std::vector<double> key_;
  std::vector<int32_t> position_;
  std::vector<SessionId> session_;
  std::vector<uint32_t> stamp_;
  std::vector<uint8_t> evictable_;
  std::vector<BlockId> sessionNext_, sessionPrev_;
  std::unordered_map<SessionId, BlockId> sessionHead_;
  Heap heaps_[2];
  std::vector<size_t> frontier_;  // select's scratch: heap indices, a min-heap by entry order
};

}  // namespace saga
