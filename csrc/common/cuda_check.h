// CUDA error checks for the engine's .cu files: a failed call becomes a
// std::runtime_error (Python's RuntimeError) naming the call and CUDA's reason.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace deepret {

inline void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

}  // namespace deepret
