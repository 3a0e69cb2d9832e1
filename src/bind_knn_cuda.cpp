// Bindings of the CUDA kNN search: device pointers in, nothing computed here.
#include <cstdint>

#include "bindings.h"
#include "knn/knn.h"

namespace deepret::bind {

void register_knn_cuda(py::module_& m) {
  py::enum_<knn::cuda::DType>(m, "KnnDType")
      .value("float32", knn::cuda::DType::F32)
      .value("float64", knn::cuda::DType::F64);
  m.attr("KNN_MAX_K") = knn::cuda::kMaxK;
  m.def(
      "knn_search",
      [](knn::cuda::DType dtype, std::uintptr_t x, index_t n, index_t d, std::uintptr_t queries,
         index_t nq, index_t k, int metric, index_t self_offset, std::uintptr_t scores,
         std::uintptr_t indices, std::uintptr_t stream) {
        check(metric == 0 || metric == 1, "metric must be 0 (ip) or 1 (l2)");
        py::gil_scoped_release release;
        knn::cuda::search(dtype, reinterpret_cast<const void*>(x), n, d,
                          reinterpret_cast<const void*>(queries), nq, k,
                          static_cast<knn::Metric>(metric), self_offset,
                          reinterpret_cast<void*>(scores), reinterpret_cast<std::int64_t*>(indices),
                          stream);
      },
      py::arg("dtype"), py::arg("x"), py::arg("n"), py::arg("d"), py::arg("queries"), py::arg("nq"),
      py::arg("k"), py::arg("metric"), py::arg("self_offset"), py::arg("scores"),
      py::arg("indices"), py::arg("stream"),
      "Exact kNN on device pointers (row-major): each query's k best database rows, best first.");
}

}  // namespace deepret::bind
