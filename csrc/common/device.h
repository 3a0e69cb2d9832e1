// What the CUDA engine's callers need from the CUDA runtime, declared without
// CUDA headers (implemented in device_cuda.cu): the bindings stay plain C++.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/array_view.h"

namespace deepret::cuda {

// Number of visible CUDA devices (0 when there is no driver or no GPU).
int device_count();

// The device that holds the memory at `ptr` (cudaPointerGetAttributes);
// ValueError for host memory the device cannot address.
int device_of_pointer(const void* ptr, const char* name);

// Makes `device` current for its lifetime and restores the previous device.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// Work queued on `stream` from now on waits for the work queued so far on
// `producer` (an event recorded there): how a call honours the stream an
// array's __cuda_array_interface__ names. Both are cudaStream_t handles as
// integers (1 = the legacy default stream, 2 = the per-thread one).
void stream_wait(std::uintptr_t stream, std::uintptr_t producer);

// Device scratch of one call. The engine never calls cudaMalloc/cudaFree:
// every temporary buffer comes from the caller's allocator (the bindings
// forward to CuPy's or torch's memory pool), stream-ordered on the call's
// stream and alive until the call returns.
class Scratch {
 public:
  virtual ~Scratch() = default;
  virtual void* allocate(std::size_t bytes) = 0;

  template <class T>
  T* array(index_t count) {
    return static_cast<T*>(allocate(sizeof(T) * static_cast<std::size_t>(count > 0 ? count : 1)));
  }
};

}  // namespace deepret::cuda
