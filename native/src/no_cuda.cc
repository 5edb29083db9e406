// The CUDA entry points of a build made without CUDA (the node-gyp CPU addon, SAGA_CUDA=OFF).
#include "saga/backend.h"
#include "saga/errors.h"

namespace saga {

CudaProbe probeCuda() {
  CudaProbe p;
  p.reason = "this build of the addon has no CUDA backend (built without CUDA; npm run build:cuda makes one)";
  return p;
}

Backend makeCudaBackend(const PoolConfig&) { throw Error(ErrorCode::BackendUnavailable, probeCuda().reason); }

}  // namespace saga
