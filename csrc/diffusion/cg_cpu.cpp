// CPU batched CG. Vectors live in panels of K columns (cg_simd.h), and each
// panel is solved on its own, its columns stopping one by one; every pass
// runs in fixed blocks of rows, per-column dot products are summed per block
// (in double) and the blocks added in order, so results do not depend on the
// number of threads.
//
// Two passes over the rows per iteration instead of scipy's three vector
// steps: the product q = (I - alpha W) p also sums <p, q>, <r, q> and <q, q>,
// which give the step a = rho / <p, q> and the new |r|^2 = rho - 2a<r, q> +
// a^2<q, q> (that is |r - a q|^2, exact up to rounding) before r is updated;
// hence beta, and the update pass can write f, r and the next p at once. The
// |r|^2 that decides stopping and the next step is still summed from the
// stored r in that pass, as scipy does.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "common/buffer.h"
#include "common/errors.h"
#include "common/parallel.h"
#include "common/simd.h"
#include "diffusion/cg.h"

#define DEEPRET_SIMD_NS portable
#include "diffusion/cg_simd.h"
#undef DEEPRET_SIMD_NS

namespace deepret::diffusion {

#if defined(DEEPRET_X86)
namespace avx2 {  // cg_cpu_avx2.cpp, compiled with -mavx2 -mfma
#include "diffusion/cg_kernels.inc"
}  // namespace avx2
namespace avx512 {  // cg_cpu_avx512.cpp, compiled with -mavx512f
#include "diffusion/cg_kernels.inc"
}  // namespace avx512
#endif

namespace {

constexpr index_t kRowsPerBlock = 512;
// Rows looked ahead where rows are visited in a random order (relabelling,
// and y and f in a locality order): one miss per row would otherwise wait
// for the previous row's loop.
constexpr index_t kAhead = 8;
// Stored entries looked ahead by the software prefetch of the gathered rows
// (cg_simd.h's gather_row). Where the rows come in random order (a graph
// without locality) every gather misses the cache, and the out-of-order core
// alone kept only a few misses in flight: on a 2-core Zen 3 VM (whose share
// of the L3 held only 2-4 MB: random-chase latency rose from 40 ns at 2 MB to
// 120-180 ns at 4 MB and more), a random graph with n = 10^5 and 40 entries
// per row took 1.13 ns per entry-column for 64 columns without prefetch,
// 0.38 / 0.30 / 0.27 / 0.27 / 0.27 with 16 / 32 / 64 / 128 / 256 entries
// ahead (CPU time per thread, machine under load, measured before gather_row
// accumulated in native-width pieces); the CG 1.15 -> 0.42.
// Where the panel fits in L2 (n = 5,000) it still gained 4-10 %. One column
// (a sparse matrix-vector product) gathers 4-byte values from an n-vector
// that sits in L2 (240-400 KB at n = 60,000-100,000): there the prefetch is
// only two more loads per entry, and without it the single-query CG on the
// four graphs of bench_diffusion.py went from 10.8-31.5 to 9.5-27.8 ms
// (2-core Zen 4, medians of 20, 2 threads).
constexpr index_t kGatherAhead = 64;
// The look-ahead of a panel of K columns.
constexpr index_t gather_ahead(index_t K) { return K == 1 ? 0 : kGatherAhead; }

// The two passes of one panel width, for the instruction set in use.
template <class T, class I>
struct Passes {
  int width;  // K
  void (*product)(const Csr<T, I>&, T, const T*, const T*, T*, index_t, index_t, index_t, double*);
  void (*update)(const T*, const T*, bool, T*, T*, const T*, T*, const T*, index_t, index_t,
                 double*);
};

template <class T, class I, int K>
Passes<T, I> passes_of_width() {
#if defined(DEEPRET_X86)
  // One column (a sparse matrix-vector product) stays on the portable path:
  // there the wider builds turn the gathers into vgather instructions and
  // permutes, measured twice as slow as the scalar loads.
  if (K == 1) return {K, &portable::panel_product<T, I, K>, &portable::panel_update<T, K>};
  if (use_avx512f()) return {K, &avx512::panel_product<T, I, K>, &avx512::panel_update<T, K>};
  if (use_avx2_fma()) return {K, &avx2::panel_product<T, I, K>, &avx2::panel_update<T, K>};
#endif
  return {K, &portable::panel_product<T, I, K>, &portable::panel_update<T, K>};
}

// Panels of one cache line (16 float32 or 8 float64 columns) once there are
// that many columns; fewer columns get one narrower panel (1, 4 or 8), so
// that a single query is a plain sparse matrix-vector product. (Two lines
// per gathered row, 32 float32 columns, measured no faster on the Gaussian
// graph and slower on the manifold one.)
template <class T, class I>
Passes<T, I> choose_passes(index_t m) {
  if (m == 1) return passes_of_width<T, I, 1>();
  if (m <= 4) return passes_of_width<T, I, 4>();
  if constexpr (sizeof(T) == 4) {
    if (m > 8) return passes_of_width<T, I, 16>();
  }
  return passes_of_width<T, I, 8>();
}

// W relabelled by `order` (new row i = old row order[i]), in new arrays
// (uninitialized at first: every entry is written once).
template <class T, class I>
struct Relabelled {
  std::vector<I> position;  // old row -> new row
  Buffer<I> indptr, indices;
  Buffer<T> data;
  Csr<T, I> view;

  Relabelled(const Csr<T, I>& w, const I* order, int num_threads)
      : position(w.rows, I(-1)),
        indptr(allocate<I>(w.rows + 1)),
        indices(allocate<I>(w.indptr[w.rows])),
        data(allocate<T>(w.indptr[w.rows])) {
    const index_t n = w.rows;
    bool permutation = true;
    for (index_t i = 0; i < n && permutation; ++i) {
      permutation = order[i] >= 0 && order[i] < n && position[order[i]] < 0;
      if (permutation) position[order[i]] = I(i);
    }
    check(permutation, "diffuse: order must be a permutation of the rows");
    indptr[0] = 0;
    for (index_t i = 0; i < n; ++i)
      indptr[i + 1] = indptr[i] + (w.indptr[order[i] + 1] - w.indptr[order[i]]);
    // The old rows are read in a random order: each row's start is a cache
    // miss, which the loop over the previous row does not overlap. Ask for
    // the row kAhead rows on (its first lines) meanwhile.
    parallel_for(0, n, 1024, num_threads, [&](index_t lo, index_t hi) {
      for (index_t i = lo; i < hi; ++i) {
        if (i + kAhead < hi) {
          const I ahead = w.indptr[order[i + kAhead]];
          for (int line = 0; line < 4; ++line) {
            __builtin_prefetch(w.indices + ahead + line * 16);
            __builtin_prefetch(w.data + ahead + line * 16);
          }
        }
        const I begin = w.indptr[order[i]], end = w.indptr[order[i] + 1];
        I* out_indices = indices.get() + indptr[i];
        T* out_data = data.get() + indptr[i];
        for (I e = begin; e < end; ++e) {
          out_indices[e - begin] = position[w.indices[e]];
          out_data[e - begin] = w.data[e];
        }
      }
    });
    view = Csr<T, I>{w.rows, w.cols, indptr.get(), indices.get(), data.get()};
  }
};

// |y - (I - alpha W) f|^2 per column of one panel of f on rows [lo, hi),
// the product summed in double, added to partial[0 .. K): the true residual
// (panel row i is row order[i] of the caller's y when there is an order).
template <class T, class I, int K>
void residual_rows(const Csr<T, I>& w, double alpha, const T* f, const T* y, index_t m,
                   index_t c0, const I* order, index_t lo, index_t hi, double* partial) {
  const I limit = w.indptr[hi];
  for (index_t i = lo; i < hi; ++i) {
    if (order && i + kAhead < hi) __builtin_prefetch(y + index_t(order[i + kAhead]) * m + c0);
    double wf[K] = {};
    for (I e = w.indptr[i]; e < w.indptr[i + 1]; ++e) {
      // The rows of f gathered ahead (see kGatherAhead and gather_ahead).
      constexpr index_t ahead = gather_ahead(K);
      if (ahead > 0 && e + ahead < limit) __builtin_prefetch(f + index_t(w.indices[e + ahead]) * K);
      const double value = double(w.data[e]);
      const T* fj = f + index_t(w.indices[e]) * K;
      for (int c = 0; c < K; ++c) wf[c] += value * double(fj[c]);
    }
    const T* row = y + (order ? index_t(order[i]) : i) * m + c0;
    const index_t columns = std::min<index_t>(K, m - c0);
    for (index_t c = 0; c < columns; ++c) {
      const double e = double(row[c]) - (double(f[i * K + c]) - alpha * wf[c]);
      partial[c] += e * e;
    }
  }
}

template <class T, class I>
using ResidualRows = void (*)(const Csr<T, I>&, double, const T*, const T*, index_t, index_t,
                              const I*, index_t, index_t, double*);

// The residual pass of panel width K for the instruction set in use: the
// wider builds' copy (cg_simd.h) for panels of 4 columns or more.
template <class T, class I, int K>
ResidualRows<T, I> residual_rows_simd() {
#if defined(DEEPRET_X86)
  if (use_avx512f())
    return [](const Csr<T, I>& w, double alpha, const T* f, const T* y, index_t m, index_t c0,
              const I* order, index_t lo, index_t hi, double* partial) {
      avx512::residual_rows<T, I, K>(w, alpha, f, y, m, c0, order, lo, hi, kGatherAhead, partial);
    };
  if (use_avx2_fma())
    return [](const Csr<T, I>& w, double alpha, const T* f, const T* y, index_t m, index_t c0,
              const I* order, index_t lo, index_t hi, double* partial) {
      avx2::residual_rows<T, I, K>(w, alpha, f, y, m, c0, order, lo, hi, kGatherAhead, partial);
    };
#endif
  return &residual_rows<T, I, K>;
}

template <class T, class I>
ResidualRows<T, I> residual_rows_of_width(index_t K) {
  switch (K) {
    case 1: return &residual_rows<T, I, 1>;
    case 4: return residual_rows_simd<T, I, 4>();
    case 8: return residual_rows_simd<T, I, 8>();
    default:  // the widest panel (choose_passes): 16 float32 columns
      if constexpr (sizeof(T) == 4) return residual_rows_simd<T, I, 16>();
      return &residual_rows<T, I, 16>;
  }
}

// The CG on panels (see the top of the file). y and f are the caller's
// row-major arrays; with `order`, panel row i is row order[i] of y and f, and
// row j of y and f is panel row position[j] (w is then already relabelled).
template <class T, class I>
void solve(const Csr<T, I>& w, T alpha, const T* y, index_t m, T* f_out, double tol,
           index_t maxiter, std::int64_t* iterations, double* residuals, int num_threads,
           const I* order, const I* position) {
  const index_t n = w.rows;
  const Passes<T, I> passes = choose_passes<T, I>(m);
  const index_t K = passes.width;
  const index_t panels = (m + K - 1) / K, width = panels * K;  // padded columns stay 0
  const index_t blocks = (n + kRowsPerBlock - 1) / kRowsPerBlock;
  const index_t size = width * n;
  // f is first written by a panel's first update (panel_update).
  // The four panel sets in one check first: a request that cannot fit fails
  // before any of them is allocated.
  checked_bytes(size, 4 * sizeof(T), "the CG vectors (4 x n x padded columns)");
  Buffer<T> f = allocate<T>(size, "the CG vectors"), r = allocate<T>(size, "the CG vectors"),
            p = allocate<T>(size, "the CG vectors"), q = allocate<T>(size, "the CG vectors");
  std::vector<double> partials(static_cast<std::size_t>(blocks * 3 * width));
  auto panel = [&](const Buffer<T>& v, index_t b) { return v.get() + b * n * K; };

  // Sums part[block * stride + j], block by block in row order.
  auto sum_blocks = [&](const double* part, index_t stride) {
    std::vector<double> sums(static_cast<std::size_t>(stride), 0.0);
    for (index_t block = 0; block < blocks; ++block)
      for (index_t j = 0; j < stride; ++j) sums[j] += part[block * stride + j];
    return sums;
  };
  // Runs pass(row_begin, row_end, partial) over the row blocks of one panel
  // on `threads` threads; partial is that block's [per_column, K] accumulator
  // in part. Returns the sums over the blocks, in row order: sums[j * K +
  // column of the panel].
  auto over_rows = [&](double* part, int threads, index_t per_column, const auto& pass) {
    const index_t stride = per_column * K;
    std::fill(part, part + blocks * stride, 0.0);
    parallel_for(0, blocks, 1, threads, [&](index_t lo, index_t hi) {
      for (index_t block = lo; block < hi; ++block)
        pass(block * kRowsPerBlock, std::min(n, (block + 1) * kRowsPerBlock),
             part + block * stride);
    });
    return sum_blocks(part, stride);
  };

  // r = y (row by row: each row of y is read once, whole); rho = |r|^2.
  std::fill(partials.begin(), partials.begin() + blocks * width, 0.0);
  parallel_for(0, blocks, 1, num_threads, [&](index_t lo, index_t hi) {
    for (index_t block = lo; block < hi; ++block) {
      double* partial = partials.data() + block * width;
      const index_t end = std::min(n, (block + 1) * kRowsPerBlock);
      for (index_t i = block * kRowsPerBlock; i < end; ++i) {
        if (order && i + kAhead < end)  // rows of y in a random order: see Relabelled
          for (index_t c = 0; c < m; c += 64 / index_t(sizeof(T)))
            __builtin_prefetch(y + index_t(order[i + kAhead]) * m + c);
        const T* row = y + (order ? index_t(order[i]) : i) * m;
        for (index_t c = 0; c < width; ++c) {
          const T value = c < m ? row[c] : T(0);
          panel(r, c / K)[i * K + c % K] = value;
          partial[c] += double(value) * double(value);
        }
      }
    }
  });
  std::vector<double> rho = sum_blocks(partials.data(), width);
  std::vector<double> norm_y(width), target(width);
  std::vector<char> active(width);
  std::vector<T> step(width), turn(width);
  for (index_t c = 0; c < width; ++c) {
    norm_y[c] = std::sqrt(rho[c]);
    target[c] = tol * norm_y[c];  // scipy: stop once |r| < tol * |y|
    if (c < m) iterations[c] = 0;
    active[c] = rho[c] > 0.0;  // y = 0: the solution is 0, no iteration (as scipy)
  }

  // The columns of different panels never meet: each panel runs its own
  // iterations, so that its vectors (6.4 MB each at n = 10^5) are still in
  // the last-level cache from one pass to the next (measured 10-15 % faster
  // than iterating all panels together at 64 columns).
  std::vector<char> written(panels, 0);  // f of a panel is written by its first update
  auto solve_panel = [&](index_t b, int threads) {
    const index_t c0 = b * K;
    T* const pf = panel(f, b);
    T* const pr = panel(r, b);
    T* const pp = panel(p, b);
    T* const pq = panel(q, b);
    double* const part = partials.data() + b * blocks * 3 * K;
    for (index_t done = 0; done < maxiter; ++done) {
      if (done > 0) checkpoint();  // a panel alone on a thread runs the whole solve
      bool any = false;
      for (index_t c = c0; c < c0 + K; ++c) {
        if (active[c] && std::sqrt(rho[c]) < target[c]) active[c] = 0;
        any = any || active[c];
      }
      if (!any) break;
      // The direction: p, or r itself on the first iteration (p = r).
      T* const d = done == 0 ? pr : pp;
      // q = d - alpha W d with <d, q>, <r, q>, <q, q>.
      const std::vector<double> dots = over_rows(part, threads, 3, [&](index_t lo, index_t hi,
                                                                       double* partial) {
        passes.product(w, alpha, d, pr, pq, lo, hi, gather_ahead(K), partial);
      });
      for (index_t c = 0; c < K; ++c) {
        // A stopped column gets a = beta = 0: f and r stay, p = r stays bounded.
        step[c0 + c] = turn[c0 + c] = T(0);
        if (!active[c0 + c]) continue;
        const double a = dots[c] != 0.0 ? rho[c0 + c] / dots[c] : 0.0;
        // |r - a q|^2 from <r, q> and <q, q>
        const double next =
            std::max(0.0, rho[c0 + c] - 2.0 * a * dots[K + c] + a * a * dots[2 * K + c]);
        step[c0 + c] = T(a);
        turn[c0 + c] = T(next / rho[c0 + c]);
      }
      // f += a d, r -= a q, p = r + beta d; the new |r|^2.
      const std::vector<double> rho_new = over_rows(part, threads, 1, [&](index_t lo, index_t hi,
                                                                          double* partial) {
        passes.update(step.data() + c0, turn.data() + c0, done == 0, pf, pr, d, pp, pq, lo, hi,
                      partial);
      });
      written[b] = 1;
      for (index_t c = 0; c < K; ++c) {
        if (!active[c0 + c]) continue;
        rho[c0 + c] = rho_new[c];
        if (c0 + c < m) ++iterations[c0 + c];
      }
    }
  };
  // With at least as many panels as threads, each thread solves whole panels
  // on its own: no barrier between the threads in the whole solve (two per
  // iteration otherwise, each costing a scheduler slice on a busy machine),
  // and the results are the same to the bit as row blocks in parallel.
  // Measured at n = 10^5, 64 columns, two threads: Gaussian graph 236 -> 190
  // ms, manifold 141 -> 113 ms on a quiet machine, 2-4x less under load.
  // The panels left over (fewer than the threads) run with the row blocks
  // in parallel.
  const int threads = resolve_threads(num_threads);
  const index_t alone = panels - panels % threads;
  parallel_for(0, alone, 1, threads, [&](index_t lo, index_t hi) {
    for (index_t b = lo; b < hi; ++b) solve_panel(b, 1);
  });
  for (index_t b = alone; b < panels; ++b) solve_panel(b, threads);
  // The reported residual is the true |y - (I - alpha W) f| / |y| of the f
  // returned (W, alpha and f as stored, the product summed in double), from
  // one more pass over W per panel: the recursive |r| that decides stopping
  // drifts from it where rounding accumulates (float32, alpha close to 1),
  // and stays finite where f overflowed.
  std::vector<double> true_rho(width, 0.0);
  const double alpha_d = double(alpha);
  for (index_t b = 0; b < panels; ++b) {
    if (!written[b]) continue;  // no iteration: every column of y is 0, and so is f
    const index_t c0 = b * K;
    const T* const pf = panel(f, b);
    double* const part = partials.data() + b * blocks * 3 * K;
    const auto rows = residual_rows_of_width<T, I>(K);
    const std::vector<double> sums = over_rows(part, threads, 1, [&](index_t lo, index_t hi,
                                                                     double* partial) {
      rows(w, alpha_d, pf, y, m, c0, order, lo, hi, partial);
    });
    for (index_t c = 0; c < K; ++c) true_rho[c0 + c] = sums[c];
  }
  for (index_t c = 0; c < m; ++c)
    residuals[c] = norm_y[c] > 0.0 ? std::sqrt(true_rho[c]) / norm_y[c] : 0.0;
  // Back to the caller's row-major f, in the caller's row order (f = 0 in
  // panels where no iteration ran: all their columns of y are 0), each row of
  // f written whole.
  parallel_for(0, n, 1024, num_threads, [&](index_t lo, index_t hi) {
    for (index_t j = lo; j < hi; ++j) {
      if (position && j + kAhead < hi)  // panel rows in a random order
        for (index_t b = 0; b < panels; ++b)
          if (written[b]) __builtin_prefetch(panel(f, b) + index_t(position[j + kAhead]) * K);
      T* out = f_out + j * m;
      const index_t i = position ? index_t(position[j]) : j;
      for (index_t b = 0; b < panels; ++b) {
        const T* in = panel(f, b) + i * K;
        for (index_t c = 0; c < std::min(K, m - b * K); ++c)
          out[b * K + c] = written[b] ? in[c] : T(0);
      }
    }
  });
}

}  // namespace

template <class T, class I>
void spmm(const Csr<T, I>& w, const T* x, index_t m, T* y, int num_threads) {
  constexpr index_t K = 64 / sizeof(T);
  using Block = void (*)(const Csr<T, I>&, const T*, index_t, T*, index_t, index_t, index_t, index_t);
  Block block = &portable::block_product<T, I, K>;
#if defined(DEEPRET_X86)
  if (use_avx512f())
    block = &avx512::block_product<T, I, K>;
  else if (use_avx2_fma())
    block = &avx2::block_product<T, I, K>;
#endif
  const index_t full = m / K, rows = (w.rows + kRowsPerBlock - 1) / kRowsPerBlock;
  // The full column blocks of x copied into panels [full, cols, K] first: a
  // gathered row is then one aligned cache line (a row of x rarely is).
  const index_t cols = w.cols;
  Buffer<T> panels = allocate<T>(full * cols * K);
  parallel_for(0, cols, 4096, num_threads, [&](index_t lo, index_t hi) {
    for (index_t b = 0; b < full; ++b)
      for (index_t j = lo; j < hi; ++j)
        std::copy(x + j * m + b * K, x + j * m + (b + 1) * K, panels.get() + (b * cols + j) * K);
  });
  // Tasks (column block, row block), column block by column block: the
  // threads share one block's gathered lines. Leftover columns one by one.
  const index_t columns = full + (m - full * K);
  parallel_for(0, columns * rows, 1, num_threads, [&](index_t lo, index_t hi) {
    for (index_t t = lo; t < hi; ++t) {
      const index_t column = t / rows, begin = (t % rows) * kRowsPerBlock;
      const index_t end = std::min(w.rows, begin + kRowsPerBlock);
      if (column < full)
        block(w, panels.get() + column * cols * K, K, y + column * K, m, begin, end, kGatherAhead);
      else
        portable::block_product<T, I, 1>(w, x + full * K + (column - full), m,
                                         y + full * K + (column - full), m, begin, end, kGatherAhead);
    }
  });
}

template <class T, class I>
void batched_cg(const Csr<T, I>& w, T alpha, const T* y, index_t m, T* f, double tol,
                index_t maxiter, std::int64_t* iterations, double* residuals, int num_threads,
                const I* order) {
  check(w.rows == w.cols, "diffuse: W must be square");
  check(alpha > T(0) && alpha < T(1), "diffuse: alpha must be in (0, 1)");
  if (m == 0) return;
  if (order) {
    // Solve the relabelled system; solve() reads y and writes f in `order`.
    const Relabelled<T, I> relabelled(w, order, num_threads);
    solve<T, I>(relabelled.view, alpha, y, m, f, tol, maxiter, iterations, residuals, num_threads,
                order, relabelled.position.data());
    return;
  }
  solve<T, I>(w, alpha, y, m, f, tol, maxiter, iterations, residuals, num_threads, nullptr,
              nullptr);
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
