// The runtime calls behind common/device.h.
#include <string>

#include "common/cuda_check.h"
#include "common/device.h"
#include "common/errors.h"

namespace deepret::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

int device_of_pointer(const void* ptr, const char* name) {
  cudaPointerAttributes attributes{};
  cuda_check(cudaPointerGetAttributes(&attributes, ptr), name);
  check(attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged,
        std::string(name) + " is not CUDA device memory");
  return attributes.device;
}

DeviceGuard::DeviceGuard(int device) {
  cuda_check(cudaGetDevice(&previous_), "cudaGetDevice");
  if (device != previous_) cuda_check(cudaSetDevice(device), "cudaSetDevice");
}

DeviceGuard::~DeviceGuard() {
  int current = -1;
  if (cudaGetDevice(&current) == cudaSuccess && current != previous_) cudaSetDevice(previous_);
}

void stream_wait(std::uintptr_t stream, std::uintptr_t producer) {
  // 0 and 1 both name the legacy default stream (CuPy says 0, the interface 1).
  const auto same = [](std::uintptr_t s) { return s == 0 ? std::uintptr_t(1) : s; };
  if (same(stream) == same(producer)) return;
  cudaEvent_t event;
  cuda_check(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate");
  const cudaError_t recorded = cudaEventRecord(event, reinterpret_cast<cudaStream_t>(producer));
  const cudaError_t waited =
      recorded == cudaSuccess
          ? cudaStreamWaitEvent(reinterpret_cast<cudaStream_t>(stream), event, 0)
          : recorded;
  cudaEventDestroy(event);  // released once the wait is satisfied
  cuda_check(waited, "waiting for the array's stream");
}

}  // namespace deepret::cuda
