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
             Rows<T> scores, Rows<std::int64_t> indices, int num_threads) {
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
                           num_threads);
          },
          py::arg("queries"), py::arg("k"), py::arg("metric"), py::arg("self_offset"),
          py::arg("scores"), py::arg("indices"), py::arg("num_threads") = 0,
          "Fill scores/indices (nq, k) with each query's k best rows, best first; "
          "self_offset >= 0 means queries are rows self_offset.. of the database and skip themselves.")
      .def(
          "search_self",
          [](const Database& db, Rows<T> x, index_t k, int metric, bool exclude_self, Rows<T> scores,
             Rows<std::int64_t> indices, int num_threads, py::object progress) {
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
                                num_threads, report);
          },
          py::arg("x"), py::arg("k"), py::arg("metric"), py::arg("exclude_self"), py::arg("scores"),
          py::arg("indices"), py::arg("num_threads") = 0, py::arg("progress") = py::none(),
          "All-vs-all search of the database's own rows x, using the symmetry of the scores; "
          "progress(done, total) is called as tiles finish.")
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

}  // namespace

void register_knn(py::module_& m) {
  bind_database<float>(m, "KnnDatabaseF32");
  bind_database<double>(m, "KnnDatabaseF64");
}

}  // namespace deepret::bind
