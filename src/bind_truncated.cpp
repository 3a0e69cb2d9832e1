// Bindings of truncated diffusion (csrc/diffusion/truncated.h): scipy CSR
// arrays in, per-query subgraph CG; dtype dispatch and GIL release.
#include <cstdint>

#include "bindings.h"
#include "diffusion/truncated.h"

namespace deepret::bind {

namespace {

template <class T, class I>
py::tuple run_truncated(index_t n, const py::array& indptr, const py::array& indices,
                        const py::array& data, const py::array& ids_in, bool renormalize,
                        double alpha, const py::array& y_in, const py::array& f_in, double tol,
                        index_t maxiter, int num_threads) {
  require_contiguous(indptr, "indptr");
  require_contiguous(indices, "indices");
  require_contiguous(data, "data");
  require_contiguous(f_in, "f", true);
  check(indptr.ndim() == 1 && indptr.size() == n + 1, "indptr must have n + 1 entries");
  check(indices.size() == data.size(), "indices and data must have the same length");
  auto ids = py::array_t<std::int64_t, py::array::c_style>::ensure(ids_in);
  auto y = py::array_t<T, py::array::c_style>::ensure(y_in);
  auto f = py::array_t<T, py::array::c_style>::ensure(f_in);
  check(ids && ids.ndim() == 2, "ids must be a 2-D (nq, t) int64 array");
  const index_t nq = ids.shape(0), t = ids.shape(1);
  check(y && y.ndim() == 2 && y.shape(0) == nq && y.shape(1) == t, "y must be (nq, t) like ids");
  check(f && f.ndim() == 2 && f.shape(0) == nq && f.shape(1) == t, "f must be (nq, t) like ids");
  diffusion::Csr<T, I> g;
  g.rows = n;
  g.cols = n;
  g.indptr = static_cast<const I*>(indptr.data());
  g.indices = static_cast<const I*>(indices.data());
  g.data = static_cast<const T*>(data.data());
  py::array_t<std::int64_t> iterations(nq);
  py::array_t<double> residuals(nq);
  const std::int64_t* pids = ids.data();
  const T* py_ = y.data();
  T* pf = f.mutable_data();
  std::int64_t* pi = iterations.mutable_data();
  double* pr = residuals.mutable_data();
  {
    EngineCall call;
    diffusion::truncated_cg<T, I>(g, pids, nq, t, renormalize, T(alpha), py_, pf, tol, maxiter,
                                  pi, pr, num_threads);
  }
  return py::make_tuple(iterations, residuals);
}

}  // namespace

void register_truncated(py::module_& m) {
  m.def(
      "truncated_cg",
      [](index_t n, const py::array& indptr, const py::array& indices, const py::array& data,
         const py::array& ids, bool renormalize, double alpha, const py::array& y,
         const py::array& f, double tol, index_t maxiter, int num_threads) {
        require_same_dtype(data, y, "G's data and y");
        require_same_dtype(data, f, "G's data and f");
        check_type(indptr.dtype().is(indices.dtype()), "indptr and indices must have the same dtype");
        const bool wide = indices.dtype().itemsize() == 8;
        check_type(indices.dtype().kind() == 'i' && (wide || indices.dtype().itemsize() == 4),
                   "CSR indices must be int32 or int64");
        check_type(data.dtype().kind() == 'f' &&
                       (data.dtype().itemsize() == 4 || data.dtype().itemsize() == 8),
                   "CSR data must be float32 or float64");
        if (data.dtype().itemsize() == 4)
          return wide ? run_truncated<float, std::int64_t>(n, indptr, indices, data, ids, renormalize,
                                                           alpha, y, f, tol, maxiter, num_threads)
                      : run_truncated<float, std::int32_t>(n, indptr, indices, data, ids, renormalize,
                                                           alpha, y, f, tol, maxiter, num_threads);
        return wide ? run_truncated<double, std::int64_t>(n, indptr, indices, data, ids, renormalize,
                                                          alpha, y, f, tol, maxiter, num_threads)
                    : run_truncated<double, std::int32_t>(n, indptr, indices, data, ids, renormalize,
                                                          alpha, y, f, tol, maxiter, num_threads);
      },
      py::arg("n"), py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("ids"),
      py::arg("renormalize"), py::arg("alpha"), py::arg("y"), py::arg("f"), py::arg("tol"),
      py::arg("maxiter"), py::arg("num_threads") = 0,
      "Per query q, solve (I - alpha W_S) f[q] = y[q] on the subgraph S = ids[q] of G "
      "(renormalized from affinities, or restricted from W); returns (iterations[nq], "
      "relative residuals[nq]).");
}

}  // namespace deepret::bind
