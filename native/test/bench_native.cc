// Native benchmark of the eviction order's heavy calls through BlockPool, on every backend available:
//   setSessionKeys re-keying all 1M blocks (4,096 sessions x 256 blocks, one call),
//   setSessionKeys of one session (256 blocks),
//   victims(device, 1024) among 1M evictable blocks with distinct keys, and with all keys equal,
//   victims(device, 1024) right after 1,024 pending per-block updates (release/acquire churn).
// Median of repeated runs; CUDA timings are bracketed by cudaDeviceSynchronize. Not a ctest test.
//   saga_bench_native [--blocks N] [--reps R]
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "saga/backend.h"
#include "saga/block_pool.h"
#include "saga/errors.h"

#ifdef SAGA_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

using namespace saga;

namespace {

uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double uniformKey(uint64_t i, uint64_t salt) { return static_cast<double>(mix(i * 31 + salt) >> 11) * 0x1p-53 * 1e6; }

void deviceSync(bool cuda) {
#ifdef SAGA_WITH_CUDA
  if (cuda) (void)cudaDeviceSynchronize();
#else
  (void)cuda;
#endif
}

// Median wall time of fn in microseconds, each run bracketed by device synchronisation.
double medianUs(bool cuda, int reps, const std::function<void(int)>& fn) {
  std::vector<double> us;
  fn(-1);  // warm-up (allocations, first launches)
  for (int r = 0; r < reps; ++r) {
    deviceSync(cuda);
    auto t0 = std::chrono::steady_clock::now();
    fn(r);
    deviceSync(cuda);
    auto t1 = std::chrono::steady_clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int32_t blocks = 1 << 20;
  int reps = 51;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--blocks") == 0) blocks = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--reps") == 0) reps = std::atoi(argv[i + 1]);
  }
  const int32_t perSession = 256;
  const int32_t sessions = (blocks + perSession - 1) / perSession;
  const size_t k = 1024;

  CudaProbe probe = probeCuda();
  std::printf("bench_native: %d blocks, %d sessions x %d, k = %zu, median of %d runs\n", blocks, sessions, perSession, k,
              reps);
  std::printf("CUDA: %s\n", probe.available ? ("available, " + probe.deviceName).c_str()
                                            : ("unavailable (" + probe.reason + ")").c_str());
  std::vector<std::string> backends = {"cpu"};
  if (probe.available) backends.push_back("cuda");

  std::vector<BlockId> reference;  // cpu victims, to check the cuda ones
  for (const std::string& name : backends) {
    const bool cuda = name == "cuda";
    PoolConfig config;
    config.deviceCapacity = blocks;
    config.hostCapacity = 0;
    config.payloadBytes = 0;
    config.tableRows = 1;
    config.tableCols = 1;
    try {
      BlockPool pool(config, cuda ? makeCudaBackend(config) : makeCpuBackend(config));
      // Fill: every block allocated with a hash, then released with distinct keys -> all cached.
      const size_t chunk = 1 << 16;
      std::vector<BlockHash> hashes(chunk);
      std::vector<SessionId> sess(chunk);
      std::vector<int32_t> pos(chunk);
      std::vector<BlockId> ids(chunk);
      std::vector<double> keys(chunk);
      for (size_t base = 0; base < static_cast<size_t>(blocks); base += chunk) {
        const size_t n = std::min(chunk, static_cast<size_t>(blocks) - base);
        for (size_t i = 0; i < n; ++i) {
          const uint64_t b = base + i;
          hashes[i] = mix(b) | 1;
          sess[i] = static_cast<SessionId>(b / perSession);
          pos[i] = static_cast<int32_t>(b % perSession);
          keys[i] = uniformKey(b, 1);
        }
        pool.allocate(hashes.data(), sess.data(), pos.data(), n, ids.data());
        pool.release(ids.data(), keys.data(), n);
      }
      deviceSync(cuda);

      std::vector<SessionId> allSessions(sessions);
      std::vector<int32_t> minPos(sessions, 0);
      std::vector<double> sessionKeys(sessions);
      for (int32_t s = 0; s < sessions; ++s) allSessions[s] = s;
      int64_t updates = 0;
      double rekeyAll = medianUs(cuda, reps, [&](int r) {
        for (int32_t s = 0; s < sessions; ++s) sessionKeys[s] = uniformKey(static_cast<uint64_t>(s), 100 + r);
        updates = pool.setSessionKeys(allSessions.data(), sessionKeys.data(), minPos.data(), allSessions.size());
      });
      std::printf("%-4s setSessionKeys(%d sessions) -> %" PRId64 " block updates: %10.1f us  (%.2f ns/block)\n", name.c_str(),
                  sessions, updates, rekeyAll, rekeyAll * 1000.0 / static_cast<double>(std::max<int64_t>(updates, 1)));
      double rekeyOne = medianUs(cuda, reps, [&](int r) {
        SessionId s = static_cast<SessionId>(r < 0 ? 0 : r % sessions);
        double key = uniformKey(static_cast<uint64_t>(s), 7);
        int32_t zero = 0;
        updates = pool.setSessionKeys(&s, &key, &zero, 1);
      });
      std::printf("%-4s setSessionKeys(1 session) -> %" PRId64 " block updates: %10.1f us\n", name.c_str(), updates, rekeyOne);

      // Distinct keys again for victims (the last re-keys gave each session one key: ties inside sessions).
      {
        std::vector<BlockId> all(chunk);
        for (size_t base = 0; base < static_cast<size_t>(blocks); base += chunk) {
          const size_t n = std::min(chunk, static_cast<size_t>(blocks) - base);
          for (size_t i = 0; i < n; ++i) {
            all[i] = static_cast<BlockId>(base + i);
            keys[i] = uniformKey(base + i, 2);
          }
          pool.setKeys(all.data(), keys.data(), n);
        }
      }
      std::vector<BlockId> out(k);
      size_t got = 0;
      double victims = medianUs(cuda, reps, [&](int) { got = pool.victims(Tier::Device, k, out.data()); });
      std::printf("%-4s victims(device, %zu) among %d evictable, distinct keys: %10.1f us (%zu returned)\n", name.c_str(), k,
                  blocks, victims, got);
      std::vector<BlockId> mine(out.begin(), out.begin() + static_cast<long>(got));
      if (!cuda) {
        reference = mine;
      } else if (mine != reference) {
        std::printf("MISMATCH: cuda victims differ from cpu victims\n");
        return 1;
      } else {
        std::printf("cuda victims equal the cpu victims\n");
      }

      // Churn: 1,024 acquire + release (pending per-block updates) before each selection.
      std::vector<BlockId> churnIds(k);
      std::vector<double> churnKeys(k);
      double churn = medianUs(cuda, reps, [&](int r) {
        for (size_t i = 0; i < k; ++i) {
          churnIds[i] = static_cast<BlockId>(mix(i + 1000 * static_cast<uint64_t>(r + 2)) % static_cast<uint64_t>(blocks));
          churnKeys[i] = uniformKey(i, 300 + r);
        }
        std::sort(churnIds.begin(), churnIds.end());
        churnIds.erase(std::unique(churnIds.begin(), churnIds.end()), churnIds.end());
        pool.acquire(churnIds.data(), churnIds.size());
        pool.release(churnIds.data(), churnKeys.data(), churnIds.size());
        got = pool.victims(Tier::Device, k, out.data());
      });
      std::printf("%-4s %zu acquire+release, then victims(device, %zu): %10.1f us\n", name.c_str(), k, k, churn);

      // All keys equal: the selection must break every tie by position, then id.
      {
        double same = 5.0;
        std::vector<double> sameKeys(sessions, same);
        pool.setSessionKeys(allSessions.data(), sameKeys.data(), minPos.data(), allSessions.size());
      }
      double ties = medianUs(cuda, reps, [&](int) { got = pool.victims(Tier::Device, k, out.data()); });
      std::printf("%-4s victims(device, %zu) among %d evictable, all keys equal: %10.1f us\n", name.c_str(), k, blocks, ties);
    } catch (const std::exception& e) {
      std::printf("%s: failed: %s\n", name.c_str(), e.what());
      return 1;
    }
  }
  return 0;
}
