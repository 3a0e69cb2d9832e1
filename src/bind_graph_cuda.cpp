// Bindings of the CUDA kNN graph: pointers in, nothing computed here.
#include <cstdint>

#include "bindings.h"
#include "graph/graph.h"

namespace deepret::bind {

void register_graph_cuda(py::module_& m) {
  py::enum_<graph::cuda::DType>(m, "GraphDType")
      .value("float32", graph::cuda::DType::F32)
      .value("float64", graph::cuda::DType::F64);
  m.def(
      "graph_from_knn",
      [](graph::cuda::DType dtype, std::uintptr_t scores, std::uintptr_t indices, index_t n, index_t k,
         double gamma, bool mutual, bool l2, bool normalize, std::uintptr_t indptr, std::uintptr_t out_indices,
         std::uintptr_t out_data, index_t capacity, std::uintptr_t stream) {
        graph::Options options;
        options.gamma = gamma, options.mutual = mutual, options.l2 = l2, options.normalize = normalize;
        py::gil_scoped_release release;
        return graph::cuda::graph_from_knn(
            dtype, reinterpret_cast<const void*>(scores), reinterpret_cast<const std::int64_t*>(indices), n, k,
            options, reinterpret_cast<std::int64_t*>(indptr), reinterpret_cast<std::int32_t*>(out_indices),
            reinterpret_cast<void*>(out_data), capacity, stream);
      },
      py::arg("dtype"), py::arg("scores"), py::arg("indices"), py::arg("n"), py::arg("k"), py::arg("gamma"),
      py::arg("mutual"), py::arg("l2"), py::arg("normalize"), py::arg("indptr"), py::arg("out_indices"),
      py::arg("out_data"), py::arg("capacity"), py::arg("stream"),
      "kNN graph on device pointers: writes indptr and the first nnz entries of out_indices/out_data; "
      "returns nnz (synchronizes the stream).");
}

}  // namespace deepret::bind
