#include "eviction_order.h"

#include <algorithm>

namespace saga {
namespace {
constexpr size_t kArity = 4;
}

CpuEvictionOrder::CpuEvictionOrder(int32_t deviceCapacity, int32_t hostCapacity) : deviceCapacity_(deviceCapacity) {
  size_t blocks = static_cast<size_t>(deviceCapacity) + static_cast<size_t>(hostCapacity);
  key_.assign(blocks, 0.0);
  position_.assign(blocks, 0);
  session_.assign(blocks, kNoSession);
  stamp_.assign(blocks, 0);
  place_.assign(blocks, kNotEvictable);
  listNext_.assign(blocks, kNoBlock);
  listPrev_.assign(blocks, kNoBlock);
  sessionNext_.assign(blocks, kNoBlock);
  sessionPrev_.assign(blocks, kNoBlock);
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
    listPrev_[id] = t.listTail;
    listNext_[id] = kNoBlock;
    if (t.listTail != kNoBlock) listNext_[t.listTail] = id; else t.listHead = id;
    t.listTail = id;
    place_[id] = kInList;
    return;
  }
  place_[id] = kInHeap;
  ++t.heapLive;
  t.heap.push_back(Entry{key_[id], position_[id], id, ++stamp_[id]});
  siftUp(t.heap, t.heap.size() - 1);
}

void CpuEvictionOrder::leave(BlockId id) {
  Tiered& t = tierOf(id);
  if (place_[id] == kInList) {
    BlockId prev = listPrev_[id], next = listNext_[id];
    if (prev != kNoBlock) listNext_[prev] = next; else t.listHead = next;
    if (next != kNoBlock) listPrev_[next] = prev; else t.listTail = prev;
    listPrev_[id] = listNext_[id] = kNoBlock;
    place_[id] = kNotEvictable;
    return;
  }
  place_[id] = kNotEvictable;  // the heap entry turns stale
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
  SessionId s = session_[id];
  if (s < 0) return;
  SessionEnds* ends = sessionEnds(s, true);
  sessionPrev_[id] = ends->tail;
  sessionNext_[id] = kNoBlock;
  if (ends->tail != kNoBlock) sessionNext_[ends->tail] = id; else ends->head = id;
  ends->tail = id;
}

void CpuEvictionOrder::unlinkSession(BlockId id) {
  SessionId s = session_[id];
  if (s < 0) return;
  BlockId prev = sessionPrev_[id], next = sessionNext_[id];
  sessionNext_[id] = sessionPrev_[id] = kNoBlock;
  if (prev != kNoBlock && next != kNoBlock) {
    sessionNext_[prev] = next;
    sessionPrev_[next] = prev;
    return;
  }
  SessionEnds* ends = sessionEnds(s, false);
  if (prev != kNoBlock) sessionNext_[prev] = next; else ends->head = next;
  if (next != kNoBlock) sessionPrev_[next] = prev; else ends->tail = prev;
  if (ends->head == kNoBlock) {
    if (lastEnds_ == ends) lastEnds_ = nullptr;
    sessions_.erase(s);
  }
}

// ---- EvictionOrder ----------------------------------------------------------------------------------

void CpuEvictionOrder::assign(BlockId id, SessionId session, int32_t position, double key) {
  session_[id] = session;
  position_[id] = position;
  key_[id] = key;
  linkSession(id);
}

void CpuEvictionOrder::unassign(BlockId id) {
  if (place_[id] != kNotEvictable) leave(id);
  unlinkSession(id);
  session_[id] = kNoSession;
  position_[id] = 0;
  key_[id] = 0.0;
}

void CpuEvictionOrder::makeEvictable(BlockId id, double key) {
  key_[id] = key;
  enter(id);
}

void CpuEvictionOrder::makeUnevictable(BlockId id) { leave(id); }

void CpuEvictionOrder::move(const BlockId* from, const BlockId* to, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    BlockId src = from[i], dst = to[i];
    double key = key_[src];
    assign(dst, session_[src], position_[src], key);
    unassign(src);
    makeEvictable(dst, key);
  }
}

void CpuEvictionOrder::setKeys(const BlockId* ids, const double* keys, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    BlockId id = ids[i];
    if (place_[id] == kNotEvictable) {
      key_[id] = keys[i];
      continue;
    }
    leave(id);
    key_[id] = keys[i];
    enter(id);
  }
}

int64_t CpuEvictionOrder::setSessionKeys(const SessionId* sessions, const double* keys, const int32_t* minPositions,
                                         size_t n) {
  int64_t updates = 0;
  for (size_t i = 0; i < n; ++i) {
    SessionEnds* ends = sessionEnds(sessions[i], false);
    if (ends == nullptr) continue;
    for (BlockId id = ends->head; id != kNoBlock; id = sessionNext_[id]) {
      if (position_[id] < minPositions[i]) continue;
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
                                                   h[frontier_.front()].id, key_[cursor], position_[cursor], cursor))) {
      out[written++] = cursor;
      cursor = listNext_[cursor];
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

void CpuEvictionOrder::exportKeys(double* out) { std::copy(key_.begin(), key_.end(), out); }

}  // namespace saga
