// Differential test of the block core, no Node needed.
//
// 1. Pool runs: seeded random sequences of every BlockPool operation (valid calls, capacity failures and
//    deliberately bad calls with one fault each) on a CPU-backend pool, checking after each step that
//    errors carry the expected code and change nothing, counts add up, free queues hold exactly the free
//    blocks, every hashed block is found by lookup, victims() equals a brute-force sort of the cached
//    blocks by (key, -position, id), payload bytes follow writes and tier moves, and table rows hold -1
//    past their length. Where CUDA is available the same sequence runs on a CUDA-backend pool in
//    lockstep: every output and error must be equal, and periodically the whole exportState(), the full
//    victim lists and every payload.
// 2. Order runs: the EvictionOrder interface driven directly with hundreds of thousands of blocks (so the
//    CUDA selection runs multi-block grids and deep tie-breaking), against a model and, where available,
//    the CUDA order.
//
// Prints one summary line; exits non-zero on any mismatch.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "saga/backend.h"
#include "saga/block_pool.h"
#include "saga/errors.h"

using namespace saga;

namespace {

// ---- utilities ----------------------------------------------------------------------------------------

class Rng {  // splitmix64: deterministic on every platform
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x2545F4914F6CDD1DULL + 0x1234567ULL) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint32_t below(size_t n) { return n == 0 ? 0 : static_cast<uint32_t>(next() % n); }
  int range(int lo, int hi) { return lo + static_cast<int>(below(static_cast<size_t>(hi - lo + 1))); }  // inclusive
  bool chance(double p) { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0) < p; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }

 private:
  uint64_t s_;
};

constexpr double kInf = std::numeric_limits<double>::infinity();

// Keys drawn so that ties are frequent, with the awkward values (+-0, +-Inf, subnormals, huge).
double drawKey(Rng& r) {
  static const double kKeys[] = {0.0,  1.0,     2.0,      3.0,     1.0,     2.0,    -1.0,
                                 0.5,  -0.0,    kInf,     -kInf,   1e300,   -1e300, 5e-324,
                                 -5e-324, 1.0000000000000002, 42.0, 7.0, 7.0};
  if (r.chance(0.8)) return kKeys[r.below(sizeof kKeys / sizeof kKeys[0])];
  return static_cast<double>(r.range(0, 2000)) / 8.0 - 100.0;
}

bool sameBits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

std::string fmtKey(double k) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g%s", k, (k == 0.0 && std::signbit(k)) ? "(-0)" : "");
  return buf;
}

template <class T>
std::string fmtVec(const std::vector<T>& v, size_t limit = 24) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < v.size() && i < limit; ++i) o << (i ? "," : "") << v[i];
  if (v.size() > limit) o << ",...(" << v.size() << ")";
  o << "]";
  return o.str();
}

// First difference between two pool states, or "".
std::string diffStates(const PoolState& a, const PoolState& b) {
  auto cmp = [](const char* what, const auto& x, const auto& y) -> std::string {
    if (x.size() != y.size()) return std::string(what) + ": sizes " + std::to_string(x.size()) + " vs " + std::to_string(y.size());
    for (size_t i = 0; i < x.size(); ++i) {
      if (!(x[i] == y[i])) {
        std::ostringstream o;
        o << what << "[" << i << "]: " << +x[i] << " vs " << +y[i];
        return o.str();
      }
    }
    return "";
  };
  std::string d;
  if (!(d = cmp("hash", a.hash, b.hash)).empty()) return d;
  if (!(d = cmp("refcount", a.refcount, b.refcount)).empty()) return d;
  if (!(d = cmp("state", a.state, b.state)).empty()) return d;
  if (!(d = cmp("session", a.session, b.session)).empty()) return d;
  if (!(d = cmp("position", a.position, b.position)).empty()) return d;
  if (a.key.size() != b.key.size()) return "key: sizes differ";
  for (size_t i = 0; i < a.key.size(); ++i) {
    if (!sameBits(a.key[i], b.key[i])) return "key[" + std::to_string(i) + "]: " + fmtKey(a.key[i]) + " vs " + fmtKey(b.key[i]);
  }
  if (!(d = cmp("deviceFreeQueue", a.deviceFreeQueue, b.deviceFreeQueue)).empty()) return d;
  if (!(d = cmp("hostFreeQueue", a.hostFreeQueue, b.hostFreeQueue)).empty()) return d;
  if (!(d = cmp("tableLengths", a.tableLengths, b.tableLengths)).empty()) return d;
  if (!(d = cmp("table", a.table, b.table)).empty()) return d;
  return "";
}

bool sameCounts(const PoolCounts& a, const PoolCounts& b) {
  return a.deviceFree == b.deviceFree && a.deviceCached == b.deviceCached && a.deviceReferenced == b.deviceReferenced &&
         a.hostFree == b.hostFree && a.hostCached == b.hostCached;
}

std::string fmtCounts(const PoolCounts& c) {
  std::ostringstream o;
  o << "{deviceFree " << c.deviceFree << ", deviceCached " << c.deviceCached << ", deviceReferenced " << c.deviceReferenced
    << ", hostFree " << c.hostFree << ", hostCached " << c.hostCached << "}";
  return o.str();
}

// Cached blocks of ids in eviction order: key ascending, deeper position first, then lower id.
void sortEvictionOrder(std::vector<BlockId>& ids, const std::vector<double>& key, const std::vector<int32_t>& position) {
  std::sort(ids.begin(), ids.end(), [&](BlockId a, BlockId b) {
    if (key[a] != key[b]) return key[a] < key[b];
    if (position[a] != position[b]) return position[a] > position[b];
    return a < b;
  });
}

// ---- operations -----------------------------------------------------------------------------------------

struct Outcome {
  bool threw = false;
  ErrorCode code = ErrorCode::Internal;
  std::string message;
  std::vector<int64_t> values;  // every output of the call, flattened
  void add(int64_t v) { values.push_back(v); }
};

std::string fmtOutcome(const Outcome& o) {
  if (o.threw) return std::string("threw ") + errorCodeName(o.code) + " (" + o.message + ")";
  return "returned " + fmtVec(o.values, 40);
}

using OpFn = std::function<void(BlockPool&, Outcome&)>;

struct Op {
  std::string name;
  OpFn run;
  bool expectError = false;
  ErrorCode expected = ErrorCode::Internal;
  std::function<void(const Outcome&)> onSuccess;  // model updates (payload)
  std::function<std::string(const Outcome&)> verify;  // CPU-side checks of the outputs, "" when right
  void fail(ErrorCode code, const std::string& why) {
    expectError = true;
    expected = code;
    name += " [bad: " + why + "]";
  }
};

Outcome runOp(BlockPool& pool, const OpFn& fn) {
  Outcome o;
  try {
    fn(pool, o);
  } catch (const Error& e) {
    o.threw = true;
    o.code = e.code();
    o.message = e.what();
    o.values.clear();
  } catch (const std::exception& e) {
    o.threw = true;
    o.code = ErrorCode::Internal;
    o.message = std::string("non-saga exception: ") + e.what();
    o.values.clear();
  }
  return o;
}

// The pool's blocks sorted into the categories the generator draws from.
struct View {
  explicit View(const PoolState& s, const PoolConfig& c) : state(s), config(c) {
    for (BlockId id = 0; id < static_cast<BlockId>(s.state.size()); ++id) {
      const bool device = id < c.deviceCapacity;
      const auto st = static_cast<BlockState>(s.state[id]);
      if (st == BlockState::Free) {
        (device ? deviceFree : hostFree).push_back(id);
        continue;
      }
      nonFree.push_back(id);
      if (device) deviceNonFree.push_back(id);
      if (s.hash[id] != kNoHash) {
        hashed.push_back(id);
      }
      if (st == BlockState::Cached) {
        (device ? deviceCached : hostCached).push_back(id);
        cached.push_back(id);
      } else {
        referenced.push_back(id);
        if (s.hash[id] == kNoHash) unhashedReferenced.push_back(id);
      }
    }
  }
  const PoolState& state;
  const PoolConfig& config;
  std::vector<BlockId> deviceFree, hostFree, deviceCached, hostCached, cached, referenced, unhashedReferenced, nonFree,
      deviceNonFree, hashed;
  std::vector<BlockId> allFree() const {
    std::vector<BlockId> v = deviceFree;
    v.insert(v.end(), hostFree.begin(), hostFree.end());
    return v;
  }
};

// Distinct picks from a list.
std::vector<BlockId> pickDistinct(Rng& rng, std::vector<BlockId> from, size_t n) {
  for (size_t i = 0; i < n && i < from.size(); ++i) std::swap(from[i], from[i + rng.below(from.size() - i)]);
  from.resize(std::min(n, from.size()));
  return from;
}

class Generator {
 public:
  Generator(uint64_t seed, const PoolConfig& config, int maxBatch, std::vector<std::vector<uint8_t>>* payloadModel)
      : rng_(seed), config_(config), maxBatch_(maxBatch), payload_(payloadModel) {}

  Op next(const View& v) {
    // Weighted choice; a generator that has nothing to work on falls through to victims().
    static const struct {
      int weight;
      Op (Generator::*gen)(const View&);
    } kOps[] = {
        {14, &Generator::allocate}, {6, &Generator::commit},   {10, &Generator::acquire},    {14, &Generator::release},
        {6, &Generator::setKeys},   {6, &Generator::setSessionKeys}, {8, &Generator::victims}, {4, &Generator::evict},
        {6, &Generator::offload},   {6, &Generator::restore},  {5, &Generator::tableAppend}, {3, &Generator::tableTruncate},
        {3, &Generator::tableRead}, {4, &Generator::writePayload}, {4, &Generator::readPayload}, {5, &Generator::lookup},
    };
    int total = 0;
    for (const auto& o : kOps) total += o.weight;
    int r = rng_.range(0, total - 1);
    for (const auto& o : kOps) {
      if (r < o.weight) {
        Op op = (this->*o.gen)(v);
        if (op.run) return op;
        return victims(v);
      }
      r -= o.weight;
    }
    return victims(v);
  }

 private:
  BlockHash freshHash() { return 0x9E3779B97F4A7C15ULL * (++hashCounter_) ^ 0x5bd1e995ULL; }
  int batch() { return rng_.range(1, maxBatch_); }
  bool bad() { return rng_.chance(0.15); }
  BlockId outOfRange() { return rng_.chance(0.5) ? -1 - static_cast<BlockId>(rng_.below(3)) : config_.deviceCapacity + config_.hostCapacity + static_cast<BlockId>(rng_.below(3)); }

  Op allocate(const View& v) {
    const int n = rng_.range(1, std::max(1, maxBatch_));
    std::vector<BlockHash> hashes(n);
    std::vector<SessionId> sessions(n);
    std::vector<int32_t> positions(n);
    for (int i = 0; i < n; ++i) {
      hashes[i] = rng_.chance(0.2) ? kNoHash : freshHash();
      sessions[i] = rng_.range(-1, 5);
      positions[i] = rng_.range(0, 6);
    }
    Op op;
    op.name = "allocate(" + std::to_string(n) + ")";
    const size_t avail = v.deviceFree.size() + v.deviceCached.size();
    if (bad()) {
      const int i = static_cast<int>(rng_.below(n));
      switch (rng_.range(0, 3)) {
        case 0:
          if (!v.hashed.empty()) {
            hashes[i] = v.state.hash[rng_.pick(v.hashed)];
            op.fail(ErrorCode::DuplicateHash, "hash already cached");
          }
          break;
        case 1:
          if (n >= 2) {
            int j = (i + 1 + static_cast<int>(rng_.below(n - 1))) % n;
            hashes[i] = hashes[j] = freshHash();
            op.fail(ErrorCode::DuplicateHash, "hash repeated in batch");
          }
          break;
        case 2:
          positions[i] = -1 - static_cast<int32_t>(rng_.below(3));
          op.fail(ErrorCode::BadArgument, "negative position");
          break;
        default:
          sessions[i] = -2 - static_cast<SessionId>(rng_.below(5));
          op.fail(ErrorCode::BadArgument, "session < -1");
          break;
      }
    }
    if (!op.expectError && static_cast<size_t>(n) > avail) op.fail(ErrorCode::OutOfBlocks, "more than free + cached");
    op.run = [=](BlockPool& p, Outcome& o) {
      std::vector<BlockId> ids(n, -7);
      p.allocate(hashes.data(), sessions.data(), positions.data(), n, ids.data());
      for (BlockId id : ids) o.add(id);
    };
    return op;
  }

  Op commit(const View& v) {
    Op op;
    if (v.unhashedReferenced.empty()) return op;
    std::vector<BlockId> ids = pickDistinct(rng_, v.unhashedReferenced, rng_.range(1, 3));
    std::vector<BlockHash> hashes(ids.size());
    for (auto& h : hashes) h = freshHash();
    op.name = "commit(" + std::to_string(ids.size()) + ")";
    if (bad()) {
      const size_t i = rng_.below(ids.size());
      switch (rng_.range(0, 5)) {
        case 0:
          hashes[i] = kNoHash;
          op.fail(ErrorCode::BadArgument, "hash 0");
          break;
        case 1:
          if (!v.hashed.empty()) {
            ids[i] = rng_.pick(v.hashed);
            op.fail(ErrorCode::BlockState, "already hashed or cached");
          }
          break;
        case 2:
          ids.push_back(ids[i]);
          hashes.push_back(freshHash());
          op.fail(ErrorCode::BadArgument, "repeated id");
          break;
        case 3:
          if (!v.hashed.empty()) {
            hashes[i] = v.state.hash[rng_.pick(v.hashed)];
            op.fail(ErrorCode::DuplicateHash, "hash already cached");
          }
          break;
        case 4: {
          std::vector<BlockId> fr = v.allFree();
          if (!fr.empty()) {
            ids[i] = rng_.pick(fr);
            op.fail(ErrorCode::UnknownBlock, "free block");
          }
          break;
        }
        default:
          ids[i] = outOfRange();
          op.fail(ErrorCode::UnknownBlock, "id out of range");
          break;
      }
    }
    op.run = [=](BlockPool& p, Outcome&) { p.commit(ids.data(), hashes.data(), ids.size()); };
    return op;
  }

  Op acquire(const View& v) {
    Op op;
    std::vector<BlockId> candidates = v.deviceCached;
    candidates.insert(candidates.end(), v.referenced.begin(), v.referenced.end());
    if (candidates.empty()) return op;
    std::vector<BlockId> ids(static_cast<size_t>(rng_.range(1, std::max(1, maxBatch_ / 2))));
    for (auto& id : ids) id = rng_.pick(candidates);
    op.name = "acquire(" + std::to_string(ids.size()) + ")";
    if (bad()) {
      const size_t i = rng_.below(ids.size());
      switch (rng_.range(0, 2)) {
        case 0:
          if (!v.hostCached.empty()) {
            ids[i] = rng_.pick(v.hostCached);
            op.fail(ErrorCode::BlockState, "host block");
          }
          break;
        case 1: {
          std::vector<BlockId> fr = v.allFree();
          if (!fr.empty()) {
            ids[i] = rng_.pick(fr);
            op.fail(ErrorCode::UnknownBlock, "free block");
          }
          break;
        }
        default:
          ids[i] = outOfRange();
          op.fail(ErrorCode::UnknownBlock, "id out of range");
          break;
      }
    }
    op.run = [=](BlockPool& p, Outcome&) { p.acquire(ids.data(), ids.size()); };
    return op;
  }

  Op release(const View& v) {
    Op op;
    if (v.referenced.empty()) return op;
    std::vector<int32_t> left(v.state.refcount);
    std::vector<BlockId> ids;
    const int n = batch();
    if (rng_.chance(0.5)) {
      // A request finishing: all references of a few blocks, deepest position first (vLLM's tail-first).
      std::vector<BlockId> blocks = pickDistinct(rng_, v.referenced, static_cast<size_t>(n));
      std::sort(blocks.begin(), blocks.end(), [&](BlockId a, BlockId b) { return v.state.position[a] > v.state.position[b]; });
      for (BlockId b : blocks) {
        for (int32_t r = 0; r < v.state.refcount[b]; ++r) ids.push_back(b);  // every reference
      }
    } else {
      for (int i = 0; i < n; ++i) {
        BlockId b = rng_.pick(v.referenced);
        if (left[b] == 0) continue;
        --left[b];
        ids.push_back(b);
      }
    }
    if (ids.empty()) ids.push_back(v.referenced.front());
    std::vector<double> keys(ids.size());
    for (auto& k : keys) k = drawKey(rng_);
    op.name = "release(" + std::to_string(ids.size()) + ")";
    if (bad()) {
      const size_t i = rng_.below(ids.size());
      switch (rng_.range(0, 3)) {
        case 0: {
          BlockId b = ids[i];
          int32_t inBatch = static_cast<int32_t>(std::count(ids.begin(), ids.end(), b));
          for (int32_t extra = v.state.refcount[b] - inBatch + 1; extra > 0; --extra) {
            ids.push_back(b);
            keys.push_back(drawKey(rng_));
          }
          op.fail(ErrorCode::DoubleRelease, "more releases than references");
          break;
        }
        case 1:
          keys[i] = std::numeric_limits<double>::quiet_NaN();
          op.fail(ErrorCode::BadKey, "NaN key");
          break;
        case 2:
          if (!v.hostCached.empty()) {
            ids[i] = rng_.pick(v.hostCached);
            op.fail(ErrorCode::BlockState, "host block");
          }
          break;
        default: {
          std::vector<BlockId> fr = v.allFree();
          if (!fr.empty()) {
            ids[i] = rng_.pick(fr);
            op.fail(ErrorCode::UnknownBlock, "free block");
          }
          break;
        }
      }
    }
    op.run = [=](BlockPool& p, Outcome&) { p.release(ids.data(), keys.data(), ids.size()); };
    return op;
  }

  Op setKeys(const View& v) {
    Op op;
    if (v.nonFree.empty()) return op;
    std::vector<BlockId> ids(static_cast<size_t>(batch()));
    for (auto& id : ids) id = rng_.pick(v.nonFree);  // repeats allowed: the last key wins
    std::vector<double> keys(ids.size());
    for (auto& k : keys) k = drawKey(rng_);
    op.name = "setKeys(" + std::to_string(ids.size()) + ")";
    if (bad()) {
      const size_t i = rng_.below(ids.size());
      switch (rng_.range(0, 2)) {
        case 0: {
          std::vector<BlockId> fr = v.allFree();
          if (!fr.empty()) {
            ids[i] = rng_.pick(fr);
            op.fail(ErrorCode::UnknownBlock, "free block");
          }
          break;
        }
        case 1:
          keys[i] = std::numeric_limits<double>::quiet_NaN();
          op.fail(ErrorCode::BadKey, "NaN key");
          break;
        default:
          ids[i] = outOfRange();
          op.fail(ErrorCode::UnknownBlock, "id out of range");
          break;
      }
    }
    op.run = [=](BlockPool& p, Outcome&) { p.setKeys(ids.data(), keys.data(), ids.size()); };
    return op;
  }

  Op setSessionKeys(const View& v) {
    const int n = rng_.range(1, 4);
    std::vector<SessionId> sessions(n);
    std::vector<double> keys(n);
    std::vector<int32_t> minPositions(n);
    for (int i = 0; i < n; ++i) {
      sessions[i] = rng_.range(0, 5);
      keys[i] = drawKey(rng_);
      minPositions[i] = rng_.chance(0.5) ? 0 : rng_.range(0, 7);
    }
    Op op;
    op.name = "setSessionKeys(" + std::to_string(n) + ")";
    if (bad()) {
      const int i = static_cast<int>(rng_.below(n));
      switch (rng_.range(0, 2)) {
        case 0:
          sessions[i] = -1 - static_cast<SessionId>(rng_.below(3));
          op.fail(ErrorCode::BadArgument, "negative session");
          break;
        case 1:
          minPositions[i] = -1 - static_cast<int32_t>(rng_.below(3));
          op.fail(ErrorCode::BadArgument, "negative minPosition");
          break;
        default:
          keys[i] = std::numeric_limits<double>::quiet_NaN();
          op.fail(ErrorCode::BadKey, "NaN key");
          break;
      }
    }
    op.run = [=](BlockPool& p, Outcome& o) { o.add(p.setSessionKeys(sessions.data(), keys.data(), minPositions.data(), n)); };
    // Brute force over the state before the call: matches of (block, i), the last i wins.
    const PoolState s = v.state;
    op.verify = [=](const Outcome& o) -> std::string {
      int64_t expect = 0;
      for (size_t b = 0; b < s.state.size(); ++b) {
        if (s.state[b] == static_cast<uint8_t>(BlockState::Free)) continue;
        for (int i = 0; i < n; ++i) {
          if (s.session[b] == sessions[i] && s.position[b] >= minPositions[i]) ++expect;
        }
      }
      if (o.values.size() != 1 || o.values[0] != expect) return "setSessionKeys count " + fmtVec(o.values) + ", brute force " + std::to_string(expect);
      return "";
    };
    return op;
  }

  Op victims(const View& v) {
    const Tier tier = rng_.chance(0.7) ? Tier::Device : Tier::Host;
    const size_t cached = tier == Tier::Device ? v.deviceCached.size() : v.hostCached.size();
    const size_t k = rng_.chance(0.2) ? cached + rng_.below(4) : rng_.below(cached + 2);
    Op op;
    op.name = std::string("victims(") + (tier == Tier::Device ? "device" : "host") + ", " + std::to_string(k) + ")";
    op.run = [=](BlockPool& p, Outcome& o) {
      std::vector<BlockId> out(k + 1, -7);
      size_t got = p.victims(tier, k, out.data());
      o.add(static_cast<int64_t>(got));
      for (size_t i = 0; i < got; ++i) o.add(out[i]);
    };
    std::vector<BlockId> expect = tier == Tier::Device ? v.deviceCached : v.hostCached;
    sortEvictionOrder(expect, v.state.key, v.state.position);
    expect.resize(std::min(k, expect.size()));
    op.verify = [expect](const Outcome& o) -> std::string {
      std::vector<int64_t> want{static_cast<int64_t>(expect.size())};
      for (BlockId id : expect) want.push_back(id);
      if (o.values != want) return "victims " + fmtVec(o.values) + ", brute force " + fmtVec(want);
      return "";
    };
    return op;
  }

  Op evict(const View& v) {
    Op op;
    if (v.cached.empty()) return op;
    std::vector<BlockId> ids = pickDistinct(rng_, v.cached, rng_.range(1, 3));
    op.name = "evict(" + std::to_string(ids.size()) + ")";
    if (bad()) {
      const size_t i = rng_.below(ids.size());
      switch (rng_.range(0, 2)) {
        case 0:
          if (!v.referenced.empty()) {
            ids[i] = rng_.pick(v.referenced);
            op.fail(ErrorCode::BlockState, "referenced block");
          }
          break;
        case 1:
          ids.push_back(ids[i]);
          op.fail(ErrorCode::BadArgument, "repeated id");
          break;
        default: {
          std::vector<BlockId> fr = v.allFree();
          if (!fr.empty()) {
            ids[i] = rng_.pick(fr);
            op.fail(ErrorCode::UnknownBlock, "free block");
          }
          break;
        }
      }
    }
    op.run = [=](BlockPool& p, Outcome&) { p.evict(ids.data(), ids.size()); };
    return op;
  }

  Op offload(const View& v) {
    Op op;
    if (v.deviceCached.empty()) return op;
    const size_t hostCap = static_cast<size_t>(config_.hostCapacity);
    std::vector<BlockId> ids = pickDistinct(rng_, v.deviceCached, rng_.range(1, 4));
    op.name = "offload(" + std::to_string(ids.size()) + ")";
    if (bad()) {
      const size_t i = rng_.below(ids.size());
      switch (rng_.range(0, 3)) {
        case 0:
          if (!v.hostCached.empty()) {
            ids[i] = rng_.pick(v.hostCached);
            op.fail(ErrorCode::BlockState, "host block");
          }
          break;
        case 1:
          if (!v.referenced.empty()) {
            ids[i] = rng_.pick(v.referenced);
            op.fail(ErrorCode::BlockState, "referenced block");
          }
          break;
        case 2:
          ids.push_back(ids[i]);
          op.fail(ErrorCode::BadArgument, "repeated id");
          break;
        default:
          if (v.deviceCached.size() > hostCap) {
            ids = pickDistinct(rng_, v.deviceCached, hostCap + 1);
            op.fail(ErrorCode::OutOfBlocks, "more than the host capacity");
          }
          break;
      }
    }
    if (!op.expectError && ids.size() > hostCap) op.fail(ErrorCode::OutOfBlocks, "more than the host capacity");
    op.run = [=](BlockPool& p, Outcome& o) {
      std::vector<BlockId> out(ids.size(), -7);
      p.offload(ids.data(), ids.size(), out.data());
      for (BlockId id : out) o.add(id);
    };
    std::vector<std::vector<uint8_t>>* model = payload_;
    op.onSuccess = [=](const Outcome& o) {
      for (size_t i = 0; i < ids.size(); ++i) (*model)[static_cast<size_t>(o.values[i])] = (*model)[static_cast<size_t>(ids[i])];
    };
    return op;
  }

  Op restore(const View& v) {
    Op op;
    if (v.hostCached.empty()) return op;
    std::vector<BlockId> ids = pickDistinct(rng_, v.hostCached, rng_.range(1, 4));
    op.name = "restore(" + std::to_string(ids.size()) + ")";
    if (bad()) {
      const size_t i = rng_.below(ids.size());
      switch (rng_.range(0, 2)) {
        case 0:
          if (!v.deviceNonFree.empty()) {
            ids[i] = rng_.pick(v.deviceNonFree);
            op.fail(ErrorCode::BlockState, "device block");
          }
          break;
        case 1:
          ids.push_back(ids[i]);
          op.fail(ErrorCode::BadArgument, "repeated id");
          break;
        default:
          if (!v.hostFree.empty()) {
            ids[i] = rng_.pick(v.hostFree);
            op.fail(ErrorCode::UnknownBlock, "free block");
          }
          break;
      }
    }
    if (!op.expectError && ids.size() > v.deviceFree.size() + v.deviceCached.size()) {
      op.fail(ErrorCode::OutOfBlocks, "more than free + cached device blocks");
    }
    op.run = [=](BlockPool& p, Outcome& o) {
      std::vector<BlockId> out(ids.size(), -7);
      p.restore(ids.data(), ids.size(), out.data());
      for (BlockId id : out) o.add(id);
    };
    std::vector<std::vector<uint8_t>>* model = payload_;
    op.onSuccess = [=](const Outcome& o) {
      for (size_t i = 0; i < ids.size(); ++i) (*model)[static_cast<size_t>(o.values[i])] = (*model)[static_cast<size_t>(ids[i])];
    };
    return op;
  }

  Op tableAppend(const View& v) {
    Op op;
    if (config_.tableRows == 0 || v.deviceNonFree.empty()) return op;
    const int n = rng_.range(1, 4);
    std::vector<int32_t> rows(n);
    std::vector<BlockId> ids(n);
    for (int i = 0; i < n; ++i) {
      rows[i] = rng_.range(0, config_.tableRows - 1);
      ids[i] = rng_.pick(v.deviceNonFree);
    }
    op.name = "tableAppend(" + std::to_string(n) + ")";
    // Would a row overflow (the first failing element decides the error)?
    std::vector<int32_t> len = v.state.tableLengths;
    int full = -1;
    for (int i = 0; i < n && full < 0; ++i) {
      if (len[rows[i]] >= config_.tableCols) full = i;
      ++len[rows[i]];
    }
    if (full >= 0) {
      op.fail(ErrorCode::TableFull, "row full");
    } else if (bad()) {
      const int i = static_cast<int>(rng_.below(n));
      switch (rng_.range(0, 2)) {
        case 0:
          rows[i] = rng_.chance(0.5) ? -1 : config_.tableRows;
          op.fail(ErrorCode::TableRow, "row out of range");
          break;
        case 1:
          if (!v.hostCached.empty()) {
            ids[i] = rng_.pick(v.hostCached);
            op.fail(ErrorCode::BlockState, "host block");
          }
          break;
        default:
          if (!v.deviceFree.empty()) {
            ids[i] = rng_.pick(v.deviceFree);
            op.fail(ErrorCode::UnknownBlock, "free block");
          }
          break;
      }
    }
    op.run = [=](BlockPool& p, Outcome&) { p.tableAppend(rows.data(), ids.data(), rows.size()); };
    return op;
  }

  Op tableTruncate(const View& v) {
    Op op;
    if (config_.tableRows == 0) return op;
    const int n = rng_.range(1, 3);
    std::vector<int32_t> rows(n), lengths(n);
    std::vector<int32_t> len = v.state.tableLengths;
    for (int i = 0; i < n; ++i) {
      rows[i] = rng_.range(0, config_.tableRows - 1);
      lengths[i] = rng_.range(0, len[rows[i]]);
      len[rows[i]] = lengths[i];
    }
    op.name = "tableTruncate(" + std::to_string(n) + ")";
    if (bad()) {
      const int i = static_cast<int>(rng_.below(n));
      // Pending length of rows[i] at element i.
      int32_t pending = v.state.tableLengths[rows[i]];
      for (int j = 0; j < i; ++j) {
        if (rows[j] == rows[i]) pending = lengths[j];
      }
      switch (rng_.range(0, 2)) {
        case 0:
          lengths[i] = pending + 1 + static_cast<int32_t>(rng_.below(3));
          op.fail(ErrorCode::BadArgument, "longer than the row");
          break;
        case 1:
          lengths[i] = -1;
          op.fail(ErrorCode::BadArgument, "negative length");
          break;
        default:
          rows[i] = rng_.chance(0.5) ? -1 : config_.tableRows + 1;
          op.fail(ErrorCode::TableRow, "row out of range");
          break;
      }
    }
    op.run = [=](BlockPool& p, Outcome&) { p.tableTruncate(rows.data(), lengths.data(), rows.size()); };
    return op;
  }

  Op tableRead(const View&) {
    Op op;
    if (config_.tableRows == 0) return op;
    const int n = rng_.range(1, 3);
    std::vector<int32_t> rows(n);
    for (auto& r : rows) r = rng_.range(0, config_.tableRows - 1);
    op.name = "tableRead(" + std::to_string(n) + ")";
    if (bad()) {
      rows[rng_.below(n)] = rng_.chance(0.5) ? -3 : config_.tableRows;
      op.fail(ErrorCode::TableRow, "row out of range");
    }
    const int32_t cols = config_.tableCols;
    op.run = [=](BlockPool& p, Outcome& o) {
      std::vector<BlockId> ids(static_cast<size_t>(n) * static_cast<size_t>(cols), -7);
      std::vector<int32_t> lengths(n, -7);
      p.tableRead(rows.data(), rows.size(), ids.data(), lengths.data());
      for (BlockId id : ids) o.add(id);
      for (int32_t l : lengths) o.add(l);
    };
    return op;
  }

  Op writePayload(const View& v) {
    Op op;
    if (v.nonFree.empty()) return op;
    const int n = rng_.range(1, 4);
    std::vector<BlockId> ids(n);
    const size_t bytes = static_cast<size_t>(config_.payloadBytes);
    if (rng_.chance(0.5)) {
      for (auto& id : ids) id = rng_.pick(v.nonFree);
    } else {  // consecutive ids where possible (exercises the merged copies)
      BlockId start = rng_.pick(v.nonFree);
      for (int i = 0; i < n; ++i) {
        BlockId id = start + i;
        ids[i] = (id < static_cast<BlockId>(v.state.state.size()) && v.state.state[id] != 0) ? id : start;
      }
    }
    std::vector<uint8_t> data(n * bytes);
    for (auto& b : data) b = static_cast<uint8_t>(rng_.next());
    op.name = "writePayload(" + std::to_string(n) + ")";
    if (bytes == 0) {
      op.fail(ErrorCode::BadArgument, "pool without payload");
    } else if (bad()) {
      std::vector<BlockId> fr = v.allFree();
      if (!fr.empty()) {
        ids[rng_.below(n)] = rng_.pick(fr);
        op.fail(ErrorCode::UnknownBlock, "free block");
      }
    }
    op.run = [=](BlockPool& p, Outcome&) { p.writePayload(ids.data(), ids.size(), data.data()); };
    std::vector<std::vector<uint8_t>>* model = payload_;
    op.onSuccess = [=](const Outcome&) {
      for (int i = 0; i < n; ++i) {
        (*model)[static_cast<size_t>(ids[i])].assign(data.begin() + i * bytes, data.begin() + (i + 1) * bytes);
      }
    };
    return op;
  }

  Op readPayload(const View& v) {
    Op op;
    if (v.nonFree.empty()) return op;
    const int n = rng_.range(1, 6);
    std::vector<BlockId> ids(n);
    if (rng_.chance(0.5)) {
      for (auto& id : ids) id = rng_.pick(v.nonFree);
    } else {
      ids = pickDistinct(rng_, v.nonFree, static_cast<size_t>(n));
      std::sort(ids.begin(), ids.end());
    }
    const size_t bytes = static_cast<size_t>(config_.payloadBytes);
    op.name = "readPayload(" + std::to_string(ids.size()) + ")";
    if (bytes == 0) {
      op.fail(ErrorCode::BadArgument, "pool without payload");
    } else if (bad()) {
      ids[rng_.below(ids.size())] = outOfRange();
      op.fail(ErrorCode::UnknownBlock, "id out of range");
    }
    op.run = [=](BlockPool& p, Outcome& o) {
      std::vector<uint8_t> out(ids.size() * bytes, 0xCD);
      p.readPayload(ids.data(), ids.size(), out.data());
      for (uint8_t b : out) o.add(b);
    };
    std::vector<std::vector<uint8_t>>* model = payload_;
    op.verify = [=](const Outcome& o) -> std::string {
      for (size_t i = 0; i < ids.size(); ++i) {
        const std::vector<uint8_t>& want = (*model)[static_cast<size_t>(ids[i])];
        for (size_t b = 0; b < bytes; ++b) {
          if (o.values[i * bytes + b] != want[b]) {
            return "payload of block " + std::to_string(ids[i]) + " byte " + std::to_string(b) + ": " +
                   std::to_string(o.values[i * bytes + b]) + ", model " + std::to_string(want[b]);
          }
        }
      }
      return "";
    };
    return op;
  }

  Op lookup(const View& v) {
    const int n = rng_.range(1, 6);
    std::vector<BlockHash> hashes(n);
    for (auto& h : hashes) {
      int r = rng_.range(0, 9);
      h = (r < 8 && !v.hashed.empty()) ? v.state.hash[rng_.pick(v.hashed)] : (r == 8 ? freshHash() : kNoHash);
    }
    Op op;
    op.name = "lookup(" + std::to_string(n) + ")";
    op.run = [=](BlockPool& p, Outcome& o) {
      std::vector<BlockId> ids(n, -7);
      size_t k = p.lookup(hashes.data(), hashes.size(), ids.data());
      o.add(static_cast<int64_t>(k));
      for (size_t i = 0; i < k; ++i) o.add(ids[i]);
    };
    const PoolState& s = v.state;
    std::vector<int64_t> want{0};
    for (BlockHash h : hashes) {
      BlockId found = kNoBlock;
      for (BlockId b = 0; h != kNoHash && b < static_cast<BlockId>(s.hash.size()); ++b) {
        if (s.state[b] != 0 && s.hash[b] == h) found = b;
      }
      if (found == kNoBlock) break;
      ++want[0];
      want.push_back(found);
    }
    op.verify = [want](const Outcome& o) -> std::string {
      if (o.values != want) return "lookup " + fmtVec(o.values) + ", brute force " + fmtVec(want);
      return "";
    };
    return op;
  }

  Rng rng_;
  PoolConfig config_;
  int maxBatch_;
  std::vector<std::vector<uint8_t>>* payload_;
  uint64_t hashCounter_ = 0;
};

// Invariants of a pool's state (CPU side), "" when they hold.
std::string checkInvariants(BlockPool& pool, const PoolState& s) {
  const PoolConfig& c = pool.config();
  const size_t blocks = static_cast<size_t>(c.deviceCapacity + c.hostCapacity);
  if (s.hash.size() != blocks || s.refcount.size() != blocks || s.state.size() != blocks || s.key.size() != blocks) {
    return "exportState sizes";
  }
  PoolCounts tally;
  std::vector<int> inQueue(blocks, 0);
  for (BlockId id : s.deviceFreeQueue) {
    if (id < 0 || id >= c.deviceCapacity) return "device free queue holds " + std::to_string(id);
    ++inQueue[static_cast<size_t>(id)];
  }
  for (BlockId id : s.hostFreeQueue) {
    if (id < c.deviceCapacity || id >= static_cast<BlockId>(blocks)) return "host free queue holds " + std::to_string(id);
    ++inQueue[static_cast<size_t>(id)];
  }
  for (BlockId id = 0; id < static_cast<BlockId>(blocks); ++id) {
    const bool device = id < c.deviceCapacity;
    const auto st = static_cast<BlockState>(s.state[id]);
    const std::string at = "block " + std::to_string(id) + ": ";
    switch (st) {
      case BlockState::Free:
        if (inQueue[id] != 1) return at + "free but in its free queue " + std::to_string(inQueue[id]) + " times";
        if (s.hash[id] != kNoHash || s.refcount[id] != 0 || s.session[id] != kNoSession || s.position[id] != 0 ||
            !sameBits(s.key[id], 0.0)) {
          return at + "free but holds hash/refcount/session/position/key";
        }
        ++(device ? tally.deviceFree : tally.hostFree);
        break;
      case BlockState::Cached:
        if (inQueue[id] != 0) return at + "cached and in a free queue";
        if (s.refcount[id] != 0) return at + "cached with refcount " + std::to_string(s.refcount[id]);
        if (s.hash[id] == kNoHash) return at + "cached without a hash";
        ++(device ? tally.deviceCached : tally.hostCached);
        break;
      case BlockState::Referenced:
        if (inQueue[id] != 0) return at + "referenced and in a free queue (both free and referenced)";
        if (!device) return at + "a referenced host block";
        if (s.refcount[id] < 1) return at + "referenced with refcount " + std::to_string(s.refcount[id]);
        ++tally.deviceReferenced;
        break;
      default:
        return at + "unknown state " + std::to_string(s.state[id]);
    }
    if (std::isnan(s.key[id])) return at + "NaN key";
    if (s.key[id] == 0.0 && std::signbit(s.key[id])) return at + "key -0.0 reached the order (the pool normalises keys)";
  }
  PoolCounts counts = pool.counts();
  if (!sameCounts(counts, tally)) return "counts() " + fmtCounts(counts) + " but the blocks say " + fmtCounts(tally);
  if (counts.deviceFree + counts.deviceCached + counts.deviceReferenced != c.deviceCapacity ||
      counts.hostFree + counts.hostCached != c.hostCapacity) {
    return "counts do not add up to the capacities";
  }
  // Every hashed block is found by lookup (hashes are unique, so it is found as itself).
  for (BlockId id = 0; id < static_cast<BlockId>(blocks); ++id) {
    if (s.hash[id] == kNoHash) continue;
    BlockId found = kNoBlock;
    if (pool.lookup(&s.hash[id], 1, &found) != 1 || found != id) {
      return "lookup of block " + std::to_string(id) + "'s hash gives " + std::to_string(found);
    }
  }
  // victims() of each tier equals the brute-force eviction order of its cached blocks.
  for (int t = 0; t < 2; ++t) {
    std::vector<BlockId> expect;
    for (BlockId id = 0; id < static_cast<BlockId>(blocks); ++id) {
      if ((id < c.deviceCapacity) == (t == 0) && s.state[id] == static_cast<uint8_t>(BlockState::Cached)) expect.push_back(id);
    }
    sortEvictionOrder(expect, s.key, s.position);
    std::vector<BlockId> got(expect.size() + 2, -7);
    got.resize(pool.victims(static_cast<Tier>(t), expect.size() + 2, got.data()));
    if (got != expect) {
      return std::string("victims(") + (t == 0 ? "device" : "host") + ") " + fmtVec(got) + ", brute force " + fmtVec(expect);
    }
  }
  // Table rows: -1 past their length, never longer than the width.
  for (int32_t r = 0; r < c.tableRows; ++r) {
    const int32_t len = s.tableLengths[r];
    if (len < 0 || len > c.tableCols) return "table row " + std::to_string(r) + " length " + std::to_string(len);
    for (int32_t col = 0; col < c.tableCols; ++col) {
      const BlockId cell = s.table[static_cast<size_t>(r) * c.tableCols + col];
      if ((col < len) != (cell != kNoBlock)) {
        return "table row " + std::to_string(r) + " col " + std::to_string(col) + " holds " + std::to_string(cell) +
               " with length " + std::to_string(len);
      }
    }
  }
  return "";
}

// Full lockstep comparison of two pools.
std::string comparePools(BlockPool& a, BlockPool& b) {
  const PoolState sa = a.exportState(), sb = b.exportState();
  std::string d = diffStates(sa, sb);
  if (!d.empty()) return "exportState differs: " + d;
  if (!sameCounts(a.counts(), b.counts())) return "counts differ: " + fmtCounts(a.counts()) + " vs " + fmtCounts(b.counts());
  for (int t = 0; t < 2; ++t) {
    const size_t k = sa.state.size() + 1;
    std::vector<BlockId> va(k), vb(k);
    va.resize(a.victims(static_cast<Tier>(t), k, va.data()));
    vb.resize(b.victims(static_cast<Tier>(t), k, vb.data()));
    if (va != vb) return std::string("full victims(") + (t == 0 ? "device" : "host") + ") differ: " + fmtVec(va) + " vs " + fmtVec(vb);
  }
  if (a.config().payloadBytes > 0) {
    std::vector<BlockId> ids;
    for (BlockId id = 0; id < static_cast<BlockId>(sa.state.size()); ++id) {
      if (sa.state[id] != 0) ids.push_back(id);
    }
    const size_t bytes = static_cast<size_t>(a.config().payloadBytes);
    std::vector<uint8_t> pa(ids.size() * bytes), pb(ids.size() * bytes);
    if (!ids.empty()) {
      a.readPayload(ids.data(), ids.size(), pa.data());
      b.readPayload(ids.data(), ids.size(), pb.data());
    }
    if (pa != pb) return "payload bytes differ";
  }
  return "";
}

struct Totals {
  std::map<std::string, std::map<std::string, long>> perOp;  // op -> outcome -> calls (for --stats)
  int runs = 0;
  long ops = 0;
  long badCalls = 0;
  long cudaOps = 0;
  long checks = 0;
  int mismatches = 0;
};

struct PoolRun {
  const char* label;
  uint64_t seed;
  PoolConfig config;
  int ops;
  int maxBatch;
  int checkEvery;    // CPU invariants
  int compareEvery;  // full CPU/CUDA comparison
};

bool runPool(const PoolRun& run, bool withCuda, Totals& totals) {
  std::unique_ptr<BlockPool> cpu, gpu;
  try {
    cpu = std::make_unique<BlockPool>(run.config, makeCpuBackend(run.config));
    if (withCuda) gpu = std::make_unique<BlockPool>(run.config, makeCudaBackend(run.config));
  } catch (const std::exception& e) {
    std::printf("MISMATCH %s seed %" PRIu64 ": creating the pools threw: %s\n", run.label, run.seed, e.what());
    ++totals.mismatches;
    return false;
  }
  const size_t blocks = static_cast<size_t>(run.config.deviceCapacity + run.config.hostCapacity);
  std::vector<std::vector<uint8_t>> payload(blocks, std::vector<uint8_t>(static_cast<size_t>(run.config.payloadBytes), 0));
  Generator gen(run.seed, run.config, run.maxBatch, &payload);
  ++totals.runs;
  auto report = [&](int step, const std::string& opName, const std::string& what) {
    std::printf("MISMATCH %s seed %" PRIu64 " op %d %s: %s\n", run.label, run.seed, step, opName.c_str(), what.c_str());
    ++totals.mismatches;
    return false;
  };
  for (int step = 0; step < run.ops; ++step) {
    const PoolState before = cpu->exportState();
    const PoolCounts countsBefore = cpu->counts();
    View view(before, run.config);
    Op op = gen.next(view);
    ++totals.ops;
    if (op.expectError) ++totals.badCalls;
    Outcome c = runOp(*cpu, op.run);
    totals.perOp[op.name.substr(0, op.name.find('('))][c.threw ? errorCodeName(c.code) : "ok"]++;
    if (op.expectError) {
      if (!c.threw || c.code != op.expected) {
        return report(step, op.name, std::string("expected ") + errorCodeName(op.expected) + ", CPU " + fmtOutcome(c));
      }
    } else if (c.threw) {
      return report(step, op.name, "unexpected error on CPU: " + fmtOutcome(c));
    }
    if (c.threw) {
      std::string d = diffStates(before, cpu->exportState());
      if (!d.empty()) return report(step, op.name, "a failed call changed the CPU pool: " + d);
      if (!sameCounts(countsBefore, cpu->counts())) return report(step, op.name, "a failed call changed counts()");
    } else {
      if (op.verify) {
        std::string d = op.verify(c);
        if (!d.empty()) return report(step, op.name, "CPU output wrong: " + d);
      }
      if (op.onSuccess) op.onSuccess(c);
    }
    if (gpu) {
      Outcome g = runOp(*gpu, op.run);
      ++totals.cudaOps;
      if (g.threw != c.threw || (c.threw && g.code != c.code) || g.values != c.values) {
        return report(step, op.name, "CPU " + fmtOutcome(c) + " / CUDA " + fmtOutcome(g));
      }
      if (c.threw) {  // the failed call must have left the CUDA pool as it was, too
        std::string d = diffStates(cpu->exportState(), gpu->exportState());
        if (!d.empty()) return report(step, op.name, "after a failed call, CPU vs CUDA state: " + d);
      }
      if (!sameCounts(cpu->counts(), gpu->counts())) {
        return report(step, op.name, "counts differ: " + fmtCounts(cpu->counts()) + " vs " + fmtCounts(gpu->counts()));
      }
    }
    if (step % run.checkEvery == 0 || step + 1 == run.ops) {
      ++totals.checks;
      std::string d = checkInvariants(*cpu, cpu->exportState());
      if (!d.empty()) return report(step, op.name, "invariant: " + d);
    }
    if (gpu && (step % run.compareEvery == 0 || step + 1 == run.ops)) {
      std::string d = comparePools(*cpu, *gpu);
      if (!d.empty()) return report(step, op.name, "CPU vs CUDA: " + d);
    }
  }
  return true;
}

// ---- the EvictionOrder interface directly, at scale -------------------------------------------------------

struct OrderModel {
  std::vector<double> key;
  std::vector<int32_t> position;
  std::vector<SessionId> session;
  std::vector<uint8_t> assigned, evictable;
};

struct OrderRun {
  uint64_t seed;
  int32_t deviceCapacity, hostCapacity;
  int rounds;
};

bool runOrder(const OrderRun& run, bool withCuda, Totals& totals) {
  PoolConfig config;
  config.deviceCapacity = run.deviceCapacity;
  config.hostCapacity = run.hostCapacity;
  const int32_t blocks = run.deviceCapacity + run.hostCapacity;
  Backend cpu = makeCpuBackend(config);
  Backend gpu;
  EvictionOrder* orders[2] = {cpu.order.get(), nullptr};
  if (withCuda) {
    try {
      gpu = makeCudaBackend(config);
      orders[1] = gpu.order.get();
    } catch (const std::exception& e) {
      std::printf("MISMATCH order seed %" PRIu64 ": makeCudaBackend threw: %s\n", run.seed, e.what());
      ++totals.mismatches;
      return false;
    }
  }
  const int nOrders = orders[1] != nullptr ? 2 : 1;
  const char* names[2] = {"CPU", "CUDA"};
  ++totals.runs;
  Rng rng(run.seed);
  OrderModel m;
  m.key.assign(blocks, 0.0);
  m.position.assign(blocks, 0);
  m.session.assign(blocks, kNoSession);
  m.assigned.assign(blocks, 0);
  m.evictable.assign(blocks, 0);
  auto report = [&](int round, const std::string& what) {
    std::printf("MISMATCH order seed %" PRIu64 " (%d blocks) round %d: %s\n", run.seed, blocks, round, what.c_str());
    ++totals.mismatches;
    return false;
  };
  // Key distributions per round: all equal, a few values, distinct, mixed with the awkward ones.
  auto drawFor = [&](int mode) -> double {
    switch (mode) {
      case 0: return 7.0;
      case 1: return static_cast<double>(rng.range(0, 3));
      case 2: return static_cast<double>(rng.next() >> 11) * 0x1p-20;
      default: return drawKey(rng);
    }
  };
  auto eachOrder = [&](const std::function<void(EvictionOrder&)>& f) {
    for (int o = 0; o < nOrders; ++o) f(*orders[o]);
  };
  for (int round = 0; round < run.rounds; ++round) {
    const int mode = round % 4;
    const int32_t churn = std::max<int32_t>(1, blocks / (round == 0 ? 1 : 8));
    try {
      // Assign / make evictable / unassign a share of the blocks, one call at a time (the pending path).
      for (int32_t n = 0; n < churn; ++n) {
        const BlockId id = static_cast<BlockId>(round == 0 ? n : static_cast<int32_t>(rng.below(blocks)));
        if (!m.assigned[id]) {
          const SessionId s = rng.range(-1, 63);
          const int32_t p = rng.range(0, 31);
          const double k = drawFor(mode);
          eachOrder([&](EvictionOrder& o) { o.assign(id, s, p, k); });
          m.assigned[id] = 1;
          m.session[id] = s;
          m.position[id] = p;
          m.key[id] = k;
          if (rng.chance(0.8)) {
            const double k2 = drawFor(mode);
            eachOrder([&](EvictionOrder& o) { o.makeEvictable(id, k2); });
            m.evictable[id] = 1;
            m.key[id] = k2;
          }
        } else if (m.evictable[id] && rng.chance(0.3)) {
          eachOrder([&](EvictionOrder& o) { o.makeUnevictable(id); });
          m.evictable[id] = 0;
        } else if (!m.evictable[id] && rng.chance(0.5)) {
          const double k = drawFor(mode);
          eachOrder([&](EvictionOrder& o) { o.makeEvictable(id, k); });
          m.evictable[id] = 1;
          m.key[id] = k;
        } else if (rng.chance(0.2)) {
          eachOrder([&](EvictionOrder& o) { o.unassign(id); });
          m.assigned[id] = m.evictable[id] = 0;
          m.key[id] = 0.0;
          m.session[id] = kNoSession;
          m.position[id] = 0;
        }
      }
      // setKeys batch with repeats (last wins), keys of non-evictable blocks too.
      {
        std::vector<BlockId> ids;
        std::vector<double> keys;
        for (int i = 0; i < 2000; ++i) {
          const BlockId id = static_cast<BlockId>(rng.below(blocks));
          if (!m.assigned[id]) continue;
          ids.push_back(id);
          keys.push_back(drawFor(mode));
          m.key[id] = keys.back();
        }
        eachOrder([&](EvictionOrder& o) { o.setKeys(ids.data(), keys.data(), ids.size()); });
      }
      // Then flag-only calls on top of device-side keys: setSessionKeys, then toggles.
      {
        const int n = rng.range(1, 40);
        std::vector<SessionId> sessions(n);
        std::vector<double> keys(n);
        std::vector<int32_t> minPositions(n);
        for (int i = 0; i < n; ++i) {
          sessions[i] = rng.range(0, 63);
          keys[i] = drawFor(mode);
          minPositions[i] = rng.chance(0.5) ? 0 : rng.range(0, 31);
        }
        int64_t expect = 0;
        for (int i = 0; i < n; ++i) {
          for (BlockId b = 0; b < blocks; ++b) {
            if (m.assigned[b] && m.session[b] == sessions[i] && m.position[b] >= minPositions[i]) {
              m.key[b] = keys[i];
              ++expect;
            }
          }
        }
        for (int o = 0; o < nOrders; ++o) {
          int64_t got = orders[o]->setSessionKeys(sessions.data(), keys.data(), minPositions.data(), n);
          if (got != expect) {
            return report(round, std::string(names[o]) + " setSessionKeys counted " + std::to_string(got) + ", model " + std::to_string(expect));
          }
        }
        for (int i = 0; i < 500; ++i) {
          const BlockId id = static_cast<BlockId>(rng.below(blocks));
          if (!m.assigned[id]) continue;
          if (m.evictable[id]) {
            eachOrder([&](EvictionOrder& o) { o.makeUnevictable(id); });  // must keep the device-side key
            m.evictable[id] = 0;
          }
        }
      }
      // Moves between tiers (evictable -> free, disjoint).
      if (run.hostCapacity > 0) {
        std::vector<BlockId> from, to;
        std::vector<uint8_t> used(blocks, 0);
        for (int i = 0; i < 300; ++i) {
          const BlockId f = static_cast<BlockId>(rng.below(blocks));
          if (!m.evictable[f] || used[f]) continue;
          const bool toHost = f < run.deviceCapacity;
          const BlockId t = toHost ? run.deviceCapacity + static_cast<BlockId>(rng.below(run.hostCapacity))
                                   : static_cast<BlockId>(rng.below(run.deviceCapacity));
          if (m.assigned[t] || used[t]) continue;
          used[f] = used[t] = 1;
          from.push_back(f);
          to.push_back(t);
        }
        eachOrder([&](EvictionOrder& o) { o.move(from.data(), to.data(), from.size()); });
        for (size_t i = 0; i < from.size(); ++i) {
          const BlockId f = from[i], t = to[i];
          m.assigned[t] = m.evictable[t] = 1;
          m.key[t] = m.key[f];
          m.session[t] = m.session[f];
          m.position[t] = m.position[f];
          m.assigned[f] = m.evictable[f] = 0;
          m.key[f] = 0.0;
          m.session[f] = kNoSession;
          m.position[f] = 0;
        }
      }
      // select: every k of interest against the model's brute-force order.
      for (int t = 0; t < 2; ++t) {
        const BlockId first = t == 0 ? 0 : run.deviceCapacity, end = t == 0 ? run.deviceCapacity : blocks;
        std::vector<BlockId> expect;
        for (BlockId id = first; id < end; ++id) {
          if (m.evictable[id]) expect.push_back(id);
        }
        sortEvictionOrder(expect, m.key, m.position);
        const size_t ks[] = {1, 2, 31, 1024, 4097, expect.size() / 2, expect.size(), expect.size() + 5};
        for (size_t k : ks) {
          if (k == 0) continue;
          const size_t want = std::min(k, expect.size());
          for (int o = 0; o < nOrders; ++o) {
            std::vector<BlockId> got(k, -7);
            got.resize(orders[o]->select(static_cast<Tier>(t), k, got.data()));
            ++totals.checks;
            if (got.size() != want || !std::equal(got.begin(), got.end(), expect.begin())) {
              size_t at = 0;
              while (at < got.size() && at < want && got[at] == expect[at]) ++at;
              std::string detail = std::string(names[o]) + " select(" + (t == 0 ? "device" : "host") + ", " + std::to_string(k) +
                                   ") gave " + std::to_string(got.size()) + " ids, model " + std::to_string(want) +
                                   "; first difference at " + std::to_string(at);
              if (at < got.size() && at < want) {
                const BlockId g = got[at], e = expect[at];
                detail += ": got block " + std::to_string(g) + " (key " + fmtKey(m.key[g]) + ", position " + std::to_string(m.position[g]) +
                          "), model block " + std::to_string(e) + " (key " + fmtKey(m.key[e]) + ", position " + std::to_string(m.position[e]) + ")";
              }
              return report(round, detail);
            }
          }
        }
      }
      // exportKeys equals the model, bit for bit.
      for (int o = 0; o < nOrders; ++o) {
        std::vector<double> keys(blocks, 123.0);
        orders[o]->exportKeys(keys.data());
        for (BlockId id = 0; id < blocks; ++id) {
          if (!sameBits(keys[id], m.key[id])) {
            return report(round, std::string(names[o]) + " exportKeys[" + std::to_string(id) + "] = " + fmtKey(keys[id]) + ", model " + fmtKey(m.key[id]));
          }
        }
      }
    } catch (const std::exception& e) {
      return report(round, std::string("threw: ") + e.what());
    }
    totals.ops += churn;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, stats = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    if (std::strcmp(argv[i], "--stats") == 0) stats = true;
  }
  const CudaProbe probe = probeCuda();
  const bool withCuda = probe.available;
  if (withCuda) {
    std::printf("CUDA differential: running on %s (%d device(s))\n", probe.deviceName.c_str(), probe.devices);
  } else {
    std::printf("CUDA differential: skipped (%s)\n", probe.reason.empty() ? "no reason given" : probe.reason.c_str());
  }
  std::fflush(stdout);

  Totals totals;
  auto small = [](int32_t host, int32_t payload) {
    PoolConfig c;
    c.deviceCapacity = 64;
    c.hostCapacity = host;
    c.payloadBytes = payload;
    c.tableRows = 8;
    c.tableCols = 12;
    return c;
  };
  std::vector<PoolRun> runs;
  const int smallOps = quick ? 800 : 3000;
  for (uint64_t seed = 1; seed <= 6; ++seed) runs.push_back({"small", seed, small(32, 16), smallOps, 8, 1, 25});
  runs.push_back({"no-host", 7, small(0, 8), smallOps, 8, 1, 25});
  runs.push_back({"no-payload", 8, small(32, 0), smallOps, 8, 1, 25});
  {
    PoolConfig big;
    big.deviceCapacity = 4096;
    big.hostCapacity = 2048;
    big.payloadBytes = 64;
    big.tableRows = 64;
    big.tableCols = 64;
    runs.push_back({"large", 9, big, quick ? 300 : 1500, 96, 25, 100});
  }
  for (const PoolRun& r : runs) runPool(r, withCuda, totals);

  std::vector<OrderRun> orderRuns = {{101, 2000, 1000, 8}, {102, 200000, 100000, quick ? 4 : 8}};
  for (const OrderRun& r : orderRuns) runOrder(r, withCuda, totals);

  if (stats) {
    for (const auto& [name, outcomes] : totals.perOp) {
      std::printf("  %-16s", name.c_str());
      for (const auto& [what, n] : outcomes) std::printf(" %s %ld", what.c_str(), n);
      std::printf("\n");
    }
  }
  std::printf("differential: %d runs, %ld ops (%ld deliberately bad), %ld invariant/selection checks, CUDA %s (%ld lockstep ops), %d mismatch(es)\n",
              totals.runs, totals.ops, totals.badCalls, totals.checks, withCuda ? "compared" : "skipped", totals.cudaOps,
              totals.mismatches);
  return totals.mismatches == 0 ? 0 : 1;
}
