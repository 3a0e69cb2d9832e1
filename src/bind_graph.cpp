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

template <class T>
py::tuple run_block(const py::array& scores, const py::array& indices, index_t row0, index_t n,
                    const py::array& in_source, const py::array& in_target, const py::array& in_score,
                    const graph::Options& options, int num_threads) {
  const index_t nb = scores.shape(0), k = scores.shape(1), m = in_source.size();
  const T* s = static_cast<const T*>(scores.data());
  const auto* idx = static_cast<const std::int64_t*>(indices.data());
  const auto* src = static_cast<const std::int64_t*>(in_source.data());
  const auto* tgt = static_cast<const std::int64_t*>(in_target.data());
  const T* is = static_cast<const T*>(in_score.data());
  py::array_t<double> degrees(nb);
  double* deg = degrees.mutable_data();
  graph::Csr<T> g;
  {
    EngineCall call;
    g = graph::graph_block<T>(s, idx, nb, k, row0, n, src, tgt, is, m, options, deg, num_threads);
  }
  const index_t nnz = g.nnz;
  return py::make_tuple(owning_array(std::move(g.data), nnz), owning_array(std::move(g.indices), nnz),
                        owning_array(std::move(g.indptr), nb + 1), degrees);
}

// (data, indices int32 global, indptr int64 local, degrees) of rows [row0, row0 + nb).
py::tuple graph_block(const py::array& scores, const py::array& indices, index_t row0, index_t n,
                      const py::array& in_source, const py::array& in_target, const py::array& in_score,
                      double gamma, bool mutual, bool l2, int num_threads) {
  for (const auto& [a, name] : {std::pair{&scores, "scores"}, {&indices, "indices"}, {&in_source, "in_source"},
                                {&in_target, "in_target"}, {&in_score, "in_score"}})
    require_contiguous(*a, name);
  check(scores.ndim() == 2 && indices.ndim() == 2 && scores.shape(0) == indices.shape(0) &&
            scores.shape(1) == indices.shape(1),
        "scores and indices must have the same shape (nb, k)");
  check(in_source.ndim() == 1 && in_target.ndim() == 1 && in_score.ndim() == 1 &&
            in_source.size() == in_target.size() && in_source.size() == in_score.size(),
        "in_source, in_target and in_score must be 1-D of one length");
  for (const py::array* a : {&indices, &in_source, &in_target})
    check_type(a->dtype().kind() == 'i' && a->dtype().itemsize() == 8, "indices must be int64");
  require_same_dtype(scores, in_score, "scores and in_score");
  graph::Options options{gamma, mutual, l2, false};
  const auto size = scores.dtype().itemsize();
  check_type(scores.dtype().kind() == 'f' && (size == 4 || size == 8), "scores must be float32 or float64");
  return size == 4 ? run_block<float>(scores, indices, row0, n, in_source, in_target, in_score, options, num_threads)
                   : run_block<double>(scores, indices, row0, n, in_source, in_target, in_score, options, num_threads);
}

index_t normalize_block(py::array indptr, py::array indices, py::array data, index_t row0,
                        const py::array& degrees, int num_threads) {
  require_contiguous(indptr, "indptr", true);
  require_contiguous(indices, "indices", true);
  require_contiguous(data, "data", true);
  require_contiguous(degrees, "degrees");
  check_type(indptr.dtype().kind() == 'i' && indptr.dtype().itemsize() == 8, "indptr must be int64");
  check_type(indices.dtype().kind() == 'i' && indices.dtype().itemsize() == 4, "indices must be int32");
  check_type(degrees.dtype().kind() == 'f' && degrees.dtype().itemsize() == 8, "degrees must be float64");
  const index_t nb = indptr.size() - 1, n = degrees.size();
  check(nb >= 0 && indices.size() == data.size(), "indices and data must have one length");
  auto* ptr = static_cast<std::int64_t*>(indptr.mutable_data());
  check(ptr[nb] == indices.size(), "indptr[-1] must equal nnz");
  auto* idx = static_cast<std::int32_t*>(indices.mutable_data());
  const auto* deg = static_cast<const double*>(degrees.data());
  const auto size = data.dtype().itemsize();
  check_type(data.dtype().kind() == 'f' && (size == 4 || size == 8), "data must be float32 or float64");
  EngineCall call;
  if (size == 4)
    return graph::normalize_block<float>(ptr, idx, static_cast<float*>(data.mutable_data()), nb, row0, deg, n,
                                         num_threads);
  return graph::normalize_block<double>(ptr, idx, static_cast<double*>(data.mutable_data()), nb, row0, deg, n,
                                        num_threads);
}

}  // namespace

void register_graph(py::module_& m) {
  m.def("graph_block", &graph_block, py::arg("scores"), py::arg("indices"), py::arg("row0"), py::arg("n"),
        py::arg("in_source"), py::arg("in_target"), py::arg("in_score"), py::arg("gamma"), py::arg("mutual"),
        py::arg("l2"), py::arg("num_threads") = 0,
        "Rows [row0, row0 + nb) of the unnormalized kNN graph from a block's lists and its in-pairs: "
        "(data, indices, indptr, degrees).");
  m.def("normalize_block", &normalize_block, py::arg("indptr"), py::arg("indices"), py::arg("data"),
        py::arg("row0"), py::arg("degrees"), py::arg("num_threads") = 0,
        "D^-1/2 A D^-1/2 on a block's rows in place (every point's degree given); returns the new nnz.");
  m.def("graph_from_knn", &graph_from_knn, py::arg("scores"), py::arg("indices"), py::arg("gamma"),
        py::arg("mutual"), py::arg("l2"), py::arg("normalize"), py::arg("num_threads") = 0,
        py::arg("two_level_from") = -1, py::arg("bucket_width") = 0,
        "Symmetric kNN affinity graph as CSR arrays (data, indices, indptr). two_level_from and "
        "bucket_width tune the transposes (tests; -1 and 0: the engine's defaults).");
}

}  // namespace deepret::bind
