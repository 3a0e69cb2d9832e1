// CPU truncated diffusion (truncated.h): per query, gather the subgraph into
// a small local CSR through a row -> position map, optionally renormalize,
// and run one CG on it.
#include <cmath>
#include <vector>

#include "common/buffer.h"
#include "common/errors.h"
#include "common/parallel.h"
#include "diffusion/truncated.h"

namespace deepret::diffusion {

namespace {

template <class T>
struct LocalGraph {
  Scratch<index_t> indptr;  // [t + 1]
  Scratch<index_t> cols;    // [nnz]
  Scratch<T> vals;          // [nnz]
};

// q = p - alpha W_S p on the local graph, returning <p, q> in double.
template <class T>
double apply(const LocalGraph<T>& w, T alpha, const T* p, T* q, index_t t) {
  double pq = 0.0;
  for (index_t i = 0; i < t; ++i) {
    T s = T(0);
    for (index_t e = w.indptr[i]; e < w.indptr[i + 1]; ++e) s += w.vals[e] * p[w.cols[e]];
    q[i] = p[i] - alpha * s;
    pq += double(p[i]) * double(q[i]);
  }
  return pq;
}

template <class T>
double norm2(const T* v, index_t t) {
  double s = 0.0;
  for (index_t i = 0; i < t; ++i) s += double(v[i]) * double(v[i]);
  return s;
}

template <class T, class I>
void gather(const Csr<T, I>& g, const std::int64_t* ids, index_t t, bool renormalize,
            Scratch<I>& position, LocalGraph<T>& w) {
  for (index_t k = 0; k < t; ++k) position[ids[k]] = I(k);
  w.indptr.assign(1, 0);
  w.cols.clear();
  w.vals.clear();
  for (index_t k = 0; k < t; ++k) {
    const std::int64_t row = ids[k];
    for (I e = g.indptr[row]; e < g.indptr[row + 1]; ++e) {
      const I c = position[g.indices[e]];
      if (c >= 0) {
        w.cols.push_back(c);
        w.vals.push_back(g.data[e]);
      }
    }
    w.indptr.push_back(index_t(w.cols.size()));
  }
  for (index_t k = 0; k < t; ++k) position[ids[k]] = I(-1);
  if (!renormalize) return;
  Scratch<double> scale(t);
  for (index_t i = 0; i < t; ++i) {
    double d = 0.0;
    for (index_t e = w.indptr[i]; e < w.indptr[i + 1]; ++e) d += double(w.vals[e]);
    scale[i] = d > 0.0 ? 1.0 / std::sqrt(d) : 0.0;
  }
  for (index_t i = 0; i < t; ++i)
    for (index_t e = w.indptr[i]; e < w.indptr[i + 1]; ++e)
      w.vals[e] = T(double(w.vals[e]) * scale[i] * scale[w.cols[e]]);
}

template <class T>
void solve_one(const LocalGraph<T>& w, T alpha, const T* y, T* f, index_t t, double tol,
               index_t maxiter, std::int64_t* iterations, double* residual,
               Scratch<T>& scratch) {
  scratch.resize(3 * t);
  T* r = scratch.data();
  T* p = r + t;
  T* q = p + t;
  for (index_t i = 0; i < t; ++i) {
    f[i] = T(0);
    r[i] = y[i];
  }
  const double ynorm = std::sqrt(norm2(y, t));
  if (ynorm == 0.0) {
    *iterations = 0;
    *residual = 0.0;
    return;
  }
  const double atol = tol * ynorm;
  double rho_prev = 0.0;
  index_t it = 0;
  for (; it < maxiter; ++it) {
    const double rho = norm2(r, t);
    if (std::sqrt(rho) < atol) break;
    if (it == 0) {
      for (index_t i = 0; i < t; ++i) p[i] = r[i];
    } else {
      const T beta = T(rho / rho_prev);
      for (index_t i = 0; i < t; ++i) p[i] = r[i] + beta * p[i];
    }
    const double pq = apply(w, alpha, p, q, t);
    const T a = T(rho / pq);
    for (index_t i = 0; i < t; ++i) {
      f[i] += a * p[i];
      r[i] -= a * q[i];
    }
    rho_prev = rho;
  }
  *iterations = it;
  // The true residual of the returned f.
  apply(w, alpha, f, q, t);
  double rr = 0.0;
  for (index_t i = 0; i < t; ++i) {
    const double d = double(y[i]) - double(q[i]);
    rr += d * d;
  }
  *residual = std::sqrt(rr) / ynorm;
}

}  // namespace

template <class T, class I>
void truncated_cg(const Csr<T, I>& g, const std::int64_t* ids, index_t nq, index_t t,
                  bool renormalize, T alpha, const T* y, T* f, double tol, index_t maxiter,
                  std::int64_t* iterations, double* residuals, int num_threads) {
  const index_t n = g.rows;
  for (index_t k = 0; k < nq * t; ++k)
    check(ids[k] >= 0 && ids[k] < n, "truncated diffusion: ids must lie in [0, n)");
  parallel_for(0, nq, 1, num_threads, [&](index_t lo, index_t hi) {
    Scratch<I> position(static_cast<std::size_t>(n), I(-1));
    LocalGraph<T> w;
    Scratch<T> scratch;
    for (index_t q = lo; q < hi; ++q) {
      checkpoint();  // Ctrl-C between queries
      gather(g, ids + q * t, t, renormalize, position, w);
      solve_one(w, alpha, y + q * t, f + q * t, t, tol, maxiter, iterations + q, residuals + q,
                scratch);
    }
  });
}

#define DEEPRET_INSTANTIATE(T, I)                                                              \
  template void truncated_cg<T, I>(const Csr<T, I>&, const std::int64_t*, index_t, index_t,   \
                                   bool, T, const T*, T*, double, index_t, std::int64_t*,      \
                                   double*, int);
DEEPRET_INSTANTIATE(float, std::int32_t)
DEEPRET_INSTANTIATE(float, std::int64_t)
DEEPRET_INSTANTIATE(double, std::int32_t)
DEEPRET_INSTANTIATE(double, std::int64_t)
#undef DEEPRET_INSTANTIATE

}  // namespace deepret::diffusion
