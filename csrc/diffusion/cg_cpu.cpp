// CPU batched CG. Every pass over the rows runs in fixed blocks of rows;
// per-column dot products are summed per block (in double) and the blocks
// added in order, so results do not depend on the number of threads.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "common/errors.h"
#include "common/parallel.h"
#include "diffusion/cg.h"

namespace deepret::diffusion {

namespace {

constexpr index_t kRowsPerBlock = 512;

template <class T>
std::unique_ptr<T[]> buffer(index_t count) {
  return std::unique_ptr<T[]>(new T[static_cast<std::size_t>(std::max<index_t>(count, 1))]);
}

// Runs body(row_begin, row_end, partial) over fixed row blocks in parallel;
// partial is that block's [m] accumulator. Returns the per-column sums.
template <class Body>
std::vector<double> blocked_sum(index_t n, index_t m, int num_threads, const Body& body) {
  const index_t blocks = (n + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<double> partials(static_cast<std::size_t>(blocks * m), 0.0);
  parallel_for(0, blocks, 1, num_threads, [&](index_t lo, index_t hi) {
    for (index_t b = lo; b < hi; ++b)
      body(b * kRowsPerBlock, std::min(n, (b + 1) * kRowsPerBlock), partials.data() + b * m);
  });
  std::vector<double> sums(static_cast<std::size_t>(m), 0.0);
  for (index_t b = 0; b < blocks; ++b)
    for (index_t c = 0; c < m; ++c) sums[c] += partials[b * m + c];
  return sums;
}

// W relabelled by `order` (new row i = old row order[i]), in new arrays.
template <class T, class I>
struct Relabelled {
  std::vector<I> indptr, indices;
  std::vector<T> data;
  Csr<T, I> view;

  Relabelled(const Csr<T, I>& w, const I* order, int num_threads)
      : indptr(w.rows + 1), indices(w.indptr[w.rows]), data(w.indptr[w.rows]) {
    const index_t n = w.rows;
    std::vector<I> position(n);  // old row -> new row
    for (index_t i = 0; i < n; ++i) {
      check(order[i] >= 0 && order[i] < n, "diffuse: order must be a permutation of the rows");
      position[order[i]] = I(i);
    }
    indptr[0] = 0;
    for (index_t i = 0; i < n; ++i)
      indptr[i + 1] = indptr[i] + (w.indptr[order[i] + 1] - w.indptr[order[i]]);
    parallel_for(0, n, 1024, num_threads, [&](index_t lo, index_t hi) {
      for (index_t i = lo; i < hi; ++i) {
        I out = indptr[i];
        for (I e = w.indptr[order[i]]; e < w.indptr[order[i] + 1]; ++e, ++out) {
          indices[out] = position[w.indices[e]];
          data[out] = w.data[e];
        }
      }
    });
    view = Csr<T, I>{w.rows, w.cols, indptr.data(), indices.data(), data.data()};
  }
};

}  // namespace

template <class T, class I>
void spmm(const Csr<T, I>& w, const T* x, index_t m, T* y, int num_threads) {
  const index_t blocks = (w.rows + kRowsPerBlock - 1) / kRowsPerBlock;
  parallel_for(0, blocks, 1, num_threads, [&](index_t lo, index_t hi) {
    spmm_rows(w, x, m, T(0), T(-1), y, lo * kRowsPerBlock, std::min(w.rows, hi * kRowsPerBlock));
  });
}

template <class T, class I>
void batched_cg(const Csr<T, I>& w, T alpha, const T* y, index_t m, T* f, double tol,
                index_t maxiter, std::int64_t* iterations, double* residuals, int num_threads,
                const I* order) {
  check(w.rows == w.cols, "diffuse: W must be square");
  check(alpha > T(0) && alpha < T(1), "diffuse: alpha must be in (0, 1)");
  const index_t n = w.rows;
  if (order) {
    // Solve the relabelled system, then put the rows of f back.
    const Relabelled<T, I> relabelled(w, order, num_threads);
    auto y_new = buffer<T>(n * m), f_new = buffer<T>(n * m);
    parallel_for(0, n, 4096, num_threads, [&](index_t lo, index_t hi) {
      for (index_t i = lo; i < hi; ++i)
        std::copy(y + index_t(order[i]) * m, y + (index_t(order[i]) + 1) * m, y_new.get() + i * m);
    });
    batched_cg<T, I>(relabelled.view, alpha, y_new.get(), m, f_new.get(), tol, maxiter, iterations,
                     residuals, num_threads, nullptr);
    parallel_for(0, n, 4096, num_threads, [&](index_t lo, index_t hi) {
      for (index_t i = lo; i < hi; ++i)
        std::copy(f_new.get() + i * m, f_new.get() + (i + 1) * m, f + index_t(order[i]) * m);
    });
    return;
  }
  auto r = buffer<T>(n * m), p = buffer<T>(n * m), q = buffer<T>(n * m);
  std::vector<double> rho(m), a(m), beta(m, 0.0), norm_y(m), target(m);
  std::vector<char> active(m);

  // f = 0, r = y; rho = |r|^2.
  rho = blocked_sum(n, m, num_threads, [&](index_t lo, index_t hi, double* partial) {
    for (index_t i = lo; i < hi; ++i)
      for (index_t c = 0; c < m; ++c) {
        const T value = y[i * m + c];
        f[i * m + c] = T(0);
        r[i * m + c] = value;
        partial[c] += double(value) * double(value);
      }
  });
  for (index_t c = 0; c < m; ++c) {
    norm_y[c] = std::sqrt(rho[c]);
    target[c] = tol * norm_y[c];  // scipy: stop once |r| < tol * |y|
    iterations[c] = 0;
    active[c] = rho[c] > 0.0;  // y = 0: the solution is 0, no iteration (as scipy)
  }

  for (index_t it = 0; it < maxiter; ++it) {
    bool any = false;
    for (index_t c = 0; c < m; ++c) {
      if (active[c] && std::sqrt(rho[c]) < target[c]) active[c] = 0;
      // A stopped column keeps p = r (bounded) so that a * p stays 0, not 0 * inf.
      if (!active[c]) beta[c] = 0.0;
      any = any || active[c];
    }
    if (!any) break;
    // p = r + beta p (p = r on the first iteration); then q = p - alpha W p,
    // and <p, q> per column.
    parallel_for(0, (n + kRowsPerBlock - 1) / kRowsPerBlock, 1, num_threads,
                 [&](index_t lo, index_t hi) {
                   for (index_t i = lo * kRowsPerBlock; i < std::min(n, hi * kRowsPerBlock); ++i)
                     for (index_t c = 0; c < m; ++c)
                       p[i * m + c] = it == 0 ? r[i * m + c]
                                              : r[i * m + c] + T(beta[c]) * p[i * m + c];
                 });
    const std::vector<double> pq = blocked_sum(n, m, num_threads, [&](index_t lo, index_t hi,
                                                                       double* partial) {
      spmm_rows(w, p.get(), m, T(1), alpha, q.get(), lo, hi);
      for (index_t i = lo; i < hi; ++i)
        for (index_t c = 0; c < m; ++c) partial[c] += double(p[i * m + c]) * double(q[i * m + c]);
    });
    for (index_t c = 0; c < m; ++c) a[c] = active[c] && pq[c] != 0.0 ? rho[c] / pq[c] : 0.0;
    // f += a p, r -= a q on active columns; the new |r|^2.
    const std::vector<double> rho_new = blocked_sum(n, m, num_threads, [&](index_t lo, index_t hi,
                                                                            double* partial) {
      for (index_t i = lo; i < hi; ++i)
        for (index_t c = 0; c < m; ++c) {
          const T step = T(a[c]);
          f[i * m + c] += step * p[i * m + c];
          const T value = r[i * m + c] - step * q[i * m + c];
          r[i * m + c] = value;
          partial[c] += double(value) * double(value);
        }
    });
    for (index_t c = 0; c < m; ++c) {
      if (!active[c]) continue;
      beta[c] = rho_new[c] / rho[c];
      rho[c] = rho_new[c];
      ++iterations[c];
    }
  }
  for (index_t c = 0; c < m; ++c)
    residuals[c] = norm_y[c] > 0.0 ? std::sqrt(rho[c]) / norm_y[c] : 0.0;
}

#define DEEPRET_INSTANTIATE(T, I)                                                            \
  template void spmm<T, I>(const Csr<T, I>&, const T*, index_t, T*, int);                   \
  template void batched_cg<T, I>(const Csr<T, I>&, T, const T*, index_t, T*, double, index_t, \
                                 std::int64_t*, double*, int, const I*);
DEEPRET_INSTANTIATE(float, std::int32_t)
DEEPRET_INSTANTIATE(float, std::int64_t)
DEEPRET_INSTANTIATE(double, std::int32_t)
DEEPRET_INSTANTIATE(double, std::int64_t)
#undef DEEPRET_INSTANTIATE

}  // namespace deepret::diffusion
