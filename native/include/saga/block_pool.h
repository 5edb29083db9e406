// BlockPool: the paged KV cache's bookkeeping. Fixed capacity per tier, flat per-block arrays, a hash
// index for prefix lookup, reference counts, FIFO free queues, and an EvictionOrder that decides which
// cached block goes next. Every mutating call validates its whole batch first and throws saga::Error
// before changing anything: a call either completes or leaves the pool exactly as it was.
//
// Block life: Free -> allocate -> Referenced (refcount >= 1) -> release to 0 -> Cached if it has a hash
// (evictable, keeps its data, found by lookup) or straight back to Free if not (a partial block).
// Cached -> acquire -> Referenced again; Cached -> evicted (by allocate/offload/restore making room, or
// evict) -> Free. Only device blocks are ever referenced; host blocks are always Cached or Free.
//
// Validation order (so that every implementation reports the same error for a batch with several
// faults): element by element in batch order, each element's checks in the order its "Errors:" list
// gives; conditions on the whole batch (OutOfBlocks) after all elements. Counts within a batch
// (releases of one id, appends to one row) accumulate in batch order. Keys -0.0 are stored as +0.0.
// KvCache (TypeScript) checks stateless arguments (array types, lengths, NaN keys) for the whole batch
// before the pool sees it, so through KvCache a NaN key anywhere in a batch is reported first.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "saga/backend.h"
#include "saga/batch_hash_set.h"
#include "saga/hash_index.h"
#include "saga/huge_page_allocator.h"
#include "saga/types.h"

namespace saga {

struct PoolCounts {
  int32_t deviceFree = 0, deviceCached = 0, deviceReferenced = 0;
  int32_t hostFree = 0, hostCached = 0;
};

// A full copy of the pool's observable state, for tests ("nothing changed") and differential runs.
struct PoolState {
  std::vector<BlockHash> hash;        // per block; 0 when free or not yet committed
  std::vector<int32_t> refcount;      // per block
  std::vector<uint8_t> state;         // per block: BlockState
  std::vector<SessionId> session;     // per block; kNoSession when free
  std::vector<int32_t> position;      // per block; 0 when free
  std::vector<double> key;            // per block; 0 when free
  std::vector<BlockId> deviceFreeQueue, hostFreeQueue;  // head first
  std::vector<int32_t> tableLengths;  // per row
  std::vector<BlockId> table;         // rows x cols, -1 where unused
};

class BlockPool {
 public:
  BlockPool(const PoolConfig& config, Backend backend);

  const PoolConfig& config() const { return config_; }
  const std::string& backendName() const { return backend_.name; }
  int32_t blockCount() const { return config_.deviceCapacity + config_.hostCapacity; }
  Tier tierOf(BlockId id) const { return id < config_.deviceCapacity ? Tier::Device : Tier::Host; }
  PoolCounts counts() const { return counts_; }

  // Longest cached prefix: writes the ids of hashes[0..k) and returns k, where hashes[k] is the first
  // hash not cached (in either tier). Changes nothing; host ids in the result need a restore.
  size_t lookup(const BlockHash* hashes, size_t n, BlockId* outIds) const;

  // n new device blocks, refcount 1: block i gets hashes[i] (kNoHash: not full yet, not cached),
  // sessions[i] (>= -1) and positions[i] (>= 0). Free blocks go first (FIFO), then the order's device
  // victims are evicted. A new block's key is 0. Errors: BadArgument (session < -1, then position < 0),
  // DuplicateHash (a hash already cached or repeated earlier in the batch); then OutOfBlocks (free +
  // cached device blocks < n).
  void allocate(const BlockHash* hashes, const SessionId* sessions, const int32_t* positions, size_t n,
                BlockId* outIds);
  // Gives hashes to referenced blocks allocated without one (they became full). Errors: UnknownBlock,
  // BlockState (not referenced, or already hashed), BadArgument (hash 0, then an id repeated earlier in
  // the batch), DuplicateHash.
  void commit(const BlockId* ids, const BlockHash* hashes, size_t n);
  // One more reference each (a repeated id counts twice); a cached block leaves the evictable set.
  // Errors: UnknownBlock (out of range or free), BlockState (a host block: restore it first).
  void acquire(const BlockId* ids, size_t n);
  // One reference fewer each, in order. A block reaching 0 becomes Cached with keys[i] if it has a hash,
  // else Free (to the free queue's tail). Errors: UnknownBlock, BlockState (a host block), BadKey (NaN),
  // DoubleRelease (this element is one release more than the block's references).
  void release(const BlockId* ids, const double* keys, size_t n);

  // Sets the key of each (non-free) block, in order. Errors: UnknownBlock, BadKey.
  void setKeys(const BlockId* ids, const double* keys, size_t n);
  // In order: every non-free block of sessions[i] at position >= minPositions[i] takes keys[i].
  // Returns how many (block, i) updates were made. Errors: BadArgument (session < 0, then
  // minPosition < 0), BadKey.
  int64_t setSessionKeys(const SessionId* sessions, const double* keys, const int32_t* minPositions, size_t n);

  // The first min(k, cached in tier) blocks eviction would take from `tier`, first first. No change.
  size_t victims(Tier tier, size_t k, BlockId* out);
  // Drops cached blocks (either tier): their hashes leave the index, they go to their free queue's tail
  // in order. Errors: UnknownBlock, BlockState (referenced), BadArgument (id repeated earlier in batch).
  void evict(const BlockId* ids, size_t n);
  // Moves cached device blocks to host slots (payload copied), making room in the host tier by evicting
  // its victims first. The device blocks go to the device free queue's tail in order; each keeps its
  // hash, session, position and key. Errors: UnknownBlock, BlockState (on host, then referenced),
  // BadArgument (id repeated earlier in the batch); then OutOfBlocks (n > host capacity).
  void offload(const BlockId* deviceIds, size_t n, BlockId* outHostIds);
  // Moves cached host blocks back to device slots, Cached there (acquire them to use them), making room
  // by evicting device victims first. Errors: UnknownBlock, BlockState (a device block), BadArgument
  // (id repeated earlier in the batch); then OutOfBlocks (free + cached device blocks < n).
  void restore(const BlockId* hostIds, size_t n, BlockId* outDeviceIds);

  // Appends ids[i] to row rows[i], in order. Errors: TableRow (row out of range), UnknownBlock (out of
  // range or free), BlockState (a host block), TableFull (the row, with this batch's earlier appends, is full).
  void tableAppend(const int32_t* rows, const BlockId* ids, size_t n);
  // Shortens row rows[i] to lengths[i], in order. Errors: TableRow, BadArgument (lengths[i] < 0 or longer
  // than the row is after this batch's earlier truncations).
  void tableTruncate(const int32_t* rows, const int32_t* lengths, size_t n);
  // Copies rows (cols entries each, -1 past the length) and their lengths. Errors: TableRow.
  void tableRead(const int32_t* rows, size_t n, BlockId* outIds, int32_t* outLengths);
  uintptr_t tableAddress() const { return backend_.tables->address(); }

  // payloadBytes per id, in order. Errors: BadArgument (no payload configured), then UnknownBlock (out
  // of range or free).
  void writePayload(const BlockId* ids, size_t n, const uint8_t* data);
  void readPayload(const BlockId* ids, size_t n, uint8_t* out);

  PoolState exportState() const;

 private:
  BlockId popFree(Tier tier);
  void pushFree(BlockId id);
  void dropCached(BlockId id);            // Cached -> Free: index, order, free queue
  void dropAll(const BlockId* ids, size_t n);
  void makeRoom(Tier tier, size_t n);     // evicts victims until `n` blocks are free in `tier`
  void moveBlocks(const BlockId* from, const BlockId* to, size_t n);  // across tiers, to[] popped already
  void checkKnown(BlockId id) const;      // in range and not free
  void prefetchBlock(BlockId id) const {  // a hint; ids out of range are skipped (validation reports them)
    if (id >= 0 && id < blockCount()) __builtin_prefetch(&blocks_[id]);
  }
  void prefetchRecords(BlockId id) const {  // the block's record, for writing, and its eviction order entry
    if (id < 0 || id >= blockCount()) return;
    __builtin_prefetch(&blocks_[id], 1);
    backend_.order->prefetch(id);
  }
  void checkKey(double key) const;
  // keys with -0.0 made +0.0 (so both backends order them alike): keys itself unless one is -0.0.
  const double* normalizedKeys(const double* keys, size_t n);
  void checkRow(int32_t row) const;
  // Runs perElement(i) for each element, then BadArgument if ids[i] came earlier in the batch; uses Block::mark.
  template <typename PerElement>
  void checkEach(const BlockId* ids, size_t n, PerElement perElement);
  void clearMarks(const BlockId* ids, size_t n);
  // DuplicateHash if `hash` (element i) is in the index or came earlier in the batch (batchHashes_).
  void checkNewHash(size_t i, BlockHash hash);

  PoolConfig config_;
  Backend backend_;
  HashIndex index_;
  PoolCounts counts_;
  // What the pool keeps about a block, in one record: a block touched at random costs one cache line.
  struct Block {
    BlockHash hash = kNoHash;
    int32_t refcount = 0;
    int32_t mark = 0;  // scratch for batch validation, zero between calls
    SessionId session = kNoSession;
    int32_t position = 0;
    uint8_t state = static_cast<uint8_t>(BlockState::Free);
  };
  FlatArray<Block> blocks_;
  // FIFO free queues as ring buffers, one per tier.
  struct FreeQueue {
    FlatArray<BlockId> ring;
    size_t head = 0, size = 0;
  };
  FreeQueue freeQueues_[2];
  std::vector<int32_t> tableLengths_;
  std::vector<int32_t> rowScratch_;  // per table row, -1 between calls: pending lengths within a batch
  // Reused per-call buffers: victims (and truncated cells' -1s), table rows and columns, normalised keys.
  std::vector<BlockId> scratchIds_;
  std::vector<int32_t> scratchRows_, scratchCols_;
  std::vector<double> keyScratch_;
  BatchHashSet batchHashes_;
  std::vector<size_t> reservedSlots_;  // allocate: the index slot reserved for each element's hash
};

}  // namespace saga
