#include <memory>

#include "block_table_storage.h"
#include "eviction_order.h"
#include "payload_store.h"
#include "saga/backend.h"

namespace saga {

Backend makeCpuBackend(const PoolConfig& config) {
  Backend b;
  b.name = "cpu";
  b.order = std::make_unique<CpuEvictionOrder>(config.deviceCapacity, config.hostCapacity);
  b.tables = std::make_unique<CpuBlockTableStorage>(config.tableRows, config.tableCols);
  b.payload = std::make_unique<CpuPayloadStore>(config.deviceCapacity + config.hostCapacity, config.payloadBytes);
  return b;
}

}  // namespace saga
