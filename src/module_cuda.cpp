// The _core_cuda extension module: the CUDA engine. It reads device arrays
// through their __cuda_array_interface__ (device_array.h), so that it needs
// neither cupy nor CUDA headers; importing it works on machines without a GPU
// or driver.
#include <pybind11/pybind11.h>

#include "bindings.h"
#include "common/device.h"

namespace py = pybind11;

PYBIND11_MODULE(_core_cuda, m) {
  m.doc() = "deepret CUDA engine";
  deepret::bind::register_error_translator();
  m.def("device_count", &deepret::cuda::device_count,
        "Number of visible CUDA devices (0 without a driver or GPU).");
  deepret::bind::register_conv_cuda(m);
  deepret::bind::register_knn_cuda(m);
  deepret::bind::register_diffusion_cuda(m);
  deepret::bind::register_graph_cuda(m);
  deepret::bind::register_regions_cuda(m);
  deepret::bind::register_conv2d_cuda(m);
  deepret::bind::register_objects_cuda(m);
}
