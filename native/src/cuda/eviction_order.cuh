// CudaEvictionOrder: the eviction order with per-block key, session, position and flags in device memory.
// The cheap per-block calls only touch host-side pending records (pending_updates.cuh); everything that
// reads device state (select, setSessionKeys, move, exportKeys) first flushes them with one upload and
// one scatter kernel, and synchronizes its stream before returning.
#pragma once
#include <cstdint>

#include "device_buffer.cuh"
#include "order_arrays.cuh"
#include "pending_updates.cuh"
#include "saga/eviction_order.h"
#include "saga/types.h"
#include "session_keys.cuh"
#include "victim_select.cuh"

namespace saga {
namespace cuda {

class CudaEvictionOrder final : public EvictionOrder {
 public:
  CudaEvictionOrder(int32_t deviceCapacity, int32_t hostCapacity, int smCount);

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

 private:
  void flush();

  int32_t deviceCapacity_;
  int32_t blockCount_;
  Stream stream_;
  DeviceArray<double> key_;
  DeviceArray<int32_t> session_;
  DeviceArray<int32_t> position_;
  DeviceArray<uint8_t> flags_;
  OrderArrays arrays_;
  PendingUpdates pending_;
  SessionRekeyer rekeyer_;
  VictimSelector selector_;
  PinnedArray<int2> hostMoves_;
  DeviceArray<int2> deviceMoves_;
};

}  // namespace cuda
}  // namespace saga
