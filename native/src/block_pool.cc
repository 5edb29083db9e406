#include "saga/block_pool.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "saga/errors.h"

namespace saga {
namespace {

[[noreturn]] void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

std::string at(size_t i) { return "[" + std::to_string(i) + "]"; }

double normalizeKey(double key) { return key + 0.0; }

constexpr BlockId kPendingBlock = -2;  // index value of a hash reserved by an allocate still validating  // -0.0 + 0.0 == +0.0; keeps orders bitwise-equal

}  // namespace

BlockPool::BlockPool(const PoolConfig& config, Backend backend)
    : config_(config), backend_(std::move(backend)), index_(static_cast<size_t>(blockCount())) {
  if (config.deviceCapacity <= 0) fail(ErrorCode::BadArgument, "deviceCapacity must be positive");
  if (config.hostCapacity < 0 || config.payloadBytes < 0 || config.tableRows < 0 || config.tableCols < 0) {
    fail(ErrorCode::BadArgument, "hostCapacity, payloadBytes, tableRows and tableCols must be >= 0");
  }
  blocks_.assign(static_cast<size_t>(blockCount()), Block{});
  for (int t = 0; t < 2; ++t) {
    Tier tier = static_cast<Tier>(t);
    int32_t first = tier == Tier::Device ? 0 : config.deviceCapacity;
    int32_t count = tier == Tier::Device ? config.deviceCapacity : config.hostCapacity;
    FreeQueue& q = freeQueues_[t];
    q.ring.resize(static_cast<size_t>(count));
    for (int32_t i = 0; i < count; ++i) q.ring[static_cast<size_t>(i)] = first + i;
    q.head = 0;
    q.size = static_cast<size_t>(count);
  }
  counts_.deviceFree = config.deviceCapacity;
  counts_.hostFree = config.hostCapacity;
  tableLengths_.assign(static_cast<size_t>(config.tableRows), 0);
  rowScratch_.assign(static_cast<size_t>(config.tableRows), -1);
}

// ---- small helpers ----------------------------------------------------------------------------------

BlockId BlockPool::popFree(Tier tier) {
  FreeQueue& q = freeQueues_[static_cast<int>(tier)];
  BlockId id = q.ring[q.head];
  q.head = q.head + 1 == q.ring.size() ? 0 : q.head + 1;
  --q.size;
  if (tier == Tier::Device) --counts_.deviceFree; else --counts_.hostFree;
  return id;
}

void BlockPool::pushFree(BlockId id) {
  Tier tier = tierOf(id);
  FreeQueue& q = freeQueues_[static_cast<int>(tier)];
  size_t tail = q.head + q.size;
  if (tail >= q.ring.size()) tail -= q.ring.size();
  q.ring[tail] = id;
  ++q.size;
  if (tier == Tier::Device) ++counts_.deviceFree; else ++counts_.hostFree;
}

void BlockPool::dropCached(BlockId id) {
  index_.erase(blocks_[id].hash);
  blocks_[id].hash = kNoHash;
  blocks_[id].state = static_cast<uint8_t>(BlockState::Free);
  blocks_[id].session = kNoSession;
  blocks_[id].position = 0;
  backend_.order->unassign(id);
  if (tierOf(id) == Tier::Device) --counts_.deviceCached; else --counts_.hostCached;
  pushFree(id);
}

void BlockPool::dropAll(const BlockId* ids, size_t n) {
  // The blocks' index slots and order records are scattered: each is requested kAhead blocks before
  // its erase needs it, so the misses of a batch overlap.
  constexpr size_t kAhead = 16;
  auto request = [&](size_t i) {
    index_.prefetchForErase(blocks_[ids[i]].hash);
    backend_.order->prefetch(ids[i]);
  };
  for (size_t i = 0; i < n && i < kAhead; ++i) request(i);
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) request(i + kAhead);
    dropCached(ids[i]);
  }
}

void BlockPool::makeRoom(Tier tier, size_t n) {
  size_t freeNow = static_cast<size_t>(tier == Tier::Device ? counts_.deviceFree : counts_.hostFree);
  if (freeNow >= n) return;
  size_t need = n - freeNow;
  scratchIds_.resize(need);
  size_t got = backend_.order->select(tier, need, scratchIds_.data());
  if (got != need) fail(ErrorCode::Internal, "eviction order returned fewer victims than cached blocks");
  dropAll(scratchIds_.data(), need);
}

void BlockPool::checkKnown(BlockId id) const {
  if (id < 0 || id >= blockCount()) {
    fail(ErrorCode::UnknownBlock, "block " + std::to_string(id) + " is out of range [0, " + std::to_string(blockCount()) + ")");
  }
  if (blocks_[id].state == static_cast<uint8_t>(BlockState::Free)) {
    fail(ErrorCode::UnknownBlock, "block " + std::to_string(id) + " is free (it holds nothing)");
  }
}

void BlockPool::checkKey(double key) const {
  if (std::isnan(key)) fail(ErrorCode::BadKey, "eviction key is NaN");
}

const double* BlockPool::normalizedKeys(const double* keys, size_t n) {
  size_t i = 0;
  while (i < n && !(keys[i] == 0.0 && std::signbit(keys[i]))) ++i;
  if (i == n) return keys;  // the common case: no -0.0, no copy
  keyScratch_.assign(keys, keys + n);
  for (double& k : keyScratch_) k = normalizeKey(k);
  return keyScratch_.data();
}

void BlockPool::checkRow(int32_t row) const {
  if (row < 0 || row >= config_.tableRows) {
    fail(ErrorCode::TableRow, "table row " + std::to_string(row) + " is out of range [0, " + std::to_string(config_.tableRows) + ")");
  }
}

void BlockPool::clearMarks(const BlockId* ids, size_t n) {
  for (size_t i = 0; i < n; ++i) blocks_[ids[i]].mark = 0;
}

template <typename PerElement>
void BlockPool::checkEach(const BlockId* ids, size_t n, PerElement perElement) {
  // Per element: its own checks, then BadArgument if its id came earlier in the batch. Marks are
  // cleared on the way out, error or not.
  // The records of scattered ids (victims) are requested kAhead elements before they are checked.
  constexpr size_t kAhead = 16;
  size_t marked = 0;
  try {
    for (size_t i = 0; i < n && i < kAhead; ++i) prefetchBlock(ids[i]);
    for (size_t i = 0; i < n; ++i) {
      if (i + kAhead < n) prefetchBlock(ids[i + kAhead]);
      perElement(i);
      if (blocks_[ids[i]].mark != 0) fail(ErrorCode::BadArgument, "block " + std::to_string(ids[i]) + " appears twice in the batch" + at(i));
      blocks_[ids[i]].mark = 1;
      marked = i + 1;
    }
  } catch (...) {
    clearMarks(ids, marked);
    throw;
  }
  clearMarks(ids, n);
}

void BlockPool::checkNewHash(size_t i, BlockHash hash) {
  BlockId found = index_.find(hash);
  if (found != kNoBlock) fail(ErrorCode::DuplicateHash, "hash" + at(i) + " is already cached in block " + std::to_string(found));
  if (!batchHashes_.insert(hash)) fail(ErrorCode::DuplicateHash, "hash" + at(i) + " is repeated within the batch");
}

// ---- operations -------------------------------------------------------------------------------------

size_t BlockPool::lookup(const BlockHash* hashes, size_t n, BlockId* outIds) const {
  // Prefetch a window ahead of the probe, so a lookup costs in proportion to the hit, not to n.
  constexpr size_t kAhead = 32;  // measured: 16 -> 13.6, 32 -> 10.2, 64 -> 11.3 ns/block at 1M blocks
  for (size_t i = 0; i < n && i < kAhead; ++i) index_.prefetch(hashes[i]);
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) index_.prefetch(hashes[i + kAhead]);
    BlockId id = hashes[i] == kNoHash ? kNoBlock : index_.find(hashes[i]);
    if (id == kNoBlock) return i;
    outIds[i] = id;
  }
  return n;
}

void BlockPool::allocate(const BlockHash* hashes, const SessionId* sessions, const int32_t* positions, size_t n,
                         BlockId* outIds) {
  constexpr size_t kAhead = 32;  // index slots requested ahead of the probe, as in lookup
  for (size_t i = 0; i < n && i < kAhead; ++i) index_.prefetch(hashes[i]);
  const bool fits = n <= static_cast<size_t>(counts_.deviceFree + counts_.deviceCached);
  if (!fits) {
    // Bound to fail: the first element's error if any (found without touching the index), else OutOfBlocks.
    batchHashes_.begin(n);
    for (size_t i = 0; i < n; ++i) {
      if (sessions[i] < kNoSession) fail(ErrorCode::BadArgument, "sessions" + at(i) + " must be >= -1");
      if (positions[i] < 0) fail(ErrorCode::BadArgument, "positions" + at(i) + " must be >= 0");
      if (hashes[i] != kNoHash) checkNewHash(i, hashes[i]);
    }
    fail(ErrorCode::OutOfBlocks, "allocate needs " + std::to_string(n) + " device blocks; " +
                                     std::to_string(counts_.deviceFree) + " free and " +
                                     std::to_string(counts_.deviceCached) + " cached (evictable)");
  }
  // One index probe per hashed block: each is reserved (id kPendingBlock) as it is validated, so a
  // repeat later in the batch finds it; on an error the reservations so far are erased. The index
  // holds at most blockCount entries plus this batch (n <= blockCount), under half its slots.
  reservedSlots_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) index_.prefetch(hashes[i + kAhead]);
    const char* bad = sessions[i] < kNoSession ? "sessions" : positions[i] < 0 ? "positions" : nullptr;
    BlockId found = kNoBlock;
    if (bad == nullptr && hashes[i] != kNoHash) found = index_.findOrReserve(hashes[i], kPendingBlock, &reservedSlots_[i]);
    if (bad == nullptr && found == kNoBlock) continue;
    for (size_t j = 0; j < i; ++j) {
      if (hashes[j] != kNoHash) index_.erase(hashes[j]);
    }
    if (bad != nullptr) fail(ErrorCode::BadArgument, bad + at(i) + (bad[0] == 's' ? " must be >= -1" : " must be >= 0"));
    if (found == kPendingBlock) fail(ErrorCode::DuplicateHash, "hash" + at(i) + " is repeated within the batch");
    fail(ErrorCode::DuplicateHash, "hash" + at(i) + " is already cached in block " + std::to_string(found));
  }
  // Evictions erase index entries and may shift the reserved ones: then each is found again.
  const bool slotsHeld = static_cast<size_t>(counts_.deviceFree) >= n;
  makeRoom(Tier::Device, n);
  // The free queue says which blocks come next: their records (scattered when they are recent
  // victims) are requested kRecordsAhead blocks before they are written.
  constexpr size_t kRecordsAhead = 16;
  const FreeQueue& q = freeQueues_[static_cast<int>(Tier::Device)];
  auto request = [&](size_t i) {
    size_t at = q.head + i;
    prefetchRecords(q.ring[at >= q.ring.size() ? at - q.ring.size() : at]);
  };
  for (size_t i = 0; i < n && i < kRecordsAhead; ++i) request(i);
  for (size_t i = 0; i < n; ++i) {
    if (i + kRecordsAhead < n) request(kRecordsAhead);  // the head has advanced by i
    BlockId id = popFree(Tier::Device);
    Block& b = blocks_[id];
    b.hash = hashes[i];
    if (hashes[i] != kNoHash) {
      if (slotsHeld) index_.setAt(reservedSlots_[i], id); else index_.put(hashes[i], id);
    }
    b.refcount = 1;
    b.state = static_cast<uint8_t>(BlockState::Referenced);
    b.session = sessions[i];
    b.position = positions[i];
    backend_.order->assign(id, sessions[i], positions[i], 0.0);
    outIds[i] = id;
  }
  counts_.deviceReferenced += static_cast<int32_t>(n);
}

void BlockPool::commit(const BlockId* ids, const BlockHash* hashes, size_t n) {
  batchHashes_.begin(n);
  size_t marked = 0;
  try {
    for (size_t i = 0; i < n; ++i) {
      BlockId id = ids[i];
      checkKnown(id);
      if (blocks_[id].state != static_cast<uint8_t>(BlockState::Referenced)) {
        fail(ErrorCode::BlockState, "block " + std::to_string(id) + " is not referenced: only blocks in use are committed");
      }
      if (blocks_[id].hash != kNoHash) fail(ErrorCode::BlockState, "block " + std::to_string(id) + " already has a hash");
      if (hashes[i] == kNoHash) fail(ErrorCode::BadArgument, "hashes" + at(i) + " is 0, which means no hash");
      if (blocks_[id].mark != 0) fail(ErrorCode::BadArgument, "block " + std::to_string(id) + " appears twice in the batch" + at(i));
      blocks_[id].mark = 1;
      marked = i + 1;
      checkNewHash(i, hashes[i]);
    }
  } catch (...) {
    clearMarks(ids, marked);
    throw;
  }
  clearMarks(ids, n);
  for (size_t i = 0; i < n; ++i) {
    blocks_[ids[i]].hash = hashes[i];
    index_.put(hashes[i], ids[i]);
  }
}

void BlockPool::acquire(const BlockId* ids, size_t n) {
  // A cached chain's records are scattered: each block's record and order entry are requested
  // kAhead blocks before validation reads them (the second pass finds them in cache).
  constexpr size_t kAhead = 16;
  for (size_t i = 0; i < n && i < kAhead; ++i) prefetchRecords(ids[i]);
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) prefetchRecords(ids[i + kAhead]);
    checkKnown(ids[i]);
    if (tierOf(ids[i]) == Tier::Host) {
      fail(ErrorCode::BlockState, "block " + std::to_string(ids[i]) + " is on the host tier: restore it before use");
    }
  }
  for (size_t i = 0; i < n; ++i) {
    BlockId id = ids[i];
    if (blocks_[id].refcount++ == 0) {
      blocks_[id].state = static_cast<uint8_t>(BlockState::Referenced);
      backend_.order->makeUnevictable(id);
      --counts_.deviceCached;
      ++counts_.deviceReferenced;
    }
  }
}

void BlockPool::release(const BlockId* ids, const double* keys, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    BlockId id = ids[i];
    try {
      checkKnown(id);
      if (tierOf(id) == Tier::Host) fail(ErrorCode::BlockState, "block " + std::to_string(id) + " is on the host tier and holds no references");
      checkKey(keys[i]);
      if (++blocks_[id].mark > blocks_[id].refcount) {
        fail(ErrorCode::DoubleRelease, "block " + std::to_string(id) + " released " + std::to_string(blocks_[id].mark) +
                                           " time(s) but holds " + std::to_string(blocks_[id].refcount) + " reference(s)");
      }
    } catch (...) {
      clearMarks(ids, i + (id >= 0 && id < blockCount() && blocks_[id].mark != 0 ? 1 : 0));
      throw;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    BlockId id = ids[i];
    Block& b = blocks_[id];
    b.mark = 0;  // validation's count, cleared on the pass that touches the record anyway
    if (--b.refcount != 0) continue;
    --counts_.deviceReferenced;
    if (b.hash != kNoHash) {
      b.state = static_cast<uint8_t>(BlockState::Cached);
      ++counts_.deviceCached;
      backend_.order->makeEvictable(id, normalizeKey(keys[i]));
    } else {
      b.state = static_cast<uint8_t>(BlockState::Free);
      b.session = kNoSession;
      b.position = 0;
      backend_.order->unassign(id);
      pushFree(id);
    }
  }
}

void BlockPool::setKeys(const BlockId* ids, const double* keys, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    checkKnown(ids[i]);
    checkKey(keys[i]);
  }
  backend_.order->setKeys(ids, normalizedKeys(keys, n), n);
}

int64_t BlockPool::setSessionKeys(const SessionId* sessions, const double* keys, const int32_t* minPositions, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (sessions[i] < 0) fail(ErrorCode::BadArgument, "sessions" + at(i) + " must be >= 0");
    if (minPositions[i] < 0) fail(ErrorCode::BadArgument, "minPositions" + at(i) + " must be >= 0");
    checkKey(keys[i]);
  }
  return backend_.order->setSessionKeys(sessions, normalizedKeys(keys, n), minPositions, n);
}

size_t BlockPool::victims(Tier tier, size_t k, BlockId* out) {
  size_t cached = static_cast<size_t>(tier == Tier::Device ? counts_.deviceCached : counts_.hostCached);
  if (k > cached) k = cached;
  if (k == 0) return 0;
  return backend_.order->select(tier, k, out);
}

void BlockPool::evict(const BlockId* ids, size_t n) {
  checkEach(ids, n, [&](size_t i) {
    checkKnown(ids[i]);
    if (blocks_[ids[i]].state != static_cast<uint8_t>(BlockState::Cached)) {
      fail(ErrorCode::BlockState, "block " + std::to_string(ids[i]) + " is referenced and cannot be evicted");
    }
  });
  dropAll(ids, n);
}

void BlockPool::offload(const BlockId* deviceIds, size_t n, BlockId* outHostIds) {
  checkEach(deviceIds, n, [&](size_t i) {
    BlockId id = deviceIds[i];
    checkKnown(id);
    if (tierOf(id) == Tier::Host) fail(ErrorCode::BlockState, "block " + std::to_string(id) + " is already on the host tier");
    if (blocks_[id].state != static_cast<uint8_t>(BlockState::Cached)) {
      fail(ErrorCode::BlockState, "block " + std::to_string(id) + " is referenced: only cached blocks are offloaded");
    }
  });
  if (n > static_cast<size_t>(config_.hostCapacity)) {
    fail(ErrorCode::OutOfBlocks, "offload of " + std::to_string(n) + " blocks exceeds the host tier's capacity of " +
                                     std::to_string(config_.hostCapacity));
  }
  makeRoom(Tier::Host, n);
  for (size_t i = 0; i < n; ++i) outHostIds[i] = popFree(Tier::Host);
  moveBlocks(deviceIds, outHostIds, n);
}

void BlockPool::restore(const BlockId* hostIds, size_t n, BlockId* outDeviceIds) {
  checkEach(hostIds, n, [&](size_t i) {
    checkKnown(hostIds[i]);
    if (tierOf(hostIds[i]) == Tier::Device) {
      fail(ErrorCode::BlockState, "block " + std::to_string(hostIds[i]) + " is already on the device tier");
    }
  });
  if (n > static_cast<size_t>(counts_.deviceFree + counts_.deviceCached)) {
    fail(ErrorCode::OutOfBlocks, "restore needs " + std::to_string(n) + " device blocks; " +
                                     std::to_string(counts_.deviceFree) + " free and " +
                                     std::to_string(counts_.deviceCached) + " cached (evictable)");
  }
  makeRoom(Tier::Device, n);
  for (size_t i = 0; i < n; ++i) outDeviceIds[i] = popFree(Tier::Device);
  moveBlocks(hostIds, outDeviceIds, n);
}

// Moves cached blocks from[i] -> free slots to[i] (popped already) across tiers.
void BlockPool::moveBlocks(const BlockId* from, const BlockId* to, size_t n) {
  if (config_.payloadBytes > 0) backend_.payload->copy(from, to, n);
  backend_.order->move(from, to, n);
  for (size_t i = 0; i < n; ++i) {
    BlockId src = from[i], dst = to[i];
    blocks_[dst].hash = blocks_[src].hash;
    blocks_[dst].session = blocks_[src].session;
    blocks_[dst].position = blocks_[src].position;
    blocks_[dst].state = static_cast<uint8_t>(BlockState::Cached);
    index_.put(blocks_[dst].hash, dst);
    blocks_[src].hash = kNoHash;
    blocks_[src].session = kNoSession;
    blocks_[src].position = 0;
    blocks_[src].state = static_cast<uint8_t>(BlockState::Free);
    pushFree(src);
    if (tierOf(dst) == Tier::Device) {
      ++counts_.deviceCached;
      --counts_.hostCached;
    } else {
      ++counts_.hostCached;
      --counts_.deviceCached;
    }
  }
}

void BlockPool::tableAppend(const int32_t* rows, const BlockId* ids, size_t n) {
  size_t checked = 0;
  try {
    for (size_t i = 0; i < n; ++i) {
      checkRow(rows[i]);
      checkKnown(ids[i]);
      if (tierOf(ids[i]) == Tier::Host) fail(ErrorCode::BlockState, "block " + std::to_string(ids[i]) + " is on the host tier");
      int32_t& pending = rowScratch_[rows[i]];
      if (pending < 0) pending = tableLengths_[rows[i]];
      if (pending >= config_.tableCols) {
        fail(ErrorCode::TableFull, "table row " + std::to_string(rows[i]) + " is full (" + std::to_string(config_.tableCols) + " blocks)");
      }
      ++pending;
      checked = i + 1;
    }
  } catch (...) {
    for (size_t i = 0; i < checked; ++i) rowScratch_[rows[i]] = -1;
    throw;
  }
  scratchCols_.resize(n);  // the column each append lands in
  for (size_t i = 0; i < n; ++i) {
    rowScratch_[rows[i]] = -1;
    scratchCols_[i] = tableLengths_[rows[i]]++;
  }
  backend_.tables->scatter(rows, scratchCols_.data(), ids, n);
}

void BlockPool::tableTruncate(const int32_t* rows, const int32_t* lengths, size_t n) {
  size_t checked = 0;
  try {
    for (size_t i = 0; i < n; ++i) {
      checkRow(rows[i]);
      int32_t& pending = rowScratch_[rows[i]];
      if (pending < 0) pending = tableLengths_[rows[i]];
      if (lengths[i] < 0 || lengths[i] > pending) {
        fail(ErrorCode::BadArgument, "lengths" + at(i) + " = " + std::to_string(lengths[i]) + " must be in [0, " +
                                         std::to_string(pending) + "], the row's length");
      }
      pending = lengths[i];
      checked = i + 1;
    }
  } catch (...) {
    for (size_t i = 0; i < checked; ++i) rowScratch_[rows[i]] = -1;
    throw;
  }
  // Cells past the new lengths go back to -1, so readers never see stale ids.
  scratchRows_.clear();
  scratchCols_.clear();
  for (size_t i = 0; i < n; ++i) {
    int32_t row = rows[i];
    if (rowScratch_[row] < 0) continue;  // this row was handled at an earlier element
    for (int32_t c = rowScratch_[row]; c < tableLengths_[row]; ++c) {
      scratchRows_.push_back(row);
      scratchCols_.push_back(c);
    }
    tableLengths_[row] = rowScratch_[row];
    rowScratch_[row] = -1;
  }
  if (scratchRows_.empty()) return;
  scratchIds_.assign(scratchRows_.size(), kNoBlock);
  backend_.tables->scatter(scratchRows_.data(), scratchCols_.data(), scratchIds_.data(), scratchRows_.size());
}

void BlockPool::tableRead(const int32_t* rows, size_t n, BlockId* outIds, int32_t* outLengths) {
  for (size_t i = 0; i < n; ++i) checkRow(rows[i]);
  backend_.tables->readRows(rows, n, outIds);
  for (size_t i = 0; i < n; ++i) outLengths[i] = tableLengths_[rows[i]];
}

void BlockPool::writePayload(const BlockId* ids, size_t n, const uint8_t* data) {
  if (config_.payloadBytes == 0) fail(ErrorCode::BadArgument, "this pool has no payload (payloadBytes is 0)");
  for (size_t i = 0; i < n; ++i) checkKnown(ids[i]);
  backend_.payload->write(ids, n, data);
}

void BlockPool::readPayload(const BlockId* ids, size_t n, uint8_t* out) {
  if (config_.payloadBytes == 0) fail(ErrorCode::BadArgument, "this pool has no payload (payloadBytes is 0)");
  for (size_t i = 0; i < n; ++i) checkKnown(ids[i]);
  backend_.payload->read(ids, n, out);
}

PoolState BlockPool::exportState() const {
  PoolState s;
  const size_t blocks = blocks_.size();
  s.hash.resize(blocks);
  s.refcount.resize(blocks);
  s.state.resize(blocks);
  s.session.resize(blocks);
  s.position.resize(blocks);
  for (size_t i = 0; i < blocks; ++i) {
    const Block& b = blocks_[i];
    s.hash[i] = b.hash;
    s.refcount[i] = b.refcount;
    s.state[i] = b.state;
    s.session[i] = b.session;
    s.position[i] = b.position;
  }
  s.key.resize(blocks);
  backend_.order->exportKeys(s.key.data());
  for (int t = 0; t < 2; ++t) {
    const FreeQueue& q = freeQueues_[t];
    std::vector<BlockId>& out = t == 0 ? s.deviceFreeQueue : s.hostFreeQueue;
    out.reserve(q.size);
    for (size_t i = 0; i < q.size; ++i) out.push_back(q.ring[(q.head + i) % q.ring.size()]);
  }
  s.tableLengths = tableLengths_;
  std::vector<int32_t> rows(static_cast<size_t>(config_.tableRows));
  for (int32_t r = 0; r < config_.tableRows; ++r) rows[static_cast<size_t>(r)] = r;
  s.table.assign(static_cast<size_t>(config_.tableRows) * static_cast<size_t>(config_.tableCols), kNoBlock);
  if (!rows.empty() && config_.tableCols > 0) backend_.tables->readRows(rows.data(), rows.size(), s.table.data());
  return s;
}

}  // namespace saga
