// Bindings of exact kNN: a packed database object (built once) and its search.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "bindings.h"
#include "knn/knn.h"

namespace deepret::bind {

namespace {

template <class T>
using Rows = py::array_t<T, py::array::c_style>;

template <class T>
void bind_database(py::module_& m, const char* name) {
  using Database = knn::PackedDatabase<T>;
  py::class_<Database>(m, name, "A database packed for exact kNN search (rows of x).")
      .def(py::init([](Rows<T> x, int num_threads) {
             check(x.ndim() == 2, "x must be 2-D (n, d)");
             const T* data = x.data();
             const index_t n = x.shape(0), d = x.shape(1);
             EngineCall call;
             return std::make_unique<Database>(data, n, d, num_threads);
           }),
           py::arg("x"), py::arg("num_threads") = 0)
      .def_property_readonly("n", &Database::size)
      .def_property_readonly("d", &Database::dim)
      .def(
          "search",
          [](const Database& db, Rows<T> queries, index_t k, int metric, index_t self_offset,
             Rows<T> scores, Rows<std::int64_t> indices, int num_threads, bool raw) {
            check(queries.ndim() == 2 && queries.shape(1) == db.dim(),
                  "queries must be 2-D (nq, " + std::to_string(db.dim()) + ")");
            const index_t nq = queries.shape(0);
            check(scores.ndim() == 2 && scores.shape(0) == nq && scores.shape(1) == k,
                  "scores must have shape (nq, k)");
            check(indices.ndim() == 2 && indices.shape(0) == nq && indices.shape(1) == k,
                  "indices must have shape (nq, k)");
            check(metric == 0 || metric == 1, "metric must be 0 (ip) or 1 (l2)");
            const T* q = queries.data();
            T* s = scores.mutable_data();
            std::int64_t* i = indices.mutable_data();
            EngineCall call;
            knn::search<T>(db, q, nq, k, static_cast<knn::Metric>(metric), self_offset, s, i,
                           num_threads, raw);
          },
          py::arg("queries"), py::arg("k"), py::arg("metric"), py::arg("self_offset"),
          py::arg("scores"), py::arg("indices"), py::arg("num_threads") = 0, py::arg("raw") = false,
          "Fill scores/indices (nq, k) with each query's k best rows, best first; "
          "self_offset >= 0 means queries are rows self_offset.. of the database and skip themselves.")
      .def(
          "search_self",
          [](const Database& db, Rows<T> x, index_t k, int metric, bool exclude_self, Rows<T> scores,
             Rows<std::int64_t> indices, int num_threads, py::object progress, bool raw) {
            check(x.ndim() == 2 && x.shape(0) == db.size() && x.shape(1) == db.dim(),
                  "x must be the (n, d) rows the database was built from");
            check(scores.ndim() == 2 && scores.shape(0) == db.size() && scores.shape(1) == k,
                  "scores must have shape (n, k)");
            check(indices.ndim() == 2 && indices.shape(0) == db.size() && indices.shape(1) == k,
                  "indices must have shape (n, k)");
            check(metric == 0 || metric == 1, "metric must be 0 (ip) or 1 (l2)");
            std::function<void(index_t, index_t)> report;
            if (!progress.is_none()) {
              // Called as tiles finish, on this (GIL-released) thread.
              report = [&progress](index_t done, index_t total) {
                py::gil_scoped_acquire acquire;
                progress(done, total);
              };
            }
            const T* rows = x.data();
            T* s = scores.mutable_data();
            std::int64_t* i = indices.mutable_data();
            EngineCall call;
            knn::search_self<T>(db, rows, k, static_cast<knn::Metric>(metric), exclude_self, s, i,
                                num_threads, report, raw);
          },
          py::arg("x"), py::arg("k"), py::arg("metric"), py::arg("exclude_self"), py::arg("scores"),
          py::arg("indices"), py::arg("num_threads") = 0, py::arg("progress") = py::none(),
          py::arg("raw") = false,
          "All-vs-all search of the database's own rows x, using the symmetry of the scores; "
          "progress(done, total) is called as tiles finish.")
      .def(
          "search_pair",
          [](const Database& db, Rows<T> a, Rows<T> b, index_t ka, index_t kb, int metric,
             Rows<T> a_scores, Rows<std::int64_t> a_indices, Rows<T> b_scores,
             Rows<std::int64_t> b_indices, int num_threads) {
            check(a.ndim() == 2 && a.shape(1) == db.dim(), "a must be 2-D (na, d)");
            check(b.ndim() == 2 && b.shape(0) == db.size() && b.shape(1) == db.dim(),
                  "b must be the (nb, d) rows the database was built from");
            const index_t na = a.shape(0), nb = db.size();
            check(a_scores.ndim() == 2 && a_scores.shape(0) == na && a_scores.shape(1) == ka &&
                      a_indices.ndim() == 2 && a_indices.shape(0) == na && a_indices.shape(1) == ka,
                  "a_scores and a_indices must have shape (na, ka)");
            check(b_scores.ndim() == 2 && b_scores.shape(0) == nb && b_scores.shape(1) == kb &&
                      b_indices.ndim() == 2 && b_indices.shape(0) == nb && b_indices.shape(1) == kb,
                  "b_scores and b_indices must have shape (nb, kb)");
            check(metric == 0 || metric == 1, "metric must be 0 (ip) or 1 (l2)");
            const T* pa = a.data();
            const T* pb = b.data();
            T* as = a_scores.mutable_data();
            std::int64_t* ai = a_indices.mutable_data();
            T* bs = b_scores.mutable_data();
            std::int64_t* bi = b_indices.mutable_data();
            EngineCall call;
            knn::search_pair<T>(db, pa, na, pb, ka, kb, static_cast<knn::Metric>(metric), as, ai, bs,
                                bi, num_threads);
          },
          py::arg("a"), py::arg("b"), py::arg("ka"), py::arg("kb"), py::arg("metric"),
          py::arg("a_scores"), py::arg("a_indices"), py::arg("b_scores"), py::arg("b_indices"),
          py::arg("num_threads") = 0,
          "Both directions of the rectangle a x b (b: the database's rows), each score computed "
          "once: a's best ka rows of b and b's best kb rows of a, local indices, raw scores.")
      .def(
          "similarity_only",
          [](const Database& db, Rows<T> queries, int num_threads) {
            check(queries.ndim() == 2 && queries.shape(1) == db.dim(), "queries must be 2-D (nq, d)");
            const T* q = queries.data();
            const index_t nq = queries.shape(0);
            EngineCall call;
            return knn::similarity_only<T>(db, q, nq, num_threads);
          },
          py::arg("queries"), py::arg("num_threads") = 0,
          "Benchmark hook: compute every score of the queries against the database with "
          "search()'s kernel and blocking, select nothing; returns a checksum.");
}

template <class T>
void bind_merge(py::module_& m) {
  m.def(
      "knn_merge",
      [](Rows<T> a_scores, Rows<std::int64_t> a_indices, Rows<T> b_scores,
         Rows<std::int64_t> b_indices, index_t k, Rows<T> scores, Rows<std::int64_t> indices,
         int num_threads) {
        const index_t n = a_scores.shape(0), ka = a_scores.shape(1), kb = b_scores.shape(1);
        check(a_scores.ndim() == 2 && a_indices.ndim() == 2 && a_indices.shape(0) == n &&
                  a_indices.shape(1) == ka,
              "a_scores and a_indices must have the same shape (n, ka)");
        check(b_scores.ndim() == 2 && b_indices.ndim() == 2 && b_scores.shape(0) == n &&
                  b_indices.shape(0) == n && b_indices.shape(1) == kb,
              "b_scores and b_indices must have the same shape (n, kb)");
        check(scores.ndim() == 2 && indices.ndim() == 2 && scores.shape(0) == n &&
                  scores.shape(1) == k && indices.shape(0) == n && indices.shape(1) == k,
              "scores and indices must have shape (n, k)");
        const T* as = a_scores.data();
        const std::int64_t* ai = a_indices.data();
        const T* bs = b_scores.data();
        const std::int64_t* bi = b_indices.data();
        T* s = scores.mutable_data();
        std::int64_t* i = indices.mutable_data();
        EngineCall call;
        knn::merge_sorted<T>(n, as, ai, ka, bs, bi, kb, k, s, i, num_threads);
      },
      py::arg("a_scores"), py::arg("a_indices"), py::arg("b_scores"), py::arg("b_indices"),
      py::arg("k"), py::arg("scores"), py::arg("indices"), py::arg("num_threads") = 0,
      "Per row, the best k of two best-first lists of disjoint candidates (larger score, then "
      "smaller index), best first.");
  m.def(
      "knn_finish_distances",
      [](Rows<T> scores, Rows<T> x, int num_threads) {
        check(scores.ndim() == 2 && x.ndim() == 2 && x.shape(0) == scores.shape(0),
              "scores (n, k) and x (n, d) must have the same rows");
        const index_t n = scores.shape(0), k = scores.shape(1), d = x.shape(1);
        T* s = scores.mutable_data();
        const T* rows = x.data();
        EngineCall call;
        knn::finish_distances<T>(s, n, k, rows, d, num_threads);
      },
      py::arg("scores"), py::arg("x"), py::arg("num_threads") = 0,
      "Raw L2 scores of the query rows x to squared distances, in place.");
}

template <class T>
void bind_top_k(py::module_& m) {
  m.def(
      "top_k",
      [](Rows<T> values, index_t topk, int axis, int num_threads) {
        check(values.ndim() == 2, "values must be 2-D");
        check(axis == 0 || axis == 1, "axis must be 0 (columns) or 1 (rows)");
        const index_t rows = values.shape(0), cols = values.shape(1);
        const index_t items = axis == 0 ? rows : cols, lists = axis == 0 ? cols : rows;
        check(topk >= 1 && topk <= items,
              "topk must be in [1, " + std::to_string(items) + "], got " + std::to_string(topk));
        Rows<T> scores({lists, topk});
        Rows<std::int64_t> indices({lists, topk});
        const T* v = values.data();
        T* s = scores.mutable_data();
        std::int64_t* i = indices.mutable_data();
        {
          EngineCall call;
          if (axis == 0)
            knn::top_k_lists<T>(v, rows, cols, cols, 1, topk, s, i, num_threads);
          else
            knn::top_k_lists<T>(v, cols, rows, 1, cols, topk, s, i, num_threads);
        }
        return py::make_tuple(scores, indices);
      },
      py::arg("values").noconvert(), py::arg("topk"), py::arg("axis"), py::arg("num_threads") = 0,
      "The topk best of each column (axis 0) or row (axis 1) of a C-contiguous 2-D array, best "
      "first (larger, then the smaller position; NaN last): (scores, indices), each (lists, "
      "topk), as a stable descending argsort.");
}

}  // namespace

void register_knn(py::module_& m) {
  bind_top_k<float>(m);
  bind_top_k<double>(m);
  bind_database<float>(m, "KnnDatabaseF32");
  bind_database<double>(m, "KnnDatabaseF64");
  bind_merge<float>(m);
  bind_merge<double>(m);
}

}  // namespace deepret::bind
