#include "eviction_heap.h"

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
  evictable_.assign(blocks, 0);
  sessionNext_.assign(blocks, kNoBlock);
  sessionPrev_.assign(blocks, kNoBlock);
}

// ---- heap mechanics ---------------------------------------------------------------------------------

void CpuEvictionOrder::siftUp(std::vector<Entry>& h, size_t i) {
  Entry e = h[i];
  while (i > 0) {
    size_t parent = (i - 1) / kArity;
    if (!before(e, h[parent])) break;
    h[i] = h[parent];
    i = parent;
  }
  h[i] = e;
}

void CpuEvictionOrder::siftDown(std::vector<Entry>& h, size_t i) {
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

void CpuEvictionOrder::popRoot(std::vector<Entry>& h) {
  h.front() = h.back();
  h.pop_back();
  if (!h.empty()) siftDown(h, 0);
}

void CpuEvictionOrder::rebuild(Heap& heap) {
  std::vector<Entry>& h = heap.entries;
  h.erase(std::remove_if(h.begin(), h.end(), [this](const Entry& e) { return !isLive(e); }), h.end());
  for (size_t i = h.size() / kArity + 1; i-- > 0;) {
    if (i < h.size()) siftDown(h, i);
  }
}

void CpuEvictionOrder::push(BlockId id) {
  Heap& heap = heapOf(id);
  heap.entries.push_back(Entry{key_[id], position_[id], id, ++stamp_[id]});
  siftUp(heap.entries, heap.entries.size() - 1);
}

void CpuEvictionOrder::compactIfStale(Heap& heap) {
  // Rebuild once stale entries outnumber live ones: amortised O(1) per operation, heap at most 2x.
  if (heap.entries.size() > 2 * heap.live + 64) rebuild(heap);
}

// ---- sessions ---------------------------------------------------------------------------------------

void CpuEvictionOrder::linkSession(BlockId id) {
  SessionId s = session_[id];
  if (s < 0) return;
  auto [it, inserted] = sessionHead_.try_emplace(s, id);
  if (!inserted) {
    BlockId head = it->second;
    sessionNext_[id] = head;
    sessionPrev_[head] = id;
    it->second = id;
  }
}

void CpuEvictionOrder::unlinkSession(BlockId id) {
  SessionId s = session_[id];
  if (s < 0) return;
  BlockId prev = sessionPrev_[id], next = sessionNext_[id];
  if (next != kNoBlock) sessionPrev_[next] = prev;
  if (prev != kNoBlock) {
    sessionNext_[prev] = next;
  } else if (next != kNoBlock) {
    sessionHead_[s] = next;
  } else {
    sessionHead_.erase(s);
  }
  sessionNext_[id] = sessionPrev_[id] = kNoBlock;
}

// ---- EvictionOrder ----------------------------------------------------------------------------------

void CpuEvictionOrder::assign(BlockId id, SessionId session, int32_t position, double key) {
  session_[id] = session;
  position_[id] = position;
  key_[id] = key;
  linkSession(id);
}

void CpuEvictionOrder::unassign(BlockId id) {
  if (evictable_[id] != 0) makeUnevictable(id);
  unlinkSession(id);
  session_[id] = kNoSession;
  position_[id] = 0;
  key_[id] = 0.0;
}

void CpuEvictionOrder::makeEvictable(BlockId id, double key) {
  key_[id] = key;
  evictable_[id] = 1;
  ++heapOf(id).live;
  push(id);
}

void CpuEvictionOrder::makeUnevictable(BlockId id) {
  evictable_[id] = 0;
  Heap& heap = heapOf(id);
  --heap.live;
  compactIfStale(heap);
}

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
    key_[id] = keys[i];
    if (evictable_[id] != 0) {
      push(id);  // the old entry turns stale
      compactIfStale(heapOf(id));
    }
  }
}

int64_t CpuEvictionOrder::setSessionKeys(const SessionId* sessions, const double* keys, const int32_t* minPositions,
                                         size_t n) {
  int64_t updates = 0;
  for (size_t i = 0; i < n; ++i) {
    auto it = sessionHead_.find(sessions[i]);
    if (it == sessionHead_.end()) continue;
    for (BlockId id = it->second; id != kNoBlock; id = sessionNext_[id]) {
      if (position_[id] < minPositions[i]) continue;
      ++updates;
      key_[id] = keys[i];
      if (evictable_[id] != 0) push(id);
    }
    compactIfStale(heaps_[0]);
    compactIfStale(heaps_[1]);
  }
  return updates;
}

size_t CpuEvictionOrder::select(Tier tier, size_t k, BlockId* out) {
  Heap& heap = heaps_[static_cast<int>(tier)];
  std::vector<Entry>& h = heap.entries;
  while (!h.empty() && !isLive(h.front())) popRoot(h);  // physical cleanup only; nothing observable
  // Frontier walk: the k smallest of a heap are found by expanding, smallest first, from the root.
  auto later = [&h](size_t a, size_t b) { return before(h[b], h[a]); };
  frontier_.clear();
  if (!h.empty()) frontier_.push_back(0);
  size_t written = 0;
  while (written < k && !frontier_.empty()) {
    std::pop_heap(frontier_.begin(), frontier_.end(), later);
    size_t i = frontier_.back();
    frontier_.pop_back();
    if (isLive(h[i])) out[written++] = h[i].id;
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
