// Profiling driver for the native block core without N-API or JS: the same pools and rounds as
// bench/run.ts (chains of 64 blocks, 4,096 free, batches of 64, next-use or LRU keys), timed per
// operation in C++. Used to split a `npm run bench` figure into core cost and crossing cost, and to
// run the core under `perf record` / `valgrind --tool=callgrind`. Not part of the build or of CI.
//
//   g++ -std=c++17 -O3 -g -Inative/include -Inative/src/cpu bench/profile_native.cc native/src/block_pool.cc \
//       native/src/cpu/backend.cc native/src/cpu/eviction_order.cc native/src/no_cuda.cc -o /tmp/profile_native
//   /tmp/profile_native [--blocks N] [--keys nextuse|lru] [--rounds R] [--only lifecycle|reuse|lookup|evict|victims]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "saga/backend.h"
#include "saga/block_pool.h"

using namespace saga;

namespace {

constexpr int kBatch = 64;
constexpr int kRoundCalls = 16;
constexpr int kRoundBlocks = kBatch * kRoundCalls;
constexpr int kFree = 4096;
constexpr int kVictims = 1024;

uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct Rng {
  uint64_t s;
  double uniform() { return static_cast<double>(mix(s++) >> 11) * 0x1p-53; }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(uniform() * n); }
};

using Clock = std::chrono::steady_clock;
double nsSince(Clock::time_point t) { return std::chrono::duration<double, std::nano>(Clock::now() - t).count(); }

struct World {
  int32_t blocks;
  bool lru;
  BlockPool pool;
  int32_t chains;
  std::vector<uint64_t> chainHash;
  std::vector<int32_t> chainIds, chainRev;
  uint64_t hashCounter = 0;
  int32_t nextSession;
  double clock = 0, base = 0;
  Rng rng{12345};
  std::vector<int32_t> positions = std::vector<int32_t>(kBatch);

  static PoolConfig config(int32_t blocks) {
    PoolConfig c;
    c.deviceCapacity = blocks;
    return c;
  }

  World(int32_t n, bool lruKeys) : blocks(n), lru(lruKeys), pool(config(n), makeCpuBackend(config(n))) {
    chains = (n - kFree) / kBatch;
    nextSession = chains;
    for (int i = 0; i < kBatch; ++i) positions[i] = i;
    chainHash.resize(static_cast<size_t>(chains) * kBatch);
    chainIds.resize(chainHash.size());
    chainRev.resize(chainHash.size());
    std::vector<int32_t> sessions(kBatch);
    std::vector<double> keys(kBatch);
    for (int32_t c = 0; c < chains; ++c) {
      uint64_t* h = &chainHash[static_cast<size_t>(c) * kBatch];
      freshHashes(h, kBatch);
      std::fill(sessions.begin(), sessions.end(), c);
      int32_t* ids = &chainIds[static_cast<size_t>(c) * kBatch];
      pool.allocate(h, sessions.data(), positions.data(), kBatch, ids);
      int32_t* rev = &chainRev[static_cast<size_t>(c) * kBatch];
      for (int i = 0; i < kBatch; ++i) rev[i] = ids[kBatch - 1 - i];
      fillKeys(keys.data(), kBatch);
      pool.release(rev, keys.data(), kBatch);
    }
  }

  void freshHashes(uint64_t* out, int n) {
    for (int i = 0; i < n; ++i) {
      uint64_t h = mix(++hashCounter ^ 0xabcdef);
      out[i] = h == 0 ? 1 : h;
    }
  }
  void fillKeys(double* keys, int n) {
    if (lru) {
      clock += 1;
      for (int i = 0; i < n; ++i) keys[i] = clock;
    } else {
      for (int i = 0; i < n; ++i) keys[i] = base + rng.uniform();
    }
  }
};

struct Acc {
  double ns = 0, units = 0;
  void add(double t, double u) { ns += t; units += u; }
  double per() const { return units > 0 ? ns / units : 0; }
};

}  // namespace

int main(int argc, char** argv) {
  int32_t blocks = 1 << 20;
  bool lru = false;
  int rounds = 2000;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--blocks" && i + 1 < argc) blocks = std::atoi(argv[++i]);
    else if (a == "--keys" && i + 1 < argc) lru = std::string(argv[++i]) == "lru";
    else if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
  }
  auto want = [&](const char* name) { return only.empty() || only == name; };
  std::printf("blocks %d, keys %s, rounds %d\n", blocks, lru ? "lru" : "nextuse", rounds);

  std::vector<uint64_t> roundHash(kRoundBlocks);
  std::vector<int32_t> roundSess(kRoundBlocks), roundIds(kRoundBlocks), roundRev(kRoundBlocks);
  std::vector<double> roundKeys(kRoundBlocks);
  std::vector<int32_t> out(kBatch), victims(kVictims);

  if (want("lookup")) {
    World w(blocks, lru);
    Acc acc;
    for (int r = 0; r < rounds * 16; ++r) {
      int32_t c = static_cast<int32_t>(w.rng.below(static_cast<uint32_t>(w.chains)));
      auto t = Clock::now();
      size_t k = w.pool.lookup(&w.chainHash[static_cast<size_t>(c) * kBatch], kBatch, out.data());
      acc.add(nsSince(t), kBatch);
      if (k != kBatch) std::abort();
    }
    std::printf("lookup (64, all hit)       %8.2f ns/block\n", acc.per());
  }
  if (want("lifecycle")) {
    World w(blocks, lru);
    Acc al, re, ev;
    for (int r = 0; r < rounds; ++r) {
      w.freshHashes(roundHash.data(), kRoundBlocks);
      for (int b = 0; b < kRoundCalls; ++b) std::fill_n(&roundSess[b * kBatch], kBatch, w.nextSession++);
      auto t0 = Clock::now();
      for (int b = 0; b < kRoundCalls; ++b) {
        w.pool.allocate(&roundHash[b * kBatch], &roundSess[b * kBatch], w.positions.data(), kBatch, &roundIds[b * kBatch]);
      }
      al.add(nsSince(t0), kRoundBlocks);
      for (int b = 0; b < kRoundCalls; ++b) {
        for (int i = 0; i < kBatch; ++i) roundRev[b * kBatch + i] = roundIds[b * kBatch + kBatch - 1 - i];
        w.fillKeys(&roundKeys[b * kBatch], kBatch);
      }
      auto t1 = Clock::now();
      for (int b = 0; b < kRoundCalls; ++b) w.pool.release(&roundRev[b * kBatch], &roundKeys[b * kBatch], kBatch);
      re.add(nsSince(t1), kRoundBlocks);
      auto t2 = Clock::now();
      for (int b = 0; b < kRoundCalls; ++b) w.pool.evict(&roundIds[b * kBatch], kBatch);
      ev.add(nsSince(t2), kRoundBlocks);
    }
    std::printf("allocate (from free)       %8.2f ns/block\n", al.per());
    std::printf("release (fresh -> cached)  %8.2f ns/block\n", re.per());
    std::printf("evict (by id)              %8.2f ns/block\n", ev.per());
  }
  if (want("reuse")) {
    World w(blocks, lru);
    Acc aq, re;
    std::vector<int32_t> picked(kRoundCalls);
    for (int r = 0; r < rounds; ++r) {
      for (int b = 0; b < kRoundCalls; ++b) {
        picked[b] = static_cast<int32_t>(w.rng.below(static_cast<uint32_t>(w.chains)));
        w.fillKeys(&roundKeys[b * kBatch], kBatch);
      }
      auto t0 = Clock::now();
      for (int b = 0; b < kRoundCalls; ++b) w.pool.acquire(&w.chainIds[static_cast<size_t>(picked[b]) * kBatch], kBatch);
      aq.add(nsSince(t0), kRoundBlocks);
      auto t1 = Clock::now();
      for (int b = 0; b < kRoundCalls; ++b) {
        w.pool.release(&w.chainRev[static_cast<size_t>(picked[b]) * kBatch], &roundKeys[b * kBatch], kBatch);
      }
      re.add(nsSince(t1), kRoundBlocks);
    }
    std::printf("acquire (cached chain)     %8.2f ns/block\n", aq.per());
    std::printf("release (reuse)            %8.2f ns/block\n", re.per());
  }
  if (want("victims")) {
    World w(blocks, lru);
    Acc v;
    for (int r = 0; r < rounds; ++r) {
      auto t = Clock::now();
      size_t got = w.pool.victims(Tier::Device, kVictims, victims.data());
      v.add(nsSince(t), 1);
      if (got != kVictims) std::abort();
    }
    std::printf("victims 1024 (no change)   %8.2f us/call\n", v.per() / 1e3);
  }
  if (want("evict")) {
    World w(blocks, lru);
    Acc v, e, al, re;
    for (int r = 0; r < rounds; ++r) {
      auto t0 = Clock::now();
      size_t got = w.pool.victims(Tier::Device, kVictims, victims.data());
      v.add(nsSince(t0), 1);
      auto t1 = Clock::now();
      w.pool.evict(victims.data(), got);
      e.add(nsSince(t1), 1);
      if (!lru) w.base += static_cast<double>(kVictims) / (blocks - kFree);
      w.freshHashes(roundHash.data(), kRoundBlocks);
      for (int b = 0; b < kRoundCalls; ++b) std::fill_n(&roundSess[b * kBatch], kBatch, w.nextSession++);
      auto t2 = Clock::now();
      for (int b = 0; b < kRoundCalls; ++b) {
        w.pool.allocate(&roundHash[b * kBatch], &roundSess[b * kBatch], w.positions.data(), kBatch, &roundIds[b * kBatch]);
      }
      al.add(nsSince(t2), kRoundBlocks);
      for (int b = 0; b < kRoundCalls; ++b) {
        for (int i = 0; i < kBatch; ++i) roundRev[b * kBatch + i] = roundIds[b * kBatch + kBatch - 1 - i];
        w.fillKeys(&roundKeys[b * kBatch], kBatch);
      }
      auto t3 = Clock::now();
      for (int b = 0; b < kRoundCalls; ++b) w.pool.release(&roundRev[b * kBatch], &roundKeys[b * kBatch], kBatch);
      re.add(nsSince(t3), kRoundBlocks);
    }
    std::printf("victims 1024 (after evict) %8.2f us/call\n", v.per() / 1e3);
    std::printf("evict 1024 (one call)      %8.2f us/call\n", e.per() / 1e3);
    std::printf("allocate (refill)          %8.2f ns/block\n", al.per());
    std::printf("release (refill)           %8.2f ns/block\n", re.per());
  }
  return 0;
}
