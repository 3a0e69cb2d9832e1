// Helpers shared by the binding files: array checks that raise Python's
// ValueError/TypeError, and the registration hooks of each family.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <functional>
#include <string>

#include "common/array_view.h"
#include "common/errors.h"
#include "common/parallel.h"

namespace deepret::bind {

namespace py = pybind11;

// The array must be C-contiguous and writable when `writable`; the Python
// layer prepares arrays so, so a failure here is a bug in that layer.
inline void require_contiguous(const py::array& array, const char* name, bool writable = false) {
  check(array.flags() & py::array::c_style, std::string(name) + " must be C-contiguous");
  if (writable) check(array.writeable(), std::string(name) + " must be writable");
}

inline void require_same_dtype(const py::array& a, const py::array& b, const char* names) {
  const bool same = a.dtype().kind() == b.dtype().kind() && a.dtype().itemsize() == b.dtype().itemsize();
  check_type(same, std::string(names) + " must have the same dtype");
}

// The one way a binding calls the CPU engine: declared just before the call,
// it releases the GIL and, on Python's main thread (the only one Python runs
// signal handlers on), lets the engine poll for pending signals between work
// items: a Ctrl-C runs Python's handler (the GIL reacquired for the moment),
// its KeyboardInterrupt stops the call, and the caller gets it once every
// engine thread has finished. Declared after the arrays it uses.
class EngineCall {
 public:
  EngineCall() : poll_(signal_poll()) {}

 private:
  static std::function<void()> signal_poll();
  InterruptPoll poll_;
  py::gil_scoped_release release_;
};

// Records Python's main thread (module import).
void init_engine_calls();

void register_conv(py::module_& m);
void register_knn(py::module_& m);
void register_diffusion(py::module_& m);
void register_graph(py::module_& m);
void register_regions(py::module_& m);
void register_conv2d(py::module_& m);
void register_objects(py::module_& m);
void register_truncated(py::module_& m);
void register_launch(py::module_& m);

}  // namespace deepret::bind

namespace deepret::bind {
void register_conv_cuda(py::module_& m);
void register_knn_cuda(py::module_& m);
void register_diffusion_cuda(py::module_& m);
void register_graph_cuda(py::module_& m);
void register_regions_cuda(py::module_& m);
void register_conv2d_cuda(py::module_& m);
void register_objects_cuda(py::module_& m);
// Python exceptions for the engine's ValueError/TypeError (both modules).
void register_error_translator();
}  // namespace deepret::bind
