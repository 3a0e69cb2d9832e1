// Bindings of the CUDA batched CG: device pointers in, nothing computed here.
#include <cstdint>

#include "bindings.h"
#include "diffusion/cg.h"

namespace deepret::bind {

void register_diffusion_cuda(py::module_& m) {
  namespace dc = diffusion::cuda;
  m.def(
      "batched_cg",
      [](bool float64, bool int64, index_t n, std::uintptr_t indptr, std::uintptr_t indices,
         std::uintptr_t data, double alpha, std::uintptr_t y, index_t m_, std::uintptr_t f,
         double tol, index_t maxiter, std::uintptr_t iterations, std::uintptr_t residuals,
         std::uintptr_t stream) {
        py::gil_scoped_release release;
        dc::batched_cg(float64 ? dc::Value::F64 : dc::Value::F32, int64 ? dc::Index::I64 : dc::Index::I32,
                       n, reinterpret_cast<const void*>(indptr), reinterpret_cast<const void*>(indices),
                       reinterpret_cast<const void*>(data), alpha, reinterpret_cast<const void*>(y),
                       m_, reinterpret_cast<void*>(f), tol, maxiter,
                       reinterpret_cast<std::int64_t*>(iterations), reinterpret_cast<double*>(residuals),
                       stream);
      },
      py::arg("float64"), py::arg("int64"), py::arg("n"), py::arg("indptr"), py::arg("indices"),
      py::arg("data"), py::arg("alpha"), py::arg("y"), py::arg("m"), py::arg("f"), py::arg("tol"),
      py::arg("maxiter"), py::arg("iterations"), py::arg("residuals"), py::arg("stream"),
      "Solve (I - alpha W) f = y on the GPU (device pointers; row-major y and f).");
}

}  // namespace deepret::bind
