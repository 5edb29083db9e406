// CpuEvictionOrder: the reference eviction order (ascending key, then deeper position, then lower id).
//
// Two structures per tier, merged when read:
// - an in-order list: an intrusive doubly linked list of blocks that became evictable in order (each
//   at or after the list's tail). LRU keys (release times, a request's blocks released tail-first,
//   as vLLM does) always land here, so LRU costs O(1) per operation: vLLM's free-block queue.
// - a lazy 4-ary min-heap for the rest (next-use keys arrive in any order): a removed or re-keyed block
//   bumps its stamp, turning its entry stale; stale entries are skipped when met and the heap is rebuilt
//   from live entries when they outnumber the live ones.
// Per-session intrusive lists make setSessionKeys proportional to the session's blocks.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "saga/eviction_order.h"
#include "saga/huge_page_allocator.h"
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
  void prefetch(BlockId id) const override { __builtin_prefetch(&blocks_[id], 1); }

 private:
  struct Entry {
    double key;
    int32_t position;
    BlockId id;
    uint32_t stamp;
  };
  struct SessionEnds {
    BlockId head = kNoBlock, tail = kNoBlock;
  };
  // Where an evictable block's entry lives.
  enum Place : uint8_t { kNotEvictable = 0, kInList = 1, kInHeap = 2 };
  struct Tiered {
    FlatArray<Entry> heap;
    size_t heapLive = 0;  // live heap entries; heap.size() - heapLive are stale
    BlockId listHead = kNoBlock, listTail = kNoBlock;
  };

  // True when a goes before b: smaller key, then deeper position, then smaller id.
  static bool before(double ka, int32_t pa, BlockId ia, double kb, int32_t pb, BlockId ib) {
    if (ka != kb) return ka < kb;
    if (pa != pb) return pa > pb;
    return ia < ib;
  }
  static bool before(const Entry& a, const Entry& b) { return before(a.key, a.position, a.id, b.key, b.position, b.id); }
  bool blockBefore(BlockId a, BlockId b) const {
    return before(blocks_[a].key, blocks_[a].position, a, blocks_[b].key, blocks_[b].position, b);
  }
  bool isLive(const Entry& e) const { return blocks_[e.id].place == kInHeap && blocks_[e.id].stamp == e.stamp; }
  Tiered& tierOf(BlockId id) { return tiers_[id < deviceCapacity_ ? 0 : 1]; }

  void enter(BlockId id);  // places an evictable block (key_ set) in its tier's list or heap
  void leave(BlockId id);  // takes it out again
  void siftUp(FlatArray<Entry>& h, size_t i);
  void siftDown(FlatArray<Entry>& h, size_t i);
  void popRoot(FlatArray<Entry>& h);
  void compactIfStale(Tiered& t);  // rebuilds the heap once stale entries outnumber live ones
  SessionEnds* sessionEnds(SessionId s, bool create);  // nullptr if absent and !create
  void linkSession(BlockId id);
  void unlinkSession(BlockId id);

  int32_t deviceCapacity_;
  // Everything the order keeps about a block, in one record: a block touched at random (a victim, a
  // re-keyed block) costs one cache line, not one per field.
  struct Block {
    double key = 0.0;
    int32_t position = 0;
    SessionId session = kNoSession;
    uint32_t stamp = 0;  // of the block's live heap entry
    Place place = kNotEvictable;
    BlockId listPrev = kNoBlock, listNext = kNoBlock;        // the in-order list
    BlockId sessionPrev = kNoBlock, sessionNext = kNoBlock;  // the block's session list
  };
  FlatArray<Block> blocks_;
  std::unordered_map<SessionId, SessionEnds> sessions_;
  SessionId lastSession_ = kNoSession;
  SessionEnds* lastEnds_ = nullptr;  // &sessions_[lastSession_]: batches hold runs of one session
  Tiered tiers_[2];
  std::vector<size_t> frontier_;  // select's scratch: heap indices, a min-heap by entry order
};

}  // namespace saga
