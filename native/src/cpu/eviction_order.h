// CpuEvictionOrder: the reference eviction order (ascending key, then deeper position, then lower id).
//
// Two structures per tier, merged when read:
// - an in-order list: an intrusive doubly linked list of blocks that became evictable in order (each
//   at or after the list's tail). LRU keys (release times, a request's blocks released tail-first,
//   as vLLM does) always land here, so LRU costs O(1) per operation: vLLM's free-block queue.
// - buckets for the rest (next-use keys arrive in any order): the key space is cut into ranges by a
//   sorted array of bounds, each range a bucket of at most kBucketMax entries, unsorted until a
//   selection reaches it (then sorted, and kept sorted by inserts while it is among the first
//   kSortedHead). Inserting is a binary search over the bounds and an append; a full bucket splits at
//   its median. Removal is lazy: a removed or re-keyed block bumps its stamp, turning its entry stale;
//   a selection drops the stale entries it meets at the front of the buckets it reads (the previous
//   victims, in the evict loop), and every bucket is filtered once stale entries outnumber live ones.
//   So a selection of k reads about k entries in order, and no operation walks a tree of cold lines
//   (the lazy 4-ary heap this replaces paid ~10 dependent cache misses for each stale root it popped).
// Per-session intrusive lists make setSessionKeys proportional to the session's blocks.
#pragma once
#include <climits>
#include <cstdint>
#include <cstring>
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
  // Session -> its list's ends: open addressing with linear probing, at most half full, backward-shift
  // deletion (a std::unordered_map cost a node allocation per new session and a pointer chase per
  // lookup; victims at their session list's ends look sessions up at random). Inserting may move
  // entries (growth), erasing too (the shift): pointers from it live until the next insert or erase.
  class SessionTable {
   public:
    SessionTable() : slots_(64) {}
    SessionEnds* find(SessionId s) {
      for (size_t i = home(s);; i = (i + 1) & mask()) {
        if (slots_[i].session == s) return &slots_[i].ends;
        if (slots_[i].session == kNoSession) return nullptr;
      }
    }
    SessionEnds* insert(SessionId s) {  // s is absent
      if (2 * (size_ + 1) > slots_.size()) grow();
      ++size_;
      size_t i = home(s);
      while (slots_[i].session != kNoSession) i = (i + 1) & mask();
      slots_[i].session = s;
      slots_[i].ends = SessionEnds{};
      return &slots_[i].ends;
    }
    void erase(SessionId s) {  // s is present
      size_t i = home(s);
      while (slots_[i].session != s) i = (i + 1) & mask();
      for (size_t j = (i + 1) & mask(); slots_[j].session != kNoSession; j = (j + 1) & mask()) {
        size_t h = home(slots_[j].session);
        bool between = i <= j ? (h > i && h <= j) : (h > i || h <= j);
        if (!between) {
          slots_[i] = slots_[j];
          i = j;
        }
      }
      slots_[i].session = kNoSession;
      --size_;
    }

   private:
    struct Slot {
      SessionId session = kNoSession;
      SessionEnds ends;
    };
    size_t mask() const { return slots_.size() - 1; }
    size_t home(SessionId s) const {
      uint32_t x = static_cast<uint32_t>(s) * 0x9E3779B1u;
      return (x ^ (x >> 16)) & mask();
    }
    void grow() {
      std::vector<Slot> old(slots_.size() * 2);
      old.swap(slots_);
      for (const Slot& o : old) {
        if (o.session == kNoSession) continue;
        size_t i = home(o.session);
        while (slots_[i].session != kNoSession) i = (i + 1) & mask();
        slots_[i] = o;
      }
    }
    std::vector<Slot> slots_;
    size_t size_ = 0;
  };
  // Where an evictable block's entry lives.
  enum Place : uint8_t { kNotEvictable = 0, kInList = 1, kInBuckets = 2 };
  // The bucket at directory position b (buckets in store[order[b]]) holds the entries e with
  // bounds[b] <= e < bounds[b + 1] (bounds[0] is unused: -infinity), at [begin, entries.size());
  // sorted says whether that range is in order. Buckets live in a stable store (a freed one keeps its
  // capacity for the next split), so the directory moves only ids and bounds.
  // A bound as two words compared as one unsigned 128-bit number in the order's sense: the key's
  // order-preserving bits, then (INT32_MAX - position, id).
  struct Bound {
    uint64_t hi, lo;
  };
  static Bound boundOf(double key, int32_t position, BlockId id) {
    key += 0.0;  // -0.0 and +0.0 are the same key
    uint64_t bits;
    std::memcpy(&bits, &key, sizeof bits);
    bits ^= (bits >> 63) != 0 ? ~uint64_t{0} : uint64_t{1} << 63;
    return Bound{bits, (static_cast<uint64_t>(static_cast<uint32_t>(INT32_MAX - position)) << 32) | static_cast<uint32_t>(id)};
  }
  static constexpr size_t kBucketMax = 2048;  // a bucket splits (around a sampled median) when it holds more
  static constexpr size_t kBucketCapacity = kBucketMax + 1;
  using Entries = std::vector<Entry>;
  struct Bucket {
    Bucket() { entries.reserve(kBucketCapacity); }  // no regrowth: a bucket keeps its buffer, spare ones too
    Entries entries;
    size_t begin = 0;
    bool sorted = true;
    size_t size() const { return entries.size() - begin; }
  };
  struct Tiered {
    std::vector<Bound> bounds = std::vector<Bound>(1, Bound{0, 0});
    std::vector<uint32_t> order = std::vector<uint32_t>(1, 0);
    std::vector<Bucket> store = std::vector<Bucket>(1);
    std::vector<uint32_t> spare;  // store slots not in the directory
    std::vector<Entry> pending;   // entries not yet in a bucket (placed kPendingMax at a time)
    // A guide to the bounds: guide[g] = how many bounds[1..] have a key whose slot (guideSlot) is g or
    // above, so with nb bounds an entry of slot s has its bucket in [nb - guide[s], nb - guide[s + 1]].
    // Counted from the top, a bound added or dropped among the first buckets (where selections split
    // and drop them) updates only the first few slots. Slots cut the keys between two bounds near the
    // ends linearly (farther keys go to the end slots); refitted after a quarter of the bounds changed.
    // Off (plain binary search) for few bounds or no finite range.
    std::vector<uint32_t> guide;
    double guideLow = 0.0, guideScale = 0.0;
    bool guideOn = false;
    size_t guideChanges = 0;
    size_t bucketLive = 0;     // live bucket entries
    size_t bucketEntries = 0;  // all bucket entries; bucketEntries - bucketLive are stale
    BlockId listHead = kNoBlock, listTail = kNoBlock;
    Bucket& at(size_t b) { return store[order[b]]; }
  };
  static constexpr size_t kSortMax = 256;     // a selection splits an unsorted bucket down to this before sorting it
  static constexpr size_t kSortedHead = 4;    // sorted buckets among the first kSortedHead stay sorted on insert
  static constexpr size_t kGuideSlots = 4096;
  static constexpr size_t kPendingMax = 1024;  // entries appended before they are placed in buckets together

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
  bool isLive(const Entry& e) const { return blocks_[e.id].place == kInBuckets && blocks_[e.id].stamp == e.stamp; }
  Tiered& tierOf(BlockId id) { return tiers_[id < deviceCapacity_ ? 0 : 1]; }

  void enter(BlockId id);  // places an evictable block (key_ set) in its tier's list or buckets
  void leave(BlockId id);  // takes it out again
  // 1 when a is at or before b, else 0: integer arithmetic, so searches use it without branching.
  static size_t atOrBefore(const Bound& a, const Bound& b) {
    size_t lt = a.hi < b.hi, eq = a.hi == b.hi, le = a.lo <= b.lo;
    return lt | (eq & le);
  }
  static double keyOf(const Bound& b) {  // boundOf's key back
    uint64_t bits = (b.hi >> 63) != 0 ? b.hi ^ (uint64_t{1} << 63) : ~b.hi;
    double key;
    std::memcpy(&key, &bits, sizeof key);
    return key;
  }
  static size_t guideSlot(const Tiered& t, double key) {
    double s = (key - t.guideLow) * t.guideScale;
    if (!(s >= 0.0)) return 0;
    return s >= static_cast<double>(kGuideSlots) ? kGuideSlots - 1 : static_cast<size_t>(s);
  }
  void rebuildGuide(Tiered& t);
  void guideBoundAdded(Tiered& t, const Bound& bound, int delta);  // +1 inserted, -1 erased
  // How many of bounds[1 + lo .. hi] are at or before key, plus lo: a branch-free binary search.
  static size_t countBounds(const Tiered& t, const Bound& key, size_t lo, size_t hi) {
    const Bound* first = t.bounds.data() + 1 + lo;
    size_t n = hi - lo;
    if (n == 0) return lo;
    size_t base = 0;
    while (n > 1) {
      size_t half = n / 2;
      base += half * atOrBefore(first[base + half], key);
      n -= half;
    }
    return lo + base + atOrBefore(first[base], key);
  }
  static size_t findBucket(const Tiered& t, const Entry& e);  // the directory position whose range holds e
  bool insertEntry(Tiered& t, const Entry& e, size_t b);  // into the bucket at b, which holds e's range; true if it split
  void flushPending(Tiered& t);  // places the pending entries in their buckets
  // Splits the bucket at b into two ranges, the later one a new bucket at b + 1; false if it cannot
  // (every entry equal). Sorted buckets split at the middle, unsorted ones around a sampled median.
  bool splitBucket(Tiered& t, size_t b);
  void sortBucket(Bucket& bucket);
  void dropBucket(Tiered& t, size_t b);  // an empty bucket leaves (its range joins the previous one's)
  void compactIfStale(Tiered& t);  // filters every bucket once stale entries outnumber live ones
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
    uint32_t stamp = 0;  // of the block's live bucket entry
    Place place = kNotEvictable;
    BlockId listPrev = kNoBlock, listNext = kNoBlock;        // the in-order list
    BlockId sessionPrev = kNoBlock, sessionNext = kNoBlock;  // the block's session list
  };
  FlatArray<Block> blocks_;
  SessionTable sessions_;
  SessionId lastSession_ = kNoSession;
  SessionEnds* lastEnds_ = nullptr;  // sessions_'s entry of lastSession_ (batches hold runs of one session); reset when entries move
  Tiered tiers_[2];
  std::vector<Bound> flushKeys_;   // flushPending's scratch
  std::vector<size_t> flushWhere_;
  std::vector<Entry> splitScratch_;  // splitBucket's later half
};

}  // namespace saga
