// The kNN graph one block of rows at a time, for callers that hold the
// neighbour lists in pieces (deepret.dask): the same rows, bit for bit, as
// graph_from_knn on all the lists at once. Per row i of the block:
//   S_i: its own list's pairs (i -> j), affinity a_ij > 0, j != i, by column;
//   T_i: the pairs (s -> i) of every list that names i, a_si > 0, by source;
//   merge_row(S_i, T_i) as graph_cpu.cpp does, then the row sum in double in
//   column order (the degree that graph_cpu.cpp's normalize computes).
// normalize_block then scales a block's rows with every point's degree.
#include <algorithm>
#include <cmath>
#include <string>

#include "common/buffer.h"
#include "common/errors.h"
#include "common/parallel.h"
#include "graph/graph.h"
#include "graph/graph_math.h"
#include "graph/merge_row.h"

namespace deepret::graph {

namespace {

constexpr index_t kGrain = 256;

double inverse_sqrt_degree(double d) { return d > 0 ? 1.0 / std::sqrt(d) : 0.0; }

}  // namespace

template <class T>
Csr<T> graph_block(const T* scores, const std::int64_t* indices, index_t nb, index_t k,
                   index_t row0, index_t n, const std::int64_t* in_source,
                   const std::int64_t* in_target, const T* in_score, index_t m,
                   const Options& options, double* degrees, int num_threads) {
  check(n < (index_t(1) << 31), "graph_block: n must be below 2^31, got " + std::to_string(n));
  check(row0 >= 0 && nb >= 0 && k >= 0 && m >= 0 && row0 + nb <= n,
        "graph_block: rows outside [0, n)");
  const int int_gamma = integer_gamma(options.gamma);
  auto value = [&](T score) {
    return static_cast<T>(affinity(static_cast<double>(score), options.gamma, int_gamma, options.l2));
  };
  for (index_t p = 0; p < nb * k; ++p)
    if (indices[p] < -1 || indices[p] >= n || !std::isfinite(scores[p]))
      throw ValueError("graph_block: a neighbour outside [-1, n) or a non-finite score in row " +
                       std::to_string(row0 + p / k));
  for (index_t p = 0; p < m; ++p)
    if (in_source[p] < 0 || in_source[p] >= n || in_target[p] < row0 || in_target[p] >= row0 + nb ||
        !std::isfinite(in_score[p]))
      throw ValueError("graph_block: an in-pair outside the block or with a non-finite score");

  // S: each row's own pairs, sorted by column, duplicates merged (max).
  Buffer<Entry<T>> out = allocate<Entry<T>>(nb * k, "the block's out-pairs");
  Buffer<index_t> out_count = allocate<index_t>(nb, "the block's out-pairs");
  parallel_for(0, nb, kGrain, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      Entry<T>* row = out.get() + i * k;
      index_t c = 0;
      for (index_t p = i * k; p < (i + 1) * k; ++p) {
        const std::int64_t j = indices[p];
        if (j < 0 || j == row0 + i) continue;
        const T a = value(scores[p]);
        if (a > 0) row[c++] = {static_cast<std::int32_t>(j), a};
      }
      insertion_sort_by_column(row, row + c);
      out_count[i] = dedupe_max(row, c);
    }
  });

  // T: the in-pairs with a > 0 by target row (a counting sort), each row by source.
  Buffer<std::int64_t> in_ptr = allocate<std::int64_t>(nb + 1, "the block's in-pairs");
  std::fill(in_ptr.get(), in_ptr.get() + nb + 1, 0);
  auto kept = [&](index_t p) { return in_source[p] != in_target[p] && value(in_score[p]) > 0; };
  for (index_t p = 0; p < m; ++p)
    if (kept(p)) ++in_ptr[in_target[p] - row0 + 1];
  for (index_t i = 0; i < nb; ++i) in_ptr[i + 1] += in_ptr[i];
  Buffer<Entry<T>> in = allocate<Entry<T>>(in_ptr[nb], "the block's in-pairs");
  {
    Buffer<std::int64_t> next = allocate<std::int64_t>(nb, "the block's in-pairs");
    std::copy(in_ptr.get(), in_ptr.get() + nb, next.get());
    for (index_t p = 0; p < m; ++p)
      if (kept(p)) in[next[in_target[p] - row0]++] = {static_cast<std::int32_t>(in_source[p]), value(in_score[p])};
  }
  parallel_for(0, nb, kGrain, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i)
      std::sort(in.get() + in_ptr[i], in.get() + in_ptr[i + 1],
                [](const Entry<T>& x, const Entry<T>& y) { return x.col < y.col || (x.col == y.col && x.val < y.val); });
  });

  auto row = [&](index_t i, std::int32_t* col, T* val) {
    const Entry<T>* s = out.get() + i * k;
    return merge_row(s, s + out_count[i], in.get() + in_ptr[i], in.get() + in_ptr[i + 1],
                     options.mutual, col, val);
  };
  Csr<T> g;
  g.n = nb;
  g.indptr = allocate<std::int64_t>(nb + 1, "the block's rows");
  Buffer<index_t> count = allocate<index_t>(nb, "the block's rows");
  parallel_for(0, nb, kGrain, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) count[i] = row(i, nullptr, nullptr);
  });
  index_t total = 0;
  for (index_t i = 0; i < nb; ++i) {
    g.indptr[i] = total;
    total += count[i];
  }
  g.indptr[nb] = total;
  g.nnz = total;
  g.indices = allocate<std::int32_t>(total, "the block's rows");
  g.data = allocate<T>(total, "the block's rows");
  parallel_for(0, nb, kGrain, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      row(i, g.indices.get() + g.indptr[i], g.data.get() + g.indptr[i]);
      double d = 0;
      for (index_t p = g.indptr[i]; p < g.indptr[i + 1]; ++p) d += static_cast<double>(g.data[p]);
      degrees[i] = d;
    }
  });
  return g;
}

template <class T>
index_t normalize_block(std::int64_t* indptr, std::int32_t* indices, T* data, index_t nb,
                        index_t row0, const double* degrees, index_t n, int num_threads) {
  check(row0 >= 0 && row0 + nb <= n, "normalize_block: rows outside [0, n)");
  for (index_t p = 0; p < indptr[nb]; ++p)
    check(indices[p] >= 0 && indices[p] < n, "normalize_block: a column outside [0, n)");
  parallel_for(0, nb, kGrain, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      const double di = inverse_sqrt_degree(degrees[row0 + i]);
      for (index_t p = indptr[i]; p < indptr[i + 1]; ++p)
        data[p] = normalized(data[p], di, inverse_sqrt_degree(degrees[indices[p]]));
    }
  });
  // Entries that underflowed to zero are dropped, as graph_from_knn does.
  index_t q = 0, start = 0;
  for (index_t i = 0; i < nb; ++i) {
    const index_t end = indptr[i + 1];
    for (index_t p = start; p < end; ++p)
      if (data[p] != 0) indices[q] = indices[p], data[q++] = data[p];
    start = end;
    indptr[i + 1] = q;
  }
  return q;
}

template Csr<float> graph_block(const float*, const std::int64_t*, index_t, index_t, index_t, index_t,
                                const std::int64_t*, const std::int64_t*, const float*, index_t,
                                const Options&, double*, int);
template Csr<double> graph_block(const double*, const std::int64_t*, index_t, index_t, index_t, index_t,
                                 const std::int64_t*, const std::int64_t*, const double*, index_t,
                                 const Options&, double*, int);
template index_t normalize_block(std::int64_t*, std::int32_t*, float*, index_t, index_t, const double*,
                                 index_t, int);
template index_t normalize_block(std::int64_t*, std::int32_t*, double*, index_t, index_t, const double*,
                                 index_t, int);

}  // namespace deepret::graph
