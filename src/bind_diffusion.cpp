// Bindings of diffusion: scipy CSR arrays in (indptr, indices, data), the
// batched CG and the sparse x dense product; dtype dispatch and GIL release.
#include <cstdint>
#include <string>

#include "bindings.h"
#include "diffusion/cg.h"

namespace deepret::bind {

namespace {

template <class T>
using Dense = py::array_t<T, py::array::c_style>;

template <class T, class I>
diffusion::Csr<T, I> csr_view(index_t rows, index_t cols, const py::array& indptr,
                              const py::array& indices, const py::array& data) {
  require_contiguous(indptr, "indptr");
  require_contiguous(indices, "indices");
  require_contiguous(data, "data");
  check(indptr.ndim() == 1 && indptr.size() == rows + 1, "indptr must have rows + 1 entries");
  check(indices.size() == data.size(), "indices and data must have the same length");
  diffusion::Csr<T, I> w;
  w.rows = rows;
  w.cols = cols;
  w.indptr = static_cast<const I*>(indptr.data());
  w.indices = static_cast<const I*>(indices.data());
  w.data = static_cast<const T*>(data.data());
  return w;
}

template <class T, class I>
py::tuple run_cg(index_t n, const py::array& indptr, const py::array& indices,
                 const py::array& data, double alpha, Dense<T> y, Dense<T> f, double tol,
                 index_t maxiter, int num_threads, const py::object& order) {
  const I* order_ptr = nullptr;
  py::array_t<I, py::array::c_style | py::array::forcecast> order_array;
  if (!order.is_none()) {
    order_array = py::array_t<I, py::array::c_style | py::array::forcecast>::ensure(order);
    check(order_array && order_array.ndim() == 1 && order_array.size() == n,
          "order must be a permutation of the n rows");
    order_ptr = order_array.data();
  }
  check(y.ndim() == 2 && y.shape(0) == n, "y must be 2-D (n, m)");
  check(f.ndim() == 2 && f.shape(0) == n && f.shape(1) == y.shape(1), "f must have y's shape");
  const auto w = csr_view<T, I>(n, n, indptr, indices, data);
  const index_t m = y.shape(1);
  py::array_t<std::int64_t> iterations(m);
  py::array_t<double> residuals(m);
  const T* py_ = y.data();
  T* pf = f.mutable_data();
  std::int64_t* pi = iterations.mutable_data();
  double* pr = residuals.mutable_data();
  {
    EngineCall call;
    diffusion::batched_cg<T, I>(w, T(alpha), py_, m, pf, tol, maxiter, pi, pr, num_threads,
                                order_ptr);
  }
  return py::make_tuple(iterations, residuals);
}

template <class T, class I>
void run_spmm(index_t rows, index_t cols, const py::array& indptr, const py::array& indices,
              const py::array& data, Dense<T> x, Dense<T> y, int num_threads) {
  check(x.ndim() == 2 && x.shape(0) == cols, "x must be 2-D (cols, m)");
  check(y.ndim() == 2 && y.shape(0) == rows && y.shape(1) == x.shape(1), "y must be (rows, m)");
  const auto w = csr_view<T, I>(rows, cols, indptr, indices, data);
  const T* px = x.data();
  T* py_ = y.mutable_data();
  const index_t m = x.shape(1);
  EngineCall call;
  diffusion::spmm<T, I>(w, px, m, py_, num_threads);
}

template <class I>
py::object run_order(index_t n, const py::array& indptr, const py::array& indices,
                     index_t max_front) {
  require_contiguous(indptr, "indptr");
  require_contiguous(indices, "indices");
  check(indptr.ndim() == 1 && indptr.size() == n + 1, "indptr must have n + 1 entries");
  check_type(indptr.dtype().is(indices.dtype()), "indptr and indices must have the same dtype");
  py::array_t<I> order(n);
  const I* pp = static_cast<const I*>(indptr.data());
  const I* pi = static_cast<const I*>(indices.data());
  I* po = order.mutable_data();
  bool done;
  {
    EngineCall call;
    done = diffusion::reverse_cuthill_mckee<I>(n, pp, pi, po, max_front);
  }
  return done ? py::object(order) : py::object(py::none());
}

template <class I>
double run_near(index_t n, const py::array& indptr, const py::array& indices,
                const py::array& order, index_t window) {
  require_contiguous(indptr, "indptr");
  require_contiguous(indices, "indices");
  require_contiguous(order, "order");
  check(indptr.ndim() == 1 && indptr.size() == n + 1, "indptr must have n + 1 entries");
  check_type(indptr.dtype().is(indices.dtype()) && order.dtype().is(indices.dtype()),
             "indptr, indices and order must have the same dtype");
  check(order.ndim() == 1 && order.size() == n, "order must have n entries");
  const I* pp = static_cast<const I*>(indptr.data());
  const I* pi = static_cast<const I*>(indices.data());
  const I* po = static_cast<const I*>(order.data());
  EngineCall call;
  return diffusion::near_fraction<I>(n, pp, pi, po, window);
}

bool wide_indices(const py::array& indices) {
  check_type(indices.dtype().kind() == 'i' &&
                 (indices.dtype().itemsize() == 4 || indices.dtype().itemsize() == 8),
             "CSR indices must be int32 or int64");
  return indices.dtype().itemsize() == 8;
}

// Calls fn<T, I>() for the data's float type and the indices' integer type.
template <template <class, class> class Fn, class... Args>
auto dispatch(const py::array& indices, const py::array& data, Args&&... args) {
  const bool wide = indices.dtype().itemsize() == 8;
  check_type(indices.dtype().kind() == 'i' && (wide || indices.dtype().itemsize() == 4),
             "CSR indices must be int32 or int64");
  check_type(data.dtype().kind() == 'f' && (data.dtype().itemsize() == 4 || data.dtype().itemsize() == 8),
             "CSR data must be float32 or float64");
  if (data.dtype().itemsize() == 4)
    return wide ? Fn<float, std::int64_t>::call(std::forward<Args>(args)...)
                : Fn<float, std::int32_t>::call(std::forward<Args>(args)...);
  return wide ? Fn<double, std::int64_t>::call(std::forward<Args>(args)...)
              : Fn<double, std::int32_t>::call(std::forward<Args>(args)...);
}

template <class T, class I>
struct CgCall {
  static py::tuple call(index_t n, const py::array& indptr, const py::array& indices,
                        const py::array& data, double alpha, const py::array& y,
                        const py::array& f, double tol, index_t maxiter, int threads,
                        const py::object& order) {
    return run_cg<T, I>(n, indptr, indices, data, alpha, Dense<T>::ensure(y), Dense<T>::ensure(f),
                        tol, maxiter, threads, order);
  }
};

template <class T, class I>
struct SpmmCall {
  static int call(index_t rows, index_t cols, const py::array& indptr, const py::array& indices,
                  const py::array& data, const py::array& x, const py::array& y, int threads) {
    run_spmm<T, I>(rows, cols, indptr, indices, data, Dense<T>::ensure(x), Dense<T>::ensure(y),
                   threads);
    return 0;
  }
};

}  // namespace

void register_diffusion(py::module_& m) {
  m.def(
      "batched_cg",
      [](index_t n, const py::array& indptr, const py::array& indices, const py::array& data,
         double alpha, const py::array& y, const py::array& f, double tol, index_t maxiter,
         int num_threads, const py::object& order) {
        require_same_dtype(data, y, "W's data and y");
        require_same_dtype(data, f, "W's data and f");
        require_contiguous(f, "f", true);
        return dispatch<CgCall>(indices, data, n, indptr, indices, data, alpha, y, f, tol, maxiter,
                                num_threads, order);
      },
      py::arg("n"), py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("alpha"),
      py::arg("y"), py::arg("f"), py::arg("tol"), py::arg("maxiter"), py::arg("num_threads") = 0,
      py::arg("order") = py::none(),
      "Solve (I - alpha W) f = y column by column (batched CG; f written in place); "
      "returns (iterations[m], relative residuals[m]).");
  m.def(
      "spmm",
      [](index_t rows, index_t cols, const py::array& indptr, const py::array& indices,
         const py::array& data, const py::array& x, const py::array& y, int num_threads) {
        require_same_dtype(data, x, "W's data and x");
        require_same_dtype(data, y, "W's data and y");
        require_contiguous(y, "y", true);
        dispatch<SpmmCall>(indices, data, rows, cols, indptr, indices, data, x, y, num_threads);
      },
      py::arg("rows"), py::arg("cols"), py::arg("indptr"), py::arg("indices"), py::arg("data"),
      py::arg("x"), py::arg("y"), py::arg("num_threads") = 0, "y = W x for CSR W and row-major x.");
  m.def(
      "locality_order",
      [](index_t n, const py::array& indptr, const py::array& indices, index_t max_front) {
        return wide_indices(indices) ? run_order<std::int64_t>(n, indptr, indices, max_front)
                                     : run_order<std::int32_t>(n, indptr, indices, max_front);
      },
      py::arg("n"), py::arg("indptr"), py::arg("indices"), py::arg("max_front") = 0,
      "Reverse Cuthill-McKee order of a symmetric CSR pattern (same dtype as indices); None "
      "once more than max_front > 0 nodes wait in the breadth-first queue.");
  m.def(
      "near_fraction",
      [](index_t n, const py::array& indptr, const py::array& indices, const py::array& order,
         index_t window) {
        return wide_indices(indices) ? run_near<std::int64_t>(n, indptr, indices, order, window)
                                     : run_near<std::int32_t>(n, indptr, indices, order, window);
      },
      py::arg("n"), py::arg("indptr"), py::arg("indices"), py::arg("order"), py::arg("window"),
      "Fraction of the nonzeros (sampled on every 8th row) whose rows lie fewer than window "
      "apart in order.");
}

}  // namespace deepret::bind
