#include "eviction_order.h"

#include <algorithm>

namespace saga {
namespace {
constexpr size_t kArity = 4;
}

CpuEvictionOrder::CpuEvictionOrder(int32_t deviceCapacity, int32_t hostCapacity) : deviceCapacity_(deviceCapacity) {
  size_t blocks = static_cast<size_t>(deviceCapacity) + static_cast<size_t>(hostCapacity);
  blocks_.assign(blocks, Block{});
}

// ---- heap mechanics ---------------------------------------------------------------------------------

void CpuEvictionOrder::siftUp(FlatArray<Entry>& h, size_t i) {
  Entry e = h[i];
  while (i > 0) {
    size_t parent = (i - 1) / kArity;
    if (!before(e, h[parent])) break;
    h[i] = h[parent];
    i = parent;
  }
  h[i] = e;
}

void CpuEvictionOrder::siftDown(FlatArray<Entry>& h, size_t i) {
  Entry e = h[i];
  size_t n = h.size();
  for (;;) {
    size_t first = i * kArity + 1;
    if (first >= n) break;
    size_t best = first;
    size_t last = std::min(first + kArity, n);
    for (size_t c = first + 1; c < last; ++c) {
      if (before(h[c], h[best])) best = c;
    }
    if (!before(h[best], e)) break;
    h[i] = h[best];
    i = best;
  }
  h[i] = e;
}

void CpuEvictionOrder::popRoot(FlatArray<Entry>& h) {
  h.front() = h.back();
  h.pop_back();
  if (!h.empty()) siftDown(h, 0);
}

void CpuEvictionOrder::compactIfStale(Tiered& t) {
  // Amortised O(1) per operation; the heap stays under twice its live size.
  FlatArray<Entry>& h = t.heap;
  if (h.size() <= 2 * t.heapLive + 64) return;
  h.erase(std::remove_if(h.begin(), h.end(), [this](const Entry& e) { return !isLive(e); }), h.end());
  for (size_t i = h.size() / kArity + 1; i-- > 0;) {
    if (i < h.size()) siftDown(h, i);
  }
}

// ---- placing evictable blocks -----------------------------------------------------------------------

void CpuEvictionOrder::enter(BlockId id) {
  Tiered& t = tierOf(id);
  if (t.listTail == kNoBlock || !blockBefore(id, t.listTail)) {
    blocks_[id].listPrev = t.listTail;
    blocks_[id].listNext = kNoBlock;
    if (t.listTail != kNoBlock) blocks_[t.listTail].listNext = id; else t.listHead = id;
    t.listTail = id;
    blocks_[id].place = kInList;
    return;
  }
  blocks_[id].place = kInHeap;
  ++t.heapLive;
  t.heap.push_back(Entry{blocks_[id].key, blocks_[id].position, id, ++blocks_[id].stamp});
  siftUp(t.heap, t.heap.size() - 1);
}

void CpuEvictionOrder::leave(BlockId id) {
  Tiered& t = tierOf(id);
  if (blocks_[id].place == kInList) {
    BlockId prev = blocks_[id].listPrev, next = blocks_[id].listNext;
    if (prev != kNoBlock) blocks_[prev].listNext = next; else t.listHead = next;
    if (next != kNoBlock) blocks_[next].listPrev = prev; else t.listTail = prev;
    blocks_[id].listPrev = blocks_[id].listNext = kNoBlock;
    blocks_[id].place = kNotEvictable;
    return;
  }
  blocks_[id].place = kNotEvictable;  // the heap entry turns stale
  --t.heapLive;
  compactIfStale(t);
}

// ---- sessions ---------------------------------------------------------------------------------------

CpuEvictionOrder::SessionEnds* CpuEvictionOrder::sessionEnds(SessionId s, bool create) {
  if (s == lastSession_ && lastEnds_ != nullptr) return lastEnds_;
  SessionEnds* ends = nullptr;
  if (create) {
    ends = &sessions_.try_emplace(s).first->second;  // map values stay put across rehashing
  } else {
    auto it = sessions_.find(s);
    if (it == sessions_.end()) return nullptr;
    ends = &it->second;
  }
  lastSession_ = s;
  lastEnds_ = ends;
  return ends;
}

void CpuEvictionOrder::linkSession(BlockId id) {
  // Appended at the tail: a session's deep blocks, evicted first, leave from the tail with no map access.
  SessionId s = blocks_[id].session;
  if (s < 0) return;
  SessionEnds* ends = sessionEnds(s, true);
  blocks_[id].sessionPrev = ends->tail;
  blocks_[id].sessionNext = kNoBlock;
  if (ends->tail != kNoBlock) blocks_[ends->tail].sessionNext = id; else ends->head = id;
  ends->tail = id;
}

void CpuEvictionOrder::unlinkSession(BlockId id) {
  SessionId s = blocks_[id].session;
  if (s < 0) return;
  BlockId prev = blocks_[id].sessionPrev, next = blocks_[id].sessionNext;
  blocks_[id].sessionNext = blocks_[id].sessionPrev = kNoBlock;
  if (prev != kNoBlock && next != kNoBlock) {
    blocks_[prev].sessionNext = next;
    blocks_[next].sessionPrev = prev;
    return;
  }
  SessionEnds* ends = sessionEnds(s, false);
  if (prev != kNoBlock) blocks_[prev].sessionNext = next; else ends->head = next;
  if (next != kNoBlock) blocks_[next].sessionPrev = prev; else ends->tail = prev;
  if (ends->head == kNoBlock) {
    if (lastEnds_ == ends) lastEnds_ = nullptr;
    sessions_.erase(s);
  }
}

// ---- EvictionOrder ----------------------------------------------------------------------------------

void CpuEvictionOrder::assign(BlockId id, SessionId session, int32_t position, double key) {
  blocks_[id].session = session;
  blocks_[id].position = position;
  blocks_[id].key = key;
  linkSession(id);
}

void CpuEvictionOrder::unassign(BlockId id) {
  if (blocks_[id].place != kNotEvictable) leave(id);
  unlinkSession(id);
  blocks_[id].session = kNoSession;
  blocks_[id].position = 0;
  blocks_[id].key = 0.0;
}

void CpuEvictionOrder::makeEvictable(BlockId id, double key) {
  blocks_[id].key = key;
  enter(id);
}

void CpuEvictionOrder::makeUnevictable(BlockId id) { leave(id); }

void CpuEvictionOrder::move(const BlockId* from, const BlockId* to, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    BlockId src = from[i], dst = to[i];
    double key = blocks_[src].key;
    assign(dst, blocks_[src].session, blocks_[src].position, key);
    unassign(src);
    makeEvictable(dst, key);
  }
}

void CpuEvictionOrder::setKeys(const BlockId* ids, const double* keys, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    BlockId id = ids[i];
    if (blocks_[id].place == kNotEvictable) {
      blocks_[id].key = keys[i];
      continue;
    }
    leave(id);
    blocks_[id].key = keys[i];
    enter(id);
  }
}

int64_t CpuEvictionOrder::setSessionKeys(const SessionId* sessions, const double* keys, const int32_t* minPositions,
                                         size_t n) {
  int64_t updates = 0;
  for (size_t i = 0; i < n; ++i) {
    SessionEnds* ends = sessionEnds(sessions[i], false);
    if (ends == nullptr) continue;
    for (BlockId id = ends->head; id != kNoBlock; id = blocks_[id].sessionNext) {
      if (blocks_[id].position < minPositions[i]) continue;
      ++updates;
      setKeys(&id, &keys[i], 1);
    }
  }
  return updates;
}

size_t CpuEvictionOrder::select(Tier tier, size_t k, BlockId* out) {
  Tiered& t = tiers_[static_cast<int>(tier)];
  FlatArray<Entry>& h = t.heap;
  while (!h.empty() && !isLive(h.front())) popRoot(h);  // physical cleanup only; nothing observable
  // Merge two sorted streams: the in-order list from its head, and the heap by a frontier walk (the k
  // smallest of a heap are found by expanding, smallest first, from the root).
  auto later = [&h](size_t a, size_t b) { return before(h[b], h[a]); };
  frontier_.clear();
  if (!h.empty()) frontier_.push_back(0);
  BlockId cursor = t.listHead;
  size_t written = 0;
  while (written < k) {
    // Bring a live entry to the frontier's top (stale ones are expanded and dropped).
    while (!frontier_.empty() && !isLive(h[frontier_.front()])) {
      std::pop_heap(frontier_.begin(), frontier_.end(), later);
      size_t i = frontier_.back();
      frontier_.pop_back();
      size_t first = i * kArity + 1, last = std::min(first + kArity, h.size());
      for (size_t c = first; c < last; ++c) {
        frontier_.push_back(c);
        std::push_heap(frontier_.begin(), frontier_.end(), later);
      }
    }
    bool heapHas = !frontier_.empty();
    if (cursor == kNoBlock && !heapHas) break;
    if (cursor != kNoBlock && (!heapHas || !before(h[frontier_.front()].key, h[frontier_.front()].position,
                                                   h[frontier_.front()].id, blocks_[cursor].key, blocks_[cursor].position, cursor))) {
      out[written++] = cursor;
      cursor = blocks_[cursor].listNext;
      continue;
    }
    std::pop_heap(frontier_.begin(), frontier_.end(), later);
    size_t i = frontier_.back();
    frontier_.pop_back();
    out[written++] = h[i].id;
    size_t first = i * kArity + 1, last = std::min(first + kArity, h.size());
    for (size_t c = first; c < last; ++c) {
      frontier_.push_back(c);
      std::push_heap(frontier_.begin(), frontier_.end(), later);
    }
  }
  return written;
}

void CpuEvictionOrder::exportKeys(double* out) {
  for (size_t i = 0; i < blocks_.size(); ++i) out[i] = blocks_[i].key;
}

}  // namespace saga
