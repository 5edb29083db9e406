// A backend is the set of storage pieces the pool drives: eviction order, block-table storage and
// payload store. The CPU backend is the reference; the CUDA backend must give identical results.
#pragma once
#include <memory>
#include <string>

#include "saga/block_tables.h"
#include "saga/eviction_order.h"
#include "saga/payload_store.h"
#include "saga/types.h"

namespace saga {

struct Backend {
  std::string name;  // "cpu" or "cuda"
  std::unique_ptr<EvictionOrder> order;
  std::unique_ptr<BlockTableStorage> tables;
  std::unique_ptr<PayloadStore> payload;
};

// What the CUDA runtime says about this machine. Any error (no driver: cudaErrorInsufficientDriver,
// no device, not compiled in) means "no CUDA", with the reason kept for the user.
struct CudaProbe {
  bool compiled = false;   // this build contains the CUDA backend
  bool available = false;  // and a device answered
  int devices = 0;
  std::string deviceName;  // of device 0
  std::string reason;      // why it is unavailable, or empty
};

CudaProbe probeCuda();
Backend makeCpuBackend(const PoolConfig& config);
// Throws Error(BackendUnavailable) with probeCuda()'s reason when CUDA cannot run here.
Backend makeCudaBackend(const PoolConfig& config);

}  // namespace saga
