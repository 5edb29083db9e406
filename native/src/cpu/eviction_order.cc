#include "eviction_order.h"

#include <algorithm>
#include <cmath>

namespace saga {
CpuEvictionOrder::CpuEvictionOrder(int32_t deviceCapacity, int32_t hostCapacity) : deviceCapacity_(deviceCapacity) {
  size_t blocks = static_cast<size_t>(deviceCapacity) + static_cast<size_t>(hostCapacity);
  blocks_.assign(blocks, Block{});
  for (Tiered& t : tiers_) t.pending.reserve(kPendingMax);
}

// ---- buckets ----------------------------------------------------------------------------------------

size_t CpuEvictionOrder::findBucket(const Tiered& t, const Entry& e) {
  // The number of bounds[1..] at or before e (the bounds are in order), within the guide's range.
  const Bound key = boundOf(e.key, e.position, e.id);
  if (!t.guideOn) return countBounds(t, key, 0, t.bounds.size() - 1);
  const size_t nb = t.bounds.size() - 1, s = guideSlot(t, e.key);
  return countBounds(t, key, nb - t.guide[s], nb - t.guide[s + 1]);
}

void CpuEvictionOrder::rebuildGuide(Tiered& t) {
  t.guideChanges = 0;
  const size_t nb = t.bounds.size() - 1;
  t.guideOn = false;
  if (nb < 64) return;
  double low = keyOf(t.bounds[1 + nb / 32]), high = keyOf(t.bounds[nb - nb / 32]);
  if (!(std::isfinite(low) && std::isfinite(high) && high > low)) return;
  t.guideOn = true;
  t.guideLow = low;
  t.guideScale = static_cast<double>(kGuideSlots) / (high - low);
  if (!std::isfinite(t.guideScale)) {
    t.guideOn = false;
    return;
  }
  t.guide.resize(kGuideSlots + 1);
  size_t j = 1;  // bounds[1..j) have slots below g
  for (size_t g = 0; g <= kGuideSlots; ++g) {
    while (j <= nb && guideSlot(t, keyOf(t.bounds[j])) < g) ++j;
    t.guide[g] = static_cast<uint32_t>(nb - (j - 1));
  }
}

void CpuEvictionOrder::guideBoundAdded(Tiered& t, const Bound& bound, int delta) {
  if (++t.guideChanges > (t.bounds.size() - 1) / 4 + 64 || !t.guideOn) {
    rebuildGuide(t);
    return;
  }
  // The bound counts in every guide[g] with g up to its slot.
  for (size_t g = 0, s = guideSlot(t, keyOf(bound)); g <= s; ++g) t.guide[g] += static_cast<uint32_t>(delta);
}

void CpuEvictionOrder::sortBucket(Bucket& bucket) {
  if (bucket.begin > 0) {
    bucket.entries.erase(bucket.entries.begin(), bucket.entries.begin() + static_cast<std::ptrdiff_t>(bucket.begin));
    bucket.begin = 0;
  }
  std::sort(bucket.entries.begin(), bucket.entries.end(), [](const Entry& a, const Entry& b) { return before(a, b); });
  bucket.sorted = true;
}

bool CpuEvictionOrder::insertEntry(Tiered& t, const Entry& e, size_t b) {
  Bucket& bucket = t.at(b);
  Entries& v = bucket.entries;
  if (bucket.sorted && bucket.size() > 0 && before(e, v.back())) {
    if (b < kSortedHead && bucket.size() < 2 * kSortMax) {
      v.insert(std::upper_bound(v.begin() + static_cast<std::ptrdiff_t>(bucket.begin), v.end(), e,
                                [](const Entry& x, const Entry& y) { return before(x, y); }),
               e);
    } else {
      v.push_back(e);
      bucket.sorted = false;
    }
  } else {
    v.push_back(e);
  }
  return bucket.size() > kBucketMax && splitBucket(t, b);
}

void CpuEvictionOrder::flushPending(Tiered& t) {
  // First every entry's bucket (through the guide, or by binary searches run kGroup in lockstep so
  // their loads overlap instead of each search waiting on its own chain); then the appends. A split shifts the later buckets by one, and the entries of the split bucket
  // compare with its new bound.
  constexpr size_t kGroup = 8;  // measured on 1,024 bounds: 8 lanes 10.8 ns/search, 16 lanes 14.5, one 40
  const size_t total = t.pending.size();
  const Entry* es = t.pending.data();
  std::vector<Bound>& keys = flushKeys_;
  std::vector<size_t>& where = flushWhere_;
  keys.resize(total);
  where.assign(total, 0);
  for (size_t i = 0; i < total; ++i) keys[i] = boundOf(es[i].key, es[i].position, es[i].id);
  if (t.guideOn) {
    // The guide leaves a few bounds to compare at most: one search at a time.
    const size_t nb = t.bounds.size() - 1;
    for (size_t i = 0; i < total; ++i) {
      size_t s = guideSlot(t, es[i].key);
      where[i] = countBounds(t, keys[i], nb - t.guide[s], nb - t.guide[s + 1]);
    }
  } else {
    const Bound* first = t.bounds.data() + 1;
    const size_t len = t.bounds.size() - 1;
    for (size_t g = 0; g < total; g += kGroup) {
      const size_t m = std::min(kGroup, total - g);
      size_t* w = where.data() + g;
      const Bound* k = keys.data() + g;
      if (len > 0) {
        for (size_t n = len; n > 1; n -= n / 2) {
          const size_t half = n / 2;
          for (size_t i = 0; i < m; ++i) w[i] += half * atOrBefore(first[w[i] + half], k[i]);
        }
        for (size_t i = 0; i < m; ++i) w[i] += atOrBefore(first[w[i]], k[i]);
      }
    }
  }
  // The appends: each bucket's record, then its tail, requested a few entries ahead (the buckets are
  // scattered; requesting all of them at once would only queue behind the fill buffers).
  constexpr size_t kTailsAhead = 8, kBucketsAhead = 16;
  auto requestBucket = [&](size_t i) { __builtin_prefetch(&t.at(where[i])); };
  auto requestTail = [&](size_t i) {
    const Bucket& bucket = t.at(where[i]);
    __builtin_prefetch(bucket.entries.data() + bucket.entries.size(), 1);
  };
  for (size_t i = 0; i < total && i < kBucketsAhead; ++i) requestBucket(i);
  for (size_t i = 0; i < total && i < kTailsAhead; ++i) requestTail(i);
  for (size_t i = 0; i < total; ++i) {
    if (i + kBucketsAhead < total) requestBucket(i + kBucketsAhead);
    if (i + kTailsAhead < total) requestTail(i + kTailsAhead);
    const size_t b = where[i];
    if (!insertEntry(t, es[i], b)) continue;
    for (size_t r = i + 1; r < total; ++r) {
      if (where[r] > b) ++where[r];
      else if (where[r] == b) where[r] += atOrBefore(t.bounds[b + 1], keys[r]);
    }
  }
  t.pending.clear();
}

bool CpuEvictionOrder::splitBucket(Tiered& t, size_t b) {
  auto less = [](const Entry& x, const Entry& y) { return before(x, y); };
  size_t into;  // the new bucket's store slot (taken first: emplace_back may move the store)
  if (!t.spare.empty()) {
    into = t.spare.back();
    t.spare.pop_back();
  } else {
    into = t.store.size();
    t.store.emplace_back();
  }
  Bucket& left = t.at(b);
  Bucket& right = t.store[into];
  Entries& v = left.entries;
  Entries& w = right.entries;
  if (left.begin > 0) {
    v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(left.begin));
    left.begin = 0;
  }
  Bound bound;
  if (left.sorted) {
    const size_t mid = v.size() / 2;
    w.assign(v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
    v.resize(mid);
    bound = boundOf(w[0].key, w[0].position, w[0].id);
  } else {
    // Around the median of 15 evenly spaced entries, in one pass that writes each entry to both
    // sides and advances one: no branch on the comparison (it is a coin toss).
    constexpr size_t kSamples = 15;
    Entry samples[kSamples];
    for (size_t i = 0; i < kSamples; ++i) samples[i] = v[i * v.size() / kSamples];
    std::nth_element(samples, samples + kSamples / 2, samples + kSamples, less);
    const Bound pivot = boundOf(samples[kSamples / 2].key, samples[kSamples / 2].position, samples[kSamples / 2].id);
    const size_t n = v.size();
    if (splitScratch_.size() < n) splitScratch_.resize(n);  // written before read: no per-split zeroing
    Entry* high = splitScratch_.data();
    size_t l = 0, r = 0;
    for (size_t i = 0; i < n; ++i) {
      const Entry x = v[i];
      const size_t right = atOrBefore(pivot, boundOf(x.key, x.position, x.id));
      v[l] = x;
      high[r] = x;
      l += 1 - right;
      r += right;
    }
    v.resize(l);
    w.assign(high, high + r);
    bound = pivot;
    if (l == 0) {
      // The pivot is the least entry: every entry went right. Select the middle exactly instead.
      v.swap(w);
      auto cut = v.begin() + static_cast<std::ptrdiff_t>(n / 2);
      std::nth_element(v.begin(), cut, v.end(), less);
      bound = boundOf(cut->key, cut->position, cut->id);
      if (!before(*std::min_element(v.begin(), cut, less), *cut)) {  // every entry equal (one block's stale copies): nothing to split
        w.clear();
        t.spare.push_back(static_cast<uint32_t>(into));
        return false;
      }
      w.assign(cut, v.end());
      v.erase(cut, v.end());
    }
  }
  // Every entry of the left part is at or before the bound, every entry of the right part at or after it.
  right.begin = 0;
  right.sorted = left.sorted;
  t.bounds.insert(t.bounds.begin() + static_cast<std::ptrdiff_t>(b) + 1, bound);
  t.order.insert(t.order.begin() + static_cast<std::ptrdiff_t>(b) + 1, static_cast<uint32_t>(into));
  guideBoundAdded(t, bound, +1);
  return true;
}

void CpuEvictionOrder::dropBucket(Tiered& t, size_t b) {
  Bucket& bucket = t.at(b);
  bucket.entries.clear();
  bucket.begin = 0;
  bucket.sorted = true;
  if (t.order.size() == 1) return;
  t.spare.push_back(t.order[b]);
  t.order.erase(t.order.begin() + static_cast<std::ptrdiff_t>(b));
  // Bucket b's range joins bucket b - 1's; when b is 0, bucket 1 becomes the first (its bound unused).
  const size_t gone = b == 0 ? 1 : b;
  const Bound bound = t.bounds[gone];
  t.bounds.erase(t.bounds.begin() + static_cast<std::ptrdiff_t>(gone));
  guideBoundAdded(t, bound, -1);
}

void CpuEvictionOrder::compactIfStale(Tiered& t) {
  // Amortised O(1) per operation: the buckets stay under twice their live entries.
  if (t.bucketEntries <= 2 * t.bucketLive + 64) return;
  // Each entry's liveness is its block's record, scattered: requested kAhead entries before it is read.
  constexpr size_t kAhead = 16;
  auto keepLive = [this](std::vector<Entry>& v, size_t from) {
    const size_t n = v.size();
    for (size_t i = from; i < n && i < from + kAhead; ++i) __builtin_prefetch(&blocks_[v[i].id]);
    size_t w = 0;
    for (size_t i = from; i < n; ++i) {
      if (i + kAhead < n) __builtin_prefetch(&blocks_[v[i + kAhead].id]);
      if (isLive(v[i])) v[w++] = v[i];
    }
    v.resize(w);
  };
  keepLive(t.pending, 0);
  for (uint32_t slot : t.order) {
    Bucket& bucket = t.store[slot];
    keepLive(bucket.entries, bucket.begin);
    bucket.begin = 0;
  }
  // Neighbours that fit in half a bucket together merge (two adjacent ranges concatenated stay in order).
  size_t out = 0;
  for (size_t b = 1; b < t.order.size(); ++b) {
    Bucket& into = t.at(out);
    Bucket& next = t.at(b);
    if (into.entries.size() + next.entries.size() <= kBucketMax / 2) {
      into.entries.insert(into.entries.end(), next.entries.begin(), next.entries.end());
      into.sorted = into.sorted && next.sorted;
      next.entries.clear();
      next.sorted = true;
      t.spare.push_back(t.order[b]);
      continue;
    }
    ++out;
    t.order[out] = t.order[b];
    t.bounds[out] = t.bounds[b];
  }
  t.order.resize(out + 1);
  t.bounds.resize(out + 1);
  rebuildGuide(t);
  t.bucketEntries = t.bucketLive;
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
  blocks_[id].place = kInBuckets;
  ++t.bucketLive;
  ++t.bucketEntries;
  t.pending.push_back(Entry{blocks_[id].key, blocks_[id].position, id, ++blocks_[id].stamp});
  if (t.pending.size() >= kPendingMax) flushPending(t);
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
  blocks_[id].place = kNotEvictable;  // the bucket entry turns stale
  --t.bucketLive;
  compactIfStale(t);
}

// ---- sessions ---------------------------------------------------------------------------------------

CpuEvictionOrder::SessionEnds* CpuEvictionOrder::sessionEnds(SessionId s, bool create) {
  if (s == lastSession_ && lastEnds_ != nullptr) return lastEnds_;
  SessionEnds* ends = sessions_.find(s);
  if (ends == nullptr) {
    if (!create) return nullptr;
    ends = sessions_.insert(s);  // may move entries: the cached one too, replaced just below
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
    lastEnds_ = nullptr;  // the erase may move entries
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
  // Merge two sorted streams: the in-order list from its head, and the buckets in order, each joined
  // by the pending entries of its range and sorted when first reached (an unsorted one split down to
  // kSortMax entries first, so a selection sorts about what it reads). Stale entries at a bucket's
  // front are dropped on the way, and buckets left empty leave the directory (physical cleanup only:
  // nothing observable changes).
  constexpr size_t kAhead = 8;  // blocks' records requested ahead of their liveness check
  size_t b = 0, j = 0;          // the bucket stream's position: directory position b, entry j
  size_t horizon = 0, near = 0;  // pending[0, near) are the pending entries before bounds[horizon]
  bool atFront = true;          // every entry of bucket b before j was dropped or emitted by this call
  auto enterBucket = [&]() {
    // Pending entries of this bucket's range join it first (those of earlier ranges already did).
    // The pending list is split once at a horizon (the bound after the buckets holding about 2k
    // entries), so each bucket scans only the entries before it; past the horizon, again.
    if (!t.pending.empty()) {
      if (b >= horizon) {
        horizon = b + 1;
        for (size_t held = 0; horizon < t.order.size() && held < 2 * k; ++horizon) held += t.at(horizon - 1).size();
        near = horizon >= t.order.size()
                   ? t.pending.size()
                   : static_cast<size_t>(std::partition(t.pending.begin(), t.pending.end(),
                                                        [&, hb = t.bounds[horizon]](const Entry& e) {
                                                          return !atOrBefore(hb, boundOf(e.key, e.position, e.id));
                                                        }) -
                                         t.pending.begin());
      }
      Bucket& bucket = t.at(b);
      const auto first = t.pending.begin(), end = first + static_cast<std::ptrdiff_t>(near);
      auto later = end;
      if (b + 1 < t.order.size()) {
        const Bound next = t.bounds[b + 1];
        later = std::partition(first, end, [&](const Entry& e) { return !atOrBefore(next, boundOf(e.key, e.position, e.id)); });
      }
      if (later != first) {
        bucket.entries.insert(bucket.entries.end(), first, later);
        bucket.sorted = false;
        near -= static_cast<size_t>(later - first);
        t.pending.erase(first, later);
      }
    }
    if (!t.at(b).sorted) {
      while (t.at(b).size() > kSortMax && splitBucket(t, b)) ++horizon;  // a bound before the horizon's
      sortBucket(t.at(b));
    }
    const Bucket& bucket = t.at(b);
    j = bucket.begin;
    atFront = true;
    for (size_t a = j; a < bucket.entries.size() && a < j + kAhead; ++a) __builtin_prefetch(&blocks_[bucket.entries[a].id]);
  };
  enterBucket();
  BlockId cursor = t.listHead;
  size_t written = 0;
  while (written < k) {
    // Bring the bucket stream to a live entry.
    const Entry* top = nullptr;
    while (b < t.order.size()) {
      Bucket& bucket = t.at(b);
      const Entries& v = bucket.entries;
      while (j < v.size()) {
        if (j + kAhead < v.size()) __builtin_prefetch(&blocks_[v[j + kAhead].id]);
        if (isLive(v[j])) break;
        if (atFront) {
          bucket.begin = j + 1;
          --t.bucketEntries;
        }
        ++j;
      }
      if (j < v.size()) {
        top = &v[j];
        break;
      }
      if (atFront && bucket.size() == 0 && t.order.size() > 1) {
        dropBucket(t, b);  // the bucket after it moves to b
        if (horizon > 0) --horizon;  // b < horizon: the horizon's bound moved down one
      } else {
        ++b;
      }
      if (b < t.order.size()) enterBucket();
    }
    if (cursor == kNoBlock && top == nullptr) break;
    if (cursor != kNoBlock &&
        (top == nullptr || !before(top->key, top->position, top->id, blocks_[cursor].key, blocks_[cursor].position, cursor))) {
      out[written++] = cursor;
      cursor = blocks_[cursor].listNext;
      continue;
    }
    out[written++] = top->id;
    ++j;
    atFront = false;
  }
  return written;
}

void CpuEvictionOrder::exportKeys(double* out) {
  for (size_t i = 0; i < blocks_.size(); ++i) out[i] = blocks_[i].key;
}

}  // namespace saga
