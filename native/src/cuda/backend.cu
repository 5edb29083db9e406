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

#ifndef SAGA_CUDA_MIN_ARCH
#define SAGA_CUDA_MIN_ARCH 80  // the lowest of CMAKE_CUDA_ARCHITECTURES, set by CMake
#endif

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
  // A cheap compatibility check that creates no CUDA context (a context costs time and device memory,
  // and the caller may only be choosing which addon to load). makeCudaBackend checks the kernel image.
  const int cc = prop.major * 10 + prop.minor;
  if (cc < SAGA_CUDA_MIN_ARCH) {
    p.reason = p.deviceName + " has compute capability " + std::to_string(prop.major) + "." + std::to_string(prop.minor) +
               "; this build's kernels need " + std::to_string(SAGA_CUDA_MIN_ARCH / 10) + "." +
               std::to_string(SAGA_CUDA_MIN_ARCH % 10) + " or newer";
    return p;
  }
  p.available = true;
  return p;
}

Backend makeCudaBackend(const PoolConfig& config) {
  CudaProbe probe = probeCuda();
  if (!probe.available) throw Error(ErrorCode::BackendUnavailable, "CUDA backend unavailable: " + probe.reason);
  cudaError_t status = cudaSetDevice(0);
  if (status != cudaSuccess) throw Error(ErrorCode::BackendUnavailable, "CUDA backend unavailable: " + describe("cudaSetDevice(0)", status));
  // Loads the module (creates the context): if this kernel has no image for the device, none has.
  cudaFuncAttributes attributes;
  status = cudaFuncGetAttributes(&attributes, probeKernel);
  if (status != cudaSuccess) {
    throw Error(ErrorCode::BackendUnavailable,
                "CUDA backend unavailable: " + describe("loading the kernels on " + probe.deviceName, status));
  }
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
