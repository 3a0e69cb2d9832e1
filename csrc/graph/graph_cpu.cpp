// CPU kNN graph: per-row work over OpenMP threads, no n x n anything.
//
// 1. directed: row i's valid neighbours with their affinities, sorted by column
//    and deduplicated (largest affinity), in a fixed slot of k entries per row;
//    the same pass checks the input.
// 2a. mutual: keep (i, j) when row j lists i (binary search in the sorted row j):
//     O(n k log k).
// 2b. union: the transpose by counting sort (atomic cursors, then a sort of each
//     transposed row), merged with the directed row, max on common columns.
// 3. normalize: degrees, then w_ij = a_ij * (d_i^-1/2 * d_j^-1/2), a product
//    that is the same bits for (i, j) and (j, i).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/parallel.h"
#include "graph/graph.h"

namespace deepret::graph {

namespace {

constexpr index_t kGrain = 256;  // rows per parallel chunk, at least

template <class T>
struct Entry {
  std::int32_t col;
  T val;
};

// max(0, s)^gamma in double: integer gamma by repeated multiplication (the
// common gamma = 3 costs two multiplies, not a pow), else std::pow.
struct Affinity {
  double gamma;
  int int_gamma;  // gamma when it is an integer in [1, 64], else 0
  bool l2;

  explicit Affinity(const Options& o) : gamma(o.gamma), int_gamma(0), l2(o.l2) {
    if (gamma >= 1 && gamma <= 64 && gamma == std::floor(gamma)) int_gamma = static_cast<int>(gamma);
  }

  double operator()(double score) const {
    const double s = l2 ? 1.0 - 0.5 * score : score;
    if (!(s > 0)) return 0;
    if (int_gamma == 1) return s;
    if (int_gamma == 2) return s * s;
    if (int_gamma == 3) return s * s * s;
    if (int_gamma > 0) {
      double result = 1, base = s;
      for (int e = int_gamma; e > 0; e >>= 1) {
        if (e & 1) result *= base;
        base *= base;
      }
      return result;
    }
    return std::pow(s, gamma);
  }
};

template <class T>
void sort_by_column(Entry<T>* first, Entry<T>* last) {
  if (last - first <= 24) {  // insertion sort: the usual k = 10..50 row
    for (Entry<T>* p = first + 1; p < last; ++p) {
      const Entry<T> e = *p;
      Entry<T>* q = p;
      for (; q > first && (q - 1)->col > e.col; --q) *q = *(q - 1);
      *q = e;
    }
    return;
  }
  std::sort(first, last, [](const Entry<T>& a, const Entry<T>& b) { return a.col < b.col; });
}

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

// Step 1. Returns the first bad flat position (n * k when the input is valid).
template <class T, class I>
index_t build_directed(const T* scores, const I* indices, index_t n, index_t k, const Affinity& affinity,
                       Entry<T>* rows,  // [n, k] slots; row i's first len[i] entries are used
                       index_t* len,    // [n]
                       int num_threads) {
  std::atomic<index_t> first_bad{n * k};
  parallel_for(0, n, kGrain, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      Entry<T>* row = rows + i * k;
      index_t m = 0;
      for (index_t t = 0; t < k; ++t) {
        const index_t p = i * k + t;
        const index_t j = static_cast<index_t>(indices[p]);
        const T s = scores[p];
        if (j < -1 || j >= n || !std::isfinite(s)) {
          index_t seen = first_bad.load(std::memory_order_relaxed);
          while (p < seen && !first_bad.compare_exchange_weak(seen, p)) {
          }
          continue;
        }
        if (j < 0 || j == i) continue;
        const T a = static_cast<T>(affinity(static_cast<double>(s)));
        if (!(a > 0)) continue;  // zero (clipped or underflowed): never stored
        row[m++] = {static_cast<std::int32_t>(j), a};
      }
      sort_by_column(row, row + m);
      index_t u = 0;  // deduplicate, keeping the largest affinity
      for (index_t t = 0; t < m; ++t) {
        if (u > 0 && row[u - 1].col == row[t].col) {
          row[u - 1].val = std::max(row[u - 1].val, row[t].val);
        } else {
          row[u++] = row[t];
        }
      }
      len[i] = u;
    }
  });
  return first_bad.load();
}

template <class T>
const Entry<T>* find_column(const Entry<T>* first, const Entry<T>* last, std::int32_t col) {
  const Entry<T>* p = std::lower_bound(first, last, col,
                                       [](const Entry<T>& e, std::int32_t c) { return e.col < c; });
  return (p != last && p->col == col) ? p : nullptr;
}

// Step 2a: mutual pairs, min of the two affinities.
template <class T>
void mutual_pairs(const Entry<T>* rows, const index_t* len, index_t n, index_t k, Csr<T>& out,
                  int num_threads) {
  std::vector<T> kept(static_cast<std::size_t>(n * k));  // [n, k]: min(a_ij, a_ji) or 0
  std::vector<index_t> count(static_cast<std::size_t>(n));
  parallel_for(0, n, kGrain, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      const Entry<T>* row = rows + i * k;
      index_t c = 0;
      for (index_t t = 0; t < len[i]; ++t) {
        const index_t j = row[t].col;
        const Entry<T>* back = find_column(rows + j * k, rows + j * k + len[j], static_cast<std::int32_t>(i));
        const T v = back ? std::min(row[t].val, back->val) : T(0);
        kept[i * k + t] = v;
        c += back != nullptr;
      }
      count[i] = c;
    }
  });
  out.indptr.reset(new std::int64_t[n + 1]);
  out.nnz = prefix_sum(count.data(), out.indptr.get(), n);
  out.indices.reset(new std::int32_t[out.nnz]);
  out.data.reset(new T[out.nnz]);
  parallel_for(0, n, kGrain, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      index_t p = out.indptr[i];
      for (index_t t = 0; t < len[i]; ++t) {
        const T v = kept[i * k + t];
        if (v > 0) {
          out.indices[p] = rows[i * k + t].col;
          out.data[p++] = v;
        }
      }
    }
  });
}

// Step 2b: union of (i, j) and (j, i), max of the affinities.
template <class T>
void union_pairs(const Entry<T>* rows, const index_t* len, index_t n, index_t k, Csr<T>& out,
                 int num_threads) {
  // Transpose: in-degree, offsets, scatter with atomic cursors, sort each row.
  std::unique_ptr<std::atomic<index_t>[]> cursor(new std::atomic<index_t>[n]);
  for (index_t i = 0; i < n; ++i) cursor[i].store(0, std::memory_order_relaxed);
  parallel_for(0, n, kGrain, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i)
      for (index_t t = 0; t < len[i]; ++t) cursor[rows[i * k + t].col].fetch_add(1, std::memory_order_relaxed);
  });
  std::vector<index_t> indegree(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) indegree[i] = cursor[i].load(std::memory_order_relaxed);
  std::vector<std::int64_t> tptr(static_cast<std::size_t>(n + 1));
  const index_t tnnz = prefix_sum(indegree.data(), tptr.data(), n);
  for (index_t i = 0; i < n; ++i) cursor[i].store(tptr[i], std::memory_order_relaxed);
  std::unique_ptr<Entry<T>[]> trows(new Entry<T>[tnnz]);  // [tnnz]: row j lists the i that list j
  parallel_for(0, n, kGrain, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i)
      for (index_t t = 0; t < len[i]; ++t) {
        const Entry<T>& e = rows[i * k + t];
        trows[cursor[e.col].fetch_add(1, std::memory_order_relaxed)] = {static_cast<std::int32_t>(i), e.val};
      }
  });
  cursor.reset();

  // Merge directed row i with transposed row i: count, then fill.
  std::vector<index_t> count(static_cast<std::size_t>(n));
  parallel_for(0, n, kGrain, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      Entry<T>* b = trows.get() + tptr[i];
      Entry<T>* b_end = trows.get() + tptr[i + 1];
      sort_by_column(b, b_end);
      const Entry<T>* a = rows + i * k;
      const Entry<T>* a_end = a + len[i];
      index_t c = 0;
      while (a < a_end && b < b_end) {
        if (a->col == b->col) ++a, ++b;
        else if (a->col < b->col) ++a;
        else ++b;
        ++c;
      }
      count[i] = c + (a_end - a) + (b_end - b);
    }
  });
  out.indptr.reset(new std::int64_t[n + 1]);
  out.nnz = prefix_sum(count.data(), out.indptr.get(), n);
  out.indices.reset(new std::int32_t[out.nnz]);
  out.data.reset(new T[out.nnz]);
  parallel_for(0, n, kGrain, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      const Entry<T>* a = rows + i * k;
      const Entry<T>* a_end = a + len[i];
      const Entry<T>* b = trows.get() + tptr[i];
      const Entry<T>* b_end = trows.get() + tptr[i + 1];
      std::int32_t* col = out.indices.get() + out.indptr[i];
      T* val = out.data.get() + out.indptr[i];
      while (a < a_end || b < b_end) {
        if (b == b_end || (a < a_end && a->col < b->col)) {
          *col++ = a->col, *val++ = a->val, ++a;
        } else if (a == a_end || b->col < a->col) {
          *col++ = b->col, *val++ = b->val, ++b;
        } else {
          *col++ = a->col, *val++ = std::max(a->val, b->val), ++a, ++b;
        }
      }
    }
  });
}

// Step 3: W = D^-1/2 A D^-1/2, then drop entries that underflowed to zero.
template <class T>
void normalize(Csr<T>& g, int num_threads) {
  const index_t n = g.n;
  std::vector<double> dinv(static_cast<std::size_t>(n));
  parallel_for(0, n, kGrain * 4, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      double d = 0;
      for (index_t p = g.indptr[i]; p < g.indptr[i + 1]; ++p) d += static_cast<double>(g.data[p]);
      dinv[i] = d > 0 ? 1.0 / std::sqrt(d) : 0.0;
    }
  });
  std::atomic<index_t> zeros{0};
  parallel_for(0, n, kGrain, num_threads, [&](index_t lo, index_t hi) {
    index_t z = 0;
    for (index_t i = lo; i < hi; ++i)
      for (index_t p = g.indptr[i]; p < g.indptr[i + 1]; ++p) {
        const T w = static_cast<T>(static_cast<double>(g.data[p]) * (dinv[i] * dinv[g.indices[p]]));
        g.data[p] = w;
        z += !(w != 0);
      }
    zeros.fetch_add(z, std::memory_order_relaxed);
  });
  if (zeros.load() == 0) return;
  index_t q = 0;  // rare (float32 underflow): compact in place
  index_t start = 0;
  for (index_t i = 0; i < n; ++i) {
    const index_t end = g.indptr[i + 1];
    for (index_t p = start; p < end; ++p)
      if (g.data[p] != 0) g.indices[q] = g.indices[p], g.data[q++] = g.data[p];
    start = end;
    g.indptr[i + 1] = q;
  }
  g.nnz = q;
}

}  // namespace

template <class T, class I>
Csr<T> graph_from_knn(const T* scores, const I* indices, index_t n, index_t k, const Options& options,
                      int num_threads) {
  check(n >= 0 && k >= 0, "graph_from_knn: negative shape");
  check(n < (index_t(1) << 31), "graph_from_knn: n must be below 2^31, got " + std::to_string(n));
  check(options.gamma > 0 && std::isfinite(options.gamma), "gamma must be a finite number > 0");
  Csr<T> g;
  g.n = n;
  std::unique_ptr<Entry<T>[]> rows(new Entry<T>[n * k]);  // [n, k]
  std::vector<index_t> len(static_cast<std::size_t>(n));
  const Affinity affinity(options);
  const index_t bad = build_directed(scores, indices, n, k, affinity, rows.get(), len.data(), num_threads);
  if (bad < n * k) {
    const std::string where = "[" + std::to_string(bad / k) + ", " + std::to_string(bad % k) + "]";
    const index_t j = static_cast<index_t>(indices[bad]);
    if (j < -1 || j >= n)
      throw ValueError("indices must lie in [-1, n) = [-1, " + std::to_string(n) + "), got " +
                       std::to_string(j) + " at " + where);
    throw ValueError("scores must be finite, got " + std::to_string(static_cast<double>(scores[bad])) +
                     " at " + where);
  }
  if (options.mutual) {
    mutual_pairs(rows.get(), len.data(), n, k, g, num_threads);
  } else {
    union_pairs(rows.get(), len.data(), n, k, g, num_threads);
  }
  rows.reset();
  if (options.normalize) normalize(g, num_threads);
  return g;
}

template Csr<float> graph_from_knn(const float*, const std::int32_t*, index_t, index_t, const Options&, int);
template Csr<float> graph_from_knn(const float*, const std::int64_t*, index_t, index_t, const Options&, int);
template Csr<double> graph_from_knn(const double*, const std::int32_t*, index_t, index_t, const Options&, int);
template Csr<double> graph_from_knn(const double*, const std::int64_t*, index_t, index_t, const Options&, int);

}  // namespace deepret::graph
