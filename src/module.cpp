// The _core extension module: the CPU engine, one register_<family> per file.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings.h"
#include "common/parallel.h"
#include "common/simd.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "deepret CPU engine";

  deepret::bind::register_error_translator();

  m.def("simd_path", &deepret::simd_path, "The SIMD path the CPU kernels take: 'avx512f', 'avx2+fma' or 'portable'.");
  m.def("_force_simd_path", &deepret::force_simd_path, py::arg("path"),
        "Force 'portable' or 'avx2+fma', or 'auto' to detect (for tests).");
  m.def("use_avx512f", &deepret::use_avx512f,
        "Whether the 2-D kernels take their AVX-512F variant now (auto detection only).");
  m.def("max_threads", &deepret::max_threads, "Threads a parallel kernel uses by default (OMP_NUM_THREADS).");
  m.def("has_openmp", []() {
#if defined(_OPENMP)
    return true;
#else
    return false;
#endif
  });

  deepret::bind::register_conv(m);
  deepret::bind::register_knn(m);
  deepret::bind::register_diffusion(m);
  deepret::bind::register_graph(m);
  deepret::bind::register_regions(m);
  deepret::bind::register_conv2d(m);
  deepret::bind::register_objects(m);
  deepret::bind::register_truncated(m);
}
