// The _core extension module: the CPU engine, one register_<family> per file.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings.h"
#include "common/buffer.h"
#include "common/parallel.h"
#include "common/simd.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "deepret CPU engine";

  deepret::bind::register_error_translator();

  m.def("simd_path", &deepret::simd_path, "The SIMD path the CPU kernels take: 'avx512f', 'avx2+fma' or 'portable'.");
  m.def("_force_simd_path", &deepret::force_simd_path, py::arg("path"),
        "Pin 'portable', 'avx2+fma' or 'avx512f', or 'auto' to detect (DEEPRET_SIMD, tests).");
  m.def("use_avx512f", &deepret::use_avx512f,
        "Whether the kernels with an AVX-512F variant take it now (detected or pinned).");
  m.def("cpu_has_avx2_fma", &deepret::cpu_has_avx2_fma,
        "Whether this CPU and build have the AVX2+FMA path (whatever is pinned).");
  m.def("cpu_has_avx512f", &deepret::cpu_has_avx512f,
        "Whether this CPU and build have the AVX-512F path (whatever is pinned).");
  m.def("max_threads", &deepret::max_threads,
        "Threads a parallel kernel uses by default: OMP_NUM_THREADS, else the CPUs this process may use.");
  deepret::bind::init_engine_calls();

  // Test hooks of the runtime (tests/test_runtime.py).
  m.def("_fail_allocation", &deepret::fail_allocation, py::arg("n"),
        "Test hook: the n-th checked engine allocation from now (0 = the next) raises "
        "MemoryError, once; n < 0 disarms.");
  m.def(
      "_check_allocation",
      [](std::int64_t count, std::size_t itemsize) {
        return deepret::checked_bytes(count, itemsize, "a test request");
      },
      py::arg("count"), py::arg("itemsize"),
      "Test hook: the bytes of count items, or the MemoryError such a request gets.");
  m.def("_allocation_count", &deepret::allocation_count,
        "Test hook: checked engine allocations made so far in this process.");
  m.def(
      "_runtime_self_test",
      [](std::int64_t chunks, std::int64_t fail_at, int num_threads) {
        deepret::bind::EngineCall call;
        deepret::runtime_self_test(chunks, fail_at, num_threads);
      },
      py::arg("chunks"), py::arg("fail_at"), py::arg("num_threads") = 0,
      "Test hook: a parallel_for whose chunk fail_at raises ValueError (a worker's when it can).");

  deepret::bind::register_conv(m);
  deepret::bind::register_knn(m);
  deepret::bind::register_diffusion(m);
  deepret::bind::register_graph(m);
  deepret::bind::register_regions(m);
  deepret::bind::register_conv2d(m);
  deepret::bind::register_objects(m);
  deepret::bind::register_truncated(m);
  deepret::bind::register_launch(m);
}
