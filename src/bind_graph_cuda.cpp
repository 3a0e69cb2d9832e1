// Bindings of the CUDA kNN graph: device arrays in (device_array.h),
// checked here before anything reaches the GPU; nothing computed here.
#include <cstdint>

#include "bindings.h"
#include "device_array.h"
#include "graph/graph.h"

namespace deepret::bind {

void register_graph_cuda(py::module_& m) {
  m.def(
      "graph_from_knn",
      [](py::handle scores_, py::handle indices_, py::handle indptr_, py::handle out_indices_,
         py::handle out_data_, double gamma, bool mutual, bool l2, bool normalize, py::object allocate,
         std::uintptr_t stream) {
        const DeviceArray scores = device_array(scores_, "scores"), indices = device_array(indices_, "indices"),
                          indptr = device_array(indptr_, "indptr", true),
                          out_indices = device_array(out_indices_, "out_indices", true),
                          out_data = device_array(out_data_, "out_data", true);
        require_dtype(scores, {DType::F32, DType::F64});
        require_shape(scores, {-1, -1}, "(n, k)");
        require_dtype(indices, {DType::I64});
        require_shape(indices, {scores.dim(0), scores.dim(1)}, "(n, k)");
        require_dtype(indptr, {DType::I64});
        require_shape(indptr, {scores.dim(0) + 1}, "(n + 1,)");
        require_dtype(out_indices, {DType::I32});
        require_shape(out_indices, {-1}, "(capacity,)");
        const index_t n = scores.dim(0), k = scores.dim(1);
        check(out_indices.dim(0) >= (mutual ? n * k : 2 * n * k),
              "out_indices and out_data must hold n * k (mutual) or 2 * n * k entries");
        require_same_dtype(scores, out_data);
        require_shape(out_data, {out_indices.dim(0)}, "(capacity,)");
        check(gamma > 0, "gamma must be a finite number > 0");
        graph::Options options;
        options.gamma = gamma, options.mutual = mutual, options.l2 = l2, options.normalize = normalize;
        DeviceCall call({&scores, &indices, &indptr, &out_indices, &out_data}, stream);
        PyScratch scratch(std::move(allocate));
        py::gil_scoped_release release;
        return graph::cuda::graph_from_knn(scores.dtype, scores.ptr, indices.data<const std::int64_t>(), n, k,
                                           options, indptr.data<std::int64_t>(), out_indices.data<std::int32_t>(),
                                           out_data.ptr, out_indices.dim(0), scratch, stream);
      },
      py::arg("scores"), py::arg("indices"), py::arg("indptr"), py::arg("out_indices"), py::arg("out_data"),
      py::kw_only(), py::arg("gamma"), py::arg("mutual"), py::arg("l2"), py::arg("normalize"),
      py::arg("allocate"), py::arg("stream"),
      "kNN graph on device arrays: writes indptr and the first nnz entries of out_indices/out_data; "
      "returns nnz (synchronizes the stream).");
}

}  // namespace deepret::bind
