// Small shared vocabulary of the block core.
#pragma once
#include <cstddef>
#include <cstdint>

namespace saga {

using BlockId = int32_t;
using BlockHash = uint64_t;
using SessionId = int32_t;

// Hash 0 marks "no hash": a block still being filled, which is never cached or shared.
constexpr BlockHash kNoHash = 0;
constexpr SessionId kNoSession = -1;
constexpr BlockId kNoBlock = -1;

// Ids [0, deviceCapacity) are device slots, [deviceCapacity, deviceCapacity + hostCapacity) host slots:
// a block's tier is where its bytes live, so it is derived from its id, never stored.
enum class Tier : uint8_t { Device = 0, Host = 1 };

// Free: holds nothing. Cached: holds a hashed block, no references, evictable. Referenced: in use.
enum class BlockState : uint8_t { Free = 0, Cached = 1, Referenced = 2 };

struct PoolConfig {
  int32_t deviceCapacity = 0;     // blocks in GPU memory (> 0)
  int32_t hostCapacity = 0;       // blocks in host memory (>= 0; 0 disables offload)
  int32_t payloadBytes = 0;       // bytes of KV data per block (0: bookkeeping only)
  int32_t tableRows = 0;          // sequences in the dense block table
  int32_t tableCols = 0;          // blocks per sequence in the block table
};

}  // namespace saga
