// CPU kNN graph: counting sorts and a merge per row; no per-row sort, no
// search, no atomics, and the same bits for any number of threads.
//
// Rows are cut into C chunks (a few per thread); every pass runs the chunks in
// parallel and each chunk keeps its own per-column cursors, so a scatter lands
// in the same place whatever thread runs it.
//   A. count: check the input; per chunk c, the number of valid pairs (i -> j)
//      per column j, and per row i the number per column chunk.
//   B. scatter rows into T: T_j = the sources i listing j, sorted by i (rows
//      are visited in order), with their affinities a_ij.
//   C. union only: scatter T into S: S_i = row i's valid neighbours j sorted by j.
//   D. mutual: mark row i's own pairs in a per-chunk array of n stamps, keep
//      the marked in-pairs of T_i with min(a_ij, a_ji); union: merge S_i
//      (out-pairs) with T_i (in-pairs), max on common columns. A column
//      listed twice in one row (adjacent after the sorts) keeps its max.
//   E. normalize: degrees, then w_ij = a_ij * (d_i^-1/2 * d_j^-1/2).
// Work O(n k) and memory O(n k) (T, S and the result) plus O(C n) for the
// per-chunk cursors and stamps; each pass streams or scatters independent writes.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>

#include "common/buffer.h"
#include "common/errors.h"
#include "common/parallel.h"
#include "graph/graph.h"
#include "graph/graph_math.h"

namespace deepret::graph {

namespace {

constexpr index_t kGrain = 256;             // rows per parallel chunk, at least
constexpr index_t kCursorBudget = 1 << 25;  // C * n cursors at most (256 MiB)

// Exclusive prefix sum of counts [n] into ptr [n + 1]; returns the total.
index_t prefix_sum(const index_t* counts, std::int64_t* ptr, index_t n) {
  index_t total = 0;
  for (index_t i = 0; i < n; ++i) {
    ptr[i] = total;
    total += counts[i];
  }
  ptr[n] = total;
  return total;
}

struct Chunks {
  index_t n, count;
  index_t begin(index_t c) const { return n * c / count; }
  // The chunk holding row j: the largest c with begin(c) <= j.
  index_t of(index_t j) const { return ((j + 1) * count - 1) / n; }
};

// cursor [C, n] holds per-chunk counts; turn them into write positions:
// ptr [n + 1] = prefix of the column totals, cursor[c][j] = ptr[j] + the
// count of chunks before c. Returns the total.
index_t offsets(index_t* cursor, index_t C, index_t n, std::int64_t* ptr, index_t* scratch, int threads) {
  parallel_for(0, n, kGrain * 16, threads, [&](index_t lo, index_t hi) {
    for (index_t j = lo; j < hi; ++j) {
      index_t total = 0;
      for (index_t c = 0; c < C; ++c) total += cursor[c * n + j];
      scratch[j] = total;
    }
  });
  const index_t total = prefix_sum(scratch, ptr, n);
  parallel_for(0, n, kGrain * 16, threads, [&](index_t lo, index_t hi) {
    for (index_t j = lo; j < hi; ++j) {
      index_t run = ptr[j];
      for (index_t c = 0; c < C; ++c) {
        const index_t count = cursor[c * n + j];
        cursor[c * n + j] = run;
        run += count;
      }
    }
  });
  return total;
}

// The next column of a sorted row and its largest affinity (duplicates merged).
template <class T>
inline bool next_run(const Entry<T>*& p, const Entry<T>* end, std::int32_t& col, T& val) {
  if (p == end) return false;
  col = p->col;
  val = p->val;
  for (++p; p != end && p->col == col; ++p) val = std::max(val, p->val);
  return true;
}

// Union of out-row s [s, s_end) and in-row t [t, t_end), max on common
// columns; writes the result when out_col is not null; returns its length.
template <class T>
index_t merge_row(const Entry<T>* s, const Entry<T>* s_end, const Entry<T>* t, const Entry<T>* t_end,
                  std::int32_t* out_col, T* out_val) {
  std::int32_t cs = 0, ct = 0;
  T vs{}, vt{};
  bool has_s = next_run(s, s_end, cs, vs), has_t = next_run(t, t_end, ct, vt);
  index_t m = 0;
  auto emit = [&](std::int32_t col, T val) {
    if (out_col) out_col[m] = col, out_val[m] = val;
    ++m;
  };
  while (has_s && has_t) {
    if (cs == ct) {
      emit(cs, std::max(vs, vt));
      has_s = next_run(s, s_end, cs, vs);
      has_t = next_run(t, t_end, ct, vt);
    } else if (cs < ct) {
      emit(cs, vs);
      has_s = next_run(s, s_end, cs, vs);
    } else {
      emit(ct, vt);
      has_t = next_run(t, t_end, ct, vt);
    }
  }
  for (; has_s; has_s = next_run(s, s_end, cs, vs)) emit(cs, vs);
  for (; has_t; has_t = next_run(t, t_end, ct, vt)) emit(ct, vt);
  return m;
}

// E: W = D^-1/2 A D^-1/2, then drop entries that underflowed to zero.
template <class T>
void normalize(Csr<T>& g, int threads) {
  const index_t n = g.n;
  Buffer<double> dinv = allocate<double>(n);
  parallel_for(0, n, kGrain * 4, threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      double d = 0;
      for (index_t p = g.indptr[i]; p < g.indptr[i + 1]; ++p) d += static_cast<double>(g.data[p]);
      dinv[i] = d > 0 ? 1.0 / std::sqrt(d) : 0.0;
    }
  });
  std::atomic<index_t> zeros{0};
  parallel_for(0, n, kGrain, threads, [&](index_t lo, index_t hi) {
    index_t z = 0;
    for (index_t i = lo; i < hi; ++i)
      for (index_t p = g.indptr[i]; p < g.indptr[i + 1]; ++p) {
        const T w = normalized(g.data[p], dinv[i], dinv[g.indices[p]]);
        g.data[p] = w;
        z += !(w != 0);
      }
    zeros.fetch_add(z, std::memory_order_relaxed);
  });
  if (zeros.load() == 0) return;
  index_t q = 0, start = 0;  // rare (float32 underflow): compact in place
  for (index_t i = 0; i < n; ++i) {
    const index_t end = g.indptr[i + 1];
    for (index_t p = start; p < end; ++p)
      if (g.data[p] != 0) g.indices[q] = g.indices[p], g.data[q++] = g.data[p];
    start = end;
    g.indptr[i + 1] = q;
  }
  g.nnz = q;
}

[[noreturn]] void throw_bad_input(index_t bad, index_t j, index_t n, index_t k, double score) {
  const std::string where = "[" + std::to_string(bad / k) + ", " + std::to_string(bad % k) + "]";
  if (j < -1 || j >= n)
    throw ValueError("indices must lie in [-1, n) = [-1, " + std::to_string(n) + "), got " + std::to_string(j) +
                     " at " + where);
  throw ValueError("scores must be finite, got " + std::to_string(score) + " at " + where);
}

}  // namespace

template <class T, class I>
Csr<T> graph_from_knn(const T* scores, const I* indices, index_t n, index_t k, const Options& options,
                      int num_threads) {
  check(n >= 0 && k >= 0, "graph_from_knn: negative shape");
  check(n < (index_t(1) << 31), "graph_from_knn: n must be below 2^31, got " + std::to_string(n));
  check(options.gamma > 0 && std::isfinite(options.gamma), "gamma must be a finite number > 0");
  const int threads = resolve_threads(num_threads);
  const int int_gamma = integer_gamma(options.gamma);
  const double gamma = options.gamma;
  const bool l2 = options.l2;
  // The affinity of flat position p, or 0 when the pair is not used.
  auto pair = [&](index_t i, index_t p, index_t& j) -> T {
    j = static_cast<index_t>(indices[p]);
    if (j < 0 || j == i) return T(0);
    return static_cast<T>(affinity(static_cast<double>(scores[p]), gamma, int_gamma, l2));
  };

  index_t C = std::min<index_t>(2 * threads, std::max<index_t>(1, n / kGrain));
  while (C > 1 && C * n > kCursorBudget) --C;
  const Chunks chunks{std::max<index_t>(n, 1), C};
  auto for_chunks = [&](auto&& body) {
    parallel_for(0, C, 1, threads, [&](index_t lo, index_t hi) {
      for (index_t c = lo; c < hi; ++c) body(c, chunks.begin(c), std::min(n, chunks.begin(c + 1)));
    });
  };

  const bool mutual = options.mutual;
  // A. Count (and check).
  Buffer<index_t> to_t = allocate<index_t>(C * n);              // [C, n]: per row chunk, pairs per column
  Buffer<index_t> to_s = allocate<index_t>(mutual ? 1 : C * n);  // [C, n]: per column chunk, pairs per row
  std::atomic<index_t> first_bad{n * k};
  for_chunks([&](index_t c, index_t, index_t) {
    std::fill(to_t.get() + c * n, to_t.get() + (c + 1) * n, 0);
    if (!mutual) std::fill(to_s.get() + c * n, to_s.get() + (c + 1) * n, 0);
  });
  for_chunks([&](index_t c, index_t lo, index_t hi) {
    index_t* count_t = to_t.get() + c * n;
    for (index_t i = lo; i < hi; ++i)
      for (index_t p = i * k; p < (i + 1) * k; ++p) {
        index_t j;
        const T a = pair(i, p, j);
        if (j < -1 || j >= n || !std::isfinite(scores[p])) {
          index_t seen = first_bad.load(std::memory_order_relaxed);
          while (p < seen && !first_bad.compare_exchange_weak(seen, p)) {
          }
          break;
        }
        if (a > 0) {
          ++count_t[j];
          if (!mutual) ++to_s[chunks.of(j) * n + i];
        }
      }
  });
  if (const index_t bad = first_bad.load(); bad < n * k)
    throw_bad_input(bad, static_cast<index_t>(indices[bad]), n, k, static_cast<double>(scores[bad]));

  Buffer<index_t> scratch = allocate<index_t>(n);
  Buffer<std::int64_t> tptr = allocate<std::int64_t>(n + 1);
  const index_t pairs = offsets(to_t.get(), C, n, tptr.get(), scratch.get(), threads);

  // B. Rows into T (sorted by source).
  Buffer<Entry<T>> t_rows = allocate<Entry<T>>(pairs);  // [pairs]
  for_chunks([&](index_t c, index_t lo, index_t hi) {
    index_t* cursor = to_t.get() + c * n;
    for (index_t i = lo; i < hi; ++i)
      for (index_t p = i * k; p < (i + 1) * k; ++p) {
        index_t j;
        const T a = pair(i, p, j);
        if (a > 0) t_rows[cursor[j]++] = {static_cast<std::int32_t>(i), a};
      }
  });
  to_t.reset();

  // row(i, col, val) writes row i of the result when col is not null and
  // returns its length; each chunk c has its own scratch state.
  Csr<T> g;
  g.n = n;
  g.indptr = allocate<std::int64_t>(n + 1);
  auto build = [&](auto&& row) {
    for_chunks([&](index_t c, index_t lo, index_t hi) {
      for (index_t i = lo; i < hi; ++i) scratch[i] = row(c, i, nullptr, nullptr);
    });
    g.nnz = prefix_sum(scratch.get(), g.indptr.get(), n);
    g.indices = allocate<std::int32_t>(g.nnz);
    g.data = allocate<T>(g.nnz);
    for_chunks([&](index_t c, index_t lo, index_t hi) {
      for (index_t i = lo; i < hi; ++i) row(c, i, g.indices.get() + g.indptr[i], g.data.get() + g.indptr[i]);
    });
  };

  if (mutual) {
    // D (mutual). Mark row i's own pairs (stamp[j] == i, with the largest
    // a_ij), then keep the in-pairs (j -> i) of T_i that are marked: sorted
    // already, and no second counting sort. A stamp left by the counting
    // call for the same row only ever repeats what the fill call writes.
    Buffer<std::int32_t> stamp = allocate<std::int32_t>(C * n);  // [C, n]
    Buffer<T> mark = allocate<T>(C * n);                          // [C, n]
    for_chunks([&](index_t c, index_t, index_t) { std::fill(stamp.get() + c * n, stamp.get() + (c + 1) * n, -1); });
    build([&](index_t c, index_t i, std::int32_t* col, T* val) {
      std::int32_t* st = stamp.get() + c * n;
      T* mk = mark.get() + c * n;
      const auto me = static_cast<std::int32_t>(i);
      for (index_t p = i * k; p < (i + 1) * k; ++p) {
        index_t j;
        const T a = pair(i, p, j);
        if (!(a > 0)) continue;
        if (st[j] == me) {
          mk[j] = std::max(mk[j], a);
        } else {
          st[j] = me;
          mk[j] = a;
        }
      }
      const Entry<T>* t = t_rows.get() + tptr[i];
      const Entry<T>* t_end = t_rows.get() + tptr[i + 1];
      std::int32_t j;
      T a_ji;
      index_t m = 0;
      while (next_run(t, t_end, j, a_ji)) {
        if (st[j] != me) continue;
        if (col) col[m] = j, val[m] = std::min(mk[j], a_ji);
        ++m;
      }
      return m;
    });
  } else {
    // C (union). T into S: S_i = row i's pairs sorted by column.
    Buffer<std::int64_t> sptr = allocate<std::int64_t>(n + 1);
    offsets(to_s.get(), C, n, sptr.get(), scratch.get(), threads);
    Buffer<Entry<T>> s_rows = allocate<Entry<T>>(pairs);  // [pairs]
    for_chunks([&](index_t c, index_t lo, index_t hi) {
      index_t* cursor = to_s.get() + c * n;
      for (index_t j = lo; j < hi; ++j)
        for (index_t p = tptr[j]; p < tptr[j + 1]; ++p) {
          const Entry<T> e = t_rows[p];
          s_rows[cursor[e.col]++] = {static_cast<std::int32_t>(j), e.val};
        }
    });
    to_s.reset();
    // D (union). Merge each row's out- and in-pairs.
    build([&](index_t, index_t i, std::int32_t* col, T* val) {
      return merge_row(s_rows.get() + sptr[i], s_rows.get() + sptr[i + 1], t_rows.get() + tptr[i],
                       t_rows.get() + tptr[i + 1], col, val);
    });
  }
  t_rows.reset();

  if (options.normalize) normalize(g, threads);
  return g;
}

template Csr<float> graph_from_knn(const float*, const std::int32_t*, index_t, index_t, const Options&, int);
template Csr<float> graph_from_knn(const float*, const std::int64_t*, index_t, index_t, const Options&, int);
template Csr<double> graph_from_knn(const double*, const std::int32_t*, index_t, index_t, const Options&, int);
template Csr<double> graph_from_knn(const double*, const std::int64_t*, index_t, index_t, const Options&, int);

}  // namespace deepret::graph
