// CPU kNN graph: two cache-friendly transposes and a merge per row; no per-row
// sort, no search, no atomic scatter, and the same bits for any number of
// threads. The input is checked during the first transpose's first pass.
//
//   T = transpose(input): T_j = the sources i listing j, sorted by i, with a_ij.
//   S = transpose(T):     S_i = row i's valid neighbours j, sorted by j.
//   per row i, merge S_i (out-pairs) with T_i (in-pairs): mutual keeps the
//   columns in both, min(a_ij, a_ji); union all, max on common columns. A
//   column listed twice in one row (adjacent after the transposes) keeps its max.
//   normalize: degrees, then w_ij = a_ij * (d_i^-1/2 * d_j^-1/2).
//
// A transpose is a counting sort: in one level (count per chunk and column,
// scatter) up to n = 2^18, beyond that in two levels, so that no pass
// scatters over more than a cache's worth of destinations (a one-level
// scatter over n columns runs at DRAM latency once n passes a few 10^5):
//   1. rows are cut into C chunks (a few per thread); per chunk, count the
//      pairs per bucket of W consecutive columns;
//   2. per chunk, append the pairs (source, column, value) to their bucket's
//      stretch of a staging array (at most ~1024 buckets: sequential streams);
//   3. per bucket, count per column and place the pairs into the final rows.
// Chunks visit their rows in order and own fixed stretches, so every row of
// the result comes out sorted by source, whatever thread ran what.
// Work O(n k), memory O(n k): T, S, the staging array and the result.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <vector>

#include "common/buffer.h"
#include "common/errors.h"
#include "common/parallel.h"
#include "graph/graph.h"
#include "graph/graph_math.h"
#include "graph/merge_row.h"

namespace deepret::graph {

namespace {

constexpr index_t kGrain = 256;         // rows per parallel chunk, at least
constexpr index_t kMinBucket = 2048;    // columns per bucket, at least
constexpr index_t kMaxBuckets = 1024;   // staging streams per chunk, at most

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

template <class T>
struct Staged {
  std::int32_t source, column;
  T val;
};

// The CSR-like rows of a transpose: ptr [n + 1], rows [ptr[n]].
template <class T>
struct Rows {
  Buffer<std::int64_t> ptr;
  Buffer<Entry<T>> rows;
};

struct Plan {
  index_t n, chunks, width, buckets;
  bool two_level;
  int threads;
  index_t begin(index_t c) const { return n * c / chunks; }
};

Plan make_plan(index_t n, int threads, const Options& options) {
  Plan plan;
  plan.n = n;
  plan.threads = threads;
  plan.two_level = n > options.two_level_from;
  plan.chunks = std::min<index_t>(2 * threads, std::max<index_t>(1, n / kGrain));
  plan.width = options.bucket_width > 0 ? options.bucket_width
                                        : std::max(kMinBucket, (n + kMaxBuckets - 1) / kMaxBuckets);
  plan.buckets = std::max<index_t>(1, (n + plan.width - 1) / plan.width);
  return plan;
}

// for each chunk c in parallel: body(c, first row, end row).
template <class Body>
void for_chunks(const Plan& plan, const Body& body) {
  parallel_for(0, plan.chunks, 1, plan.threads, [&](index_t lo, index_t hi) {
    for (index_t c = lo; c < hi; ++c) body(c, plan.begin(c), plan.begin(c + 1));
  });
}

// One-level transpose for small n (per-chunk cursors over all n columns stay
// in cache): count per (chunk, column), offsets, scatter.
template <class T, class Visit>
Rows<T> transpose_direct(const Plan& plan, const Visit& visit) {
  const index_t C = plan.chunks, n = plan.n;
  Buffer<index_t> cursor = allocate<index_t>(C * n);  // [C, n]
  for_chunks(plan, [&](index_t c, index_t lo, index_t hi) {
    index_t* count = cursor.get() + c * n;
    std::fill(count, count + n, 0);
    visit(c, lo, hi, [&](index_t, index_t column, T) { ++count[column]; });
  });
  Rows<T> out;
  out.ptr = allocate<std::int64_t>(n + 1);
  Buffer<index_t> total = allocate<index_t>(n);
  parallel_for(0, n, kGrain * 16, plan.threads, [&](index_t lo, index_t hi) {
    for (index_t j = lo; j < hi; ++j) {
      index_t sum = 0;
      for (index_t c = 0; c < C; ++c) sum += cursor[c * n + j];
      total[j] = sum;
    }
  });
  const index_t pairs = prefix_sum(total.get(), out.ptr.get(), n);
  parallel_for(0, n, kGrain * 16, plan.threads, [&](index_t lo, index_t hi) {
    for (index_t j = lo; j < hi; ++j) {
      index_t run = out.ptr[j];
      for (index_t c = 0; c < C; ++c) {
        const index_t count = cursor[c * n + j];
        cursor[c * n + j] = run;
        run += count;
      }
    }
  });
  out.rows = allocate<Entry<T>>(pairs);
  for_chunks(plan, [&](index_t c, index_t lo, index_t hi) {
    index_t* next = cursor.get() + c * n;
    visit(c, lo, hi, [&](index_t source, index_t column, T val) {
      out.rows[next[column]++] = {static_cast<std::int32_t>(source), val};
    });
  });
  return out;
}

// The transpose of the pairs that visit(c, lo, hi, emit) produces: it calls
// emit(source, column, value) for the rows [lo, hi) of chunk c in order, the
// same pairs each time it is called (twice). Row j of the result lists the
// sources that emitted column j, in increasing order.
template <class T, class Visit>
Rows<T> transpose(const Plan& plan, const Visit& visit) {
  if (!plan.two_level) return transpose_direct<T>(plan, visit);
  const index_t C = plan.chunks, B = plan.buckets, W = plan.width, n = plan.n;
  Scratch<index_t> cursor(static_cast<std::size_t>(C * B), 0);  // [C, B]
  for_chunks(plan, [&](index_t c, index_t lo, index_t hi) {
    index_t* count = cursor.data() + c * B;
    visit(c, lo, hi, [&](index_t, index_t column, T) { ++count[column / W]; });
  });
  Scratch<index_t> bucket_start(static_cast<std::size_t>(B + 1));
  index_t total = 0;
  for (index_t b = 0; b < B; ++b) {
    bucket_start[b] = total;
    for (index_t c = 0; c < C; ++c) {
      const index_t count = cursor[c * B + b];
      cursor[c * B + b] = total;
      total += count;
    }
  }
  bucket_start[B] = total;

  Buffer<Staged<T>> stage = allocate<Staged<T>>(total);  // [total], grouped by bucket
  for_chunks(plan, [&](index_t c, index_t lo, index_t hi) {
    index_t* next = cursor.data() + c * B;
    visit(c, lo, hi, [&](index_t source, index_t column, T val) {
      stage[next[column / W]++] = {static_cast<std::int32_t>(source), static_cast<std::int32_t>(column), val};
    });
  });

  Rows<T> out;
  out.ptr = allocate<std::int64_t>(n + 1);
  out.rows = allocate<Entry<T>>(total);
  parallel_for(0, B, 1, plan.threads, [&](index_t lo, index_t hi) {
    Scratch<index_t> next(static_cast<std::size_t>(W));
    for (index_t b = lo; b < hi; ++b) {
      const index_t first = b * W, width = std::min(W, n - first);
      std::fill(next.begin(), next.begin() + width, 0);
      for (index_t p = bucket_start[b]; p < bucket_start[b + 1]; ++p) ++next[stage[p].column - first];
      index_t run = bucket_start[b];
      for (index_t x = 0; x < width; ++x) {
        out.ptr[first + x] = run;
        const index_t count = next[x];
        next[x] = run;
        run += count;
      }
      for (index_t p = bucket_start[b]; p < bucket_start[b + 1]; ++p) {
        const Staged<T> e = stage[p];
        out.rows[next[e.column - first]++] = {e.source, e.val};
      }
    }
  });
  out.ptr[n] = total;
  return out;
}

// W = D^-1/2 A D^-1/2, then drop entries that underflowed to zero.
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
  const Plan plan = make_plan(n, threads, options);
  const int int_gamma = integer_gamma(options.gamma);
  // T: the input's pairs (i -> j) with a_ij > 0, by column j. The visit also
  // checks the input: a bad entry is skipped (so nothing is written out of
  // bounds) and reported once T is built.
  std::atomic<index_t> first_bad{n * k};
  Rows<T> t = transpose<T>(plan, [&](index_t, index_t lo, index_t hi, auto&& emit) {
    for (index_t i = lo; i < hi; ++i)
      for (index_t p = i * k; p < (i + 1) * k; ++p) {
        const index_t j = static_cast<index_t>(indices[p]);
        if (j < -1 || j >= n || !std::isfinite(scores[p])) {
          index_t seen = first_bad.load(std::memory_order_relaxed);
          while (p < seen && !first_bad.compare_exchange_weak(seen, p)) {
          }
          continue;
        }
        if (j < 0 || j == i) continue;
        const T a = static_cast<T>(affinity(static_cast<double>(scores[p]), options.gamma, int_gamma, options.l2));
        if (a > 0) emit(i, j, a);
      }
  });
  if (const index_t bad = first_bad.load(); bad < n * k)
    throw_bad_input(bad, static_cast<index_t>(indices[bad]), n, k, static_cast<double>(scores[bad]));
  // S: the same pairs by row i, sorted by column.
  Rows<T> s = transpose<T>(plan, [&](index_t, index_t lo, index_t hi, auto&& emit) {
    for (index_t j = lo; j < hi; ++j)
      for (index_t p = t.ptr[j]; p < t.ptr[j + 1]; ++p) emit(j, t.rows[p].col, t.rows[p].val);
  });

  Csr<T> g;
  g.n = n;
  g.indptr = allocate<std::int64_t>(n + 1);
  Buffer<index_t> count = allocate<index_t>(n);
  auto row = [&](index_t i, std::int32_t* col, T* val) {
    return merge_row(s.rows.get() + s.ptr[i], s.rows.get() + s.ptr[i + 1], t.rows.get() + t.ptr[i],
                     t.rows.get() + t.ptr[i + 1], options.mutual, col, val);
  };
  parallel_for(0, n, kGrain, threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) count[i] = row(i, nullptr, nullptr);
  });
  g.nnz = prefix_sum(count.get(), g.indptr.get(), n);
  g.indices = allocate<std::int32_t>(g.nnz);
  g.data = allocate<T>(g.nnz);
  parallel_for(0, n, kGrain, threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) row(i, g.indices.get() + g.indptr[i], g.data.get() + g.indptr[i]);
  });
  t = Rows<T>();
  s = Rows<T>();

  if (options.normalize) normalize(g, threads);
  return g;
}

template Csr<float> graph_from_knn(const float*, const std::int32_t*, index_t, index_t, const Options&, int);
template Csr<float> graph_from_knn(const float*, const std::int64_t*, index_t, index_t, const Options&, int);
template Csr<double> graph_from_knn(const double*, const std::int32_t*, index_t, index_t, const Options&, int);
template Csr<double> graph_from_knn(const double*, const std::int64_t*, index_t, index_t, const Options&, int);

}  // namespace deepret::graph
