// Bindings of the CUDA kNN search: device arrays in (device_array.h),
// checked here before anything reaches the GPU; nothing computed here.
#include <cstdint>

#include "bindings.h"
#include "device_array.h"
#include "knn/knn.h"

namespace deepret::bind {

void register_knn_cuda(py::module_& m) {
  m.attr("KNN_MAX_K") = knn::cuda::kMaxK;
  m.def(
      "knn_search",
      [](py::handle x_, py::handle queries_, py::handle scores_, py::handle indices_, int metric,
         index_t self_offset, py::object allocate, std::uintptr_t stream) {
        const DeviceArray x = device_array(x_, "x"), queries = device_array(queries_, "queries"),
                          scores = device_array(scores_, "scores", true),
                          indices = device_array(indices_, "indices", true);
        require_dtype(x, {DType::F32, DType::F64});
        require_shape(x, {-1, -1}, "(n, d)");
        require_same_dtype(x, queries);
        require_shape(queries, {-1, x.dim(1)}, "(nq, d)");
        require_same_dtype(x, scores);
        require_shape(scores, {queries.dim(0), -1}, "(nq, k)");
        require_dtype(indices, {DType::I64});
        require_shape(indices, {queries.dim(0), scores.dim(1)}, "(nq, k)");
        check(metric == 0 || metric == 1, "metric must be 0 (ip) or 1 (l2)");
        // The engine's own checks of n, k and the self offset come before any launch too.
        DeviceCall call({&x, &queries, &scores, &indices}, stream);
        PyScratch scratch(std::move(allocate));
        py::gil_scoped_release release;
        knn::cuda::search(x.dtype, x.ptr, x.dim(0), x.dim(1), queries.ptr, queries.dim(0), scores.dim(1),
                          static_cast<knn::Metric>(metric), self_offset, scores.ptr, indices.data<std::int64_t>(),
                          scratch, stream);
      },
      py::arg("x"), py::arg("queries"), py::arg("scores"), py::arg("indices"), py::kw_only(), py::arg("metric"),
      py::arg("self_offset"), py::arg("allocate"), py::arg("stream"),
      "Exact kNN on device arrays (row-major): each query's k best database rows, best first; scratch "
      "from allocate(nbytes).");
}

}  // namespace deepret::bind
