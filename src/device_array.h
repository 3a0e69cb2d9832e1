// Device arrays as the CUDA bindings read them: the
// __cuda_array_interface__ (version 3) of any object that has one (CuPy,
// torch, numba), parsed and checked here, before anything reaches the CUDA
// runtime, so a wrong shape, dtype, layout or device is a ValueError or
// TypeError and never a launch on bad memory. Then DeviceCall makes the
// arrays' device current, orders the call after the streams the arrays
// name, and Scratch lends the engine device memory from the caller's pool.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "common/array_view.h"
#include "common/device.h"
#include "common/dtype.h"

namespace deepret::bind {

namespace py = pybind11;

struct DeviceArray {
  std::string name;
  void* ptr = nullptr;
  std::vector<index_t> shape;
  DType dtype = DType::F32;
  bool readonly = false;
  int device = -1;                      // from __dlpack_device__; -1: ask the runtime
  std::optional<std::uintptr_t> stream;  // the interface's "stream": work to wait for

  int ndim() const { return static_cast<int>(shape.size()); }
  index_t dim(int i) const { return shape[static_cast<std::size_t>(i)]; }
  index_t size() const;
  template <class T>
  T* data() const {
    return static_cast<T*>(ptr);
  }
};

// Reads `object`'s interface: TypeError when it has none (a numpy array, a
// list) or its typestr is no dtype the engine knows; ValueError when it is
// not C-contiguous, carries a mask, or lives on a non-CUDA device; with
// `writable`, ValueError when it is read-only.
DeviceArray device_array(py::handle object, const char* name, bool writable = false);
// None -> nullopt, else device_array.
std::optional<DeviceArray> optional_device_array(py::handle object, const char* name,
                                                 bool writable = false);

// "x must be float32 or float64, got int32" (TypeError).
void require_dtype(const DeviceArray& a, std::initializer_list<DType> allowed);
// "x and queries must have the same dtype, got float32 and float64" (TypeError).
void require_same_dtype(const DeviceArray& a, const DeviceArray& b);
// Shape check, -1 matching any length: "x must be 2-D (n, d), got shape (3,)"
// and "scores must have shape (5, 10), got (5, 9)" (ValueError).
void require_shape(const DeviceArray& a, std::initializer_list<index_t> dims, const char* layout);

// The device state of one engine call, declared after every check and just
// before the engine runs: all arrays on one CUDA device (ValueError
// otherwise), that device current until the call ends, and `stream` (the
// caller's current stream, a cudaStream_t as an integer) made to wait for
// each stream the arrays' interfaces name.
class DeviceCall {
 public:
  DeviceCall(std::initializer_list<const DeviceArray*> arrays, std::uintptr_t stream);
  int device() const { return device_; }

 private:
  int device_;
  std::optional<cuda::DeviceGuard> guard_;
};

// The engine's device scratch from a Python allocator: `allocate(nbytes)`
// returns a device array of at least nbytes bytes (a CuPy or torch uint8
// array, so the memory comes from that library's pool, stream-ordered on
// the current stream). Each array is kept until this object is destroyed,
// which must happen with the GIL held (declare it before the call's
// gil_scoped_release).
class PyScratch final : public cuda::Scratch {
 public:
  explicit PyScratch(py::object allocate) : allocate_(std::move(allocate)) {}
  void* allocate(std::size_t bytes) override;

 private:
  py::object allocate_;
  std::vector<py::object> held_;
};

}  // namespace deepret::bind
