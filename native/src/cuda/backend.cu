// probeCuda and makeCudaBackend for builds with CUDA. Any error from the runtime while probing (no
// driver gives cudaErrorInsufficientDriver, not "0 devices") means "no CUDA here", with the reason kept.
#include <cuda_runtime.h>

#include <memory>
#include <string>

#include "block_tables.cuh"
#include "cuda_check.cuh"
#include "eviction_order.cuh"
#include "payload_store.cuh"
#include "saga/backend.h"
#include "saga/errors.h"

namespace saga {
namespace {

// Compiled with the same architectures as every other kernel: if the device can load this one, it can
// load them all.
__global__ void probeKernel() {}

std::string describe(const std::string& call, cudaError_t status) {
  std::string message = call;
  (void)cudaGetLastError();
  return message + " failed: " + cudaGetErrorString(status) + " (" + cudaGetErrorName(status) + ", error " +
         std::to_string(static_cast<int>(status)) + ")";
}

}  // namespace

CudaProbe probeCuda() {
  CudaProbe p;
  p.compiled = true;
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    p.reason = describe("cudaGetDeviceCount", status);
    return p;
  }
  if (count <= 0) {
    p.reason = "the CUDA runtime reports no device";
    return p;
  }
  p.devices = count;
  cudaDeviceProp prop;
  status = cudaGetDeviceProperties(&prop, 0);
  if (status != cudaSuccess) {
    p.reason = describe("cudaGetDeviceProperties(0)", status);
    return p;
  }
  p.deviceName = prop.name;
  status = cudaSetDevice(0);
  if (status != cudaSuccess) {
    p.reason = describe("cudaSetDevice(0)", status);
    return p;
  }
  cudaFuncAttributes attributes;
  status = cudaFuncGetAttributes(&attributes, probeKernel);
  if (status != cudaSuccess) {
    p.reason = describe("loading the addon's kernels on " + p.deviceName + " (compute capability " +
                            std::to_string(prop.major) + "." + std::to_string(prop.minor) + ")",
                        status);
    return p;
  }
  p.available = true;
  return p;
}

Backend makeCudaBackend(const PoolConfig& config) {
  CudaProbe probe = probeCuda();
  if (!probe.available) throw Error(ErrorCode::BackendUnavailable, "CUDA backend unavailable: " + probe.reason);
  cuda::check(cudaSetDevice(0), "cudaSetDevice(0)");
  int smCount = 0;
  cuda::check(cudaDeviceGetAttribute(&smCount, cudaDevAttrMultiProcessorCount, 0),
              "cudaDeviceGetAttribute(multiProcessorCount)");
  Backend b;
  b.name = "cuda";
  b.order = std::make_unique<cuda::CudaEvictionOrder>(config.deviceCapacity, config.hostCapacity, smCount);
  b.tables = std::make_unique<cuda::CudaBlockTableStorage>(config.tableRows, config.tableCols);
  b.payload = std::make_unique<cuda::CudaPayloadStore>(config.deviceCapacity, config.hostCapacity, config.payloadBytes);
  return b;
}

}  // namespace saga
