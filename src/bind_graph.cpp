// Bindings of the kNN graph engine: dtype dispatch, GIL release, and the
// engine's CSR arrays handed to numpy without a copy.
#include <cstdint>
#include <cstdlib>
#include <utility>

#include "bindings.h"
#include "graph/graph.h"

namespace deepret::bind {

namespace {

// A numpy array that owns `data` [size] (freed when numpy lets go of it).
template <class V>
py::array owning_array(Buffer<V> data, index_t size) {
  V* raw = data.release();
  py::capsule owner(raw, [](void* p) { std::free(p); });
  return py::array_t<V>({static_cast<py::ssize_t>(size)}, raw, owner);
}

template <class T, class I>
py::tuple run(const py::array& scores, const py::array& indices, const graph::Options& options,
              int num_threads) {
  const T* s = static_cast<const T*>(scores.data());
  const I* idx = static_cast<const I*>(indices.data());
  const index_t n = scores.shape(0), k = scores.shape(1);
  graph::Csr<T> g;
  {
    EngineCall call;
    g = graph::graph_from_knn<T, I>(s, idx, n, k, options, num_threads);
  }
  const index_t nnz = g.nnz;
  return py::make_tuple(owning_array(std::move(g.data), nnz), owning_array(std::move(g.indices), nnz),
                        owning_array(std::move(g.indptr), n + 1));
}

// (data [nnz], indices [nnz] int32, indptr [n + 1] int64) of the graph.
py::tuple graph_from_knn(const py::array& scores, const py::array& indices, double gamma, bool mutual,
                         bool l2, bool normalize, int num_threads, index_t two_level_from, index_t bucket_width) {
  require_contiguous(scores, "scores");
  require_contiguous(indices, "indices");
  check(scores.ndim() == 2 && indices.ndim() == 2, "scores and indices must be 2-D (n, k)");
  check(scores.shape(0) == indices.shape(0) && scores.shape(1) == indices.shape(1),
        "scores and indices must have the same shape");
  graph::Options options{gamma, mutual, l2, normalize};
  if (two_level_from >= 0) options.two_level_from = two_level_from;
  options.bucket_width = bucket_width;
  const char kind = scores.dtype().kind();
  const auto size = scores.dtype().itemsize();
  const bool idx64 = indices.dtype().kind() == 'i' && indices.dtype().itemsize() == 8;
  const bool idx32 = indices.dtype().kind() == 'i' && indices.dtype().itemsize() == 4;
  check_type(idx32 || idx64, "indices must be int32 or int64");
  if (kind == 'f' && size == 4)
    return idx64 ? run<float, std::int64_t>(scores, indices, options, num_threads)
                 : run<float, std::int32_t>(scores, indices, options, num_threads);
  if (kind == 'f' && size == 8)
    return idx64 ? run<double, std::int64_t>(scores, indices, options, num_threads)
                 : run<double, std::int32_t>(scores, indices, options, num_threads);
  throw TypeError("scores must be float32 or float64");
}

}  // namespace

void register_graph(py::module_& m) {
  m.def("graph_from_knn", &graph_from_knn, py::arg("scores"), py::arg("indices"), py::arg("gamma"),
        py::arg("mutual"), py::arg("l2"), py::arg("normalize"), py::arg("num_threads") = 0,
        py::arg("two_level_from") = -1, py::arg("bucket_width") = 0,
        "Symmetric kNN affinity graph as CSR arrays (data, indices, indptr). two_level_from and "
        "bucket_width tune the transposes (tests; -1 and 0: the engine's defaults).");
}

}  // namespace deepret::bind
