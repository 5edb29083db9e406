// Error handling for CUDA calls: every runtime call and every kernel launch is checked, and a failure
// becomes saga::Error(Internal, "what: <cudaGetErrorString>") — the addon never aborts on a CUDA error.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "saga/errors.h"

namespace saga {
namespace cuda {

[[noreturn]] inline void throwCudaError(cudaError_t status, const char* what) {
  (void)cudaGetLastError();  // clear a non-sticky error so the next call does not report it again
  throw Error(ErrorCode::Internal, std::string(what) + ": " + cudaGetErrorString(status));
}

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throwCudaError(status, what);
}

// Right after a <<<...>>> launch: a bad configuration or a missing kernel image shows up here.
inline void checkLaunch(const char* what) { check(cudaGetLastError(), what); }

}  // namespace cuda
}  // namespace saga
