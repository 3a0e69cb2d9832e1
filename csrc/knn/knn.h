// Exact k-nearest-neighbour search: blocked similarity (a register-tiled
// micro-kernel over a packed copy of the database) fused with a per-query
// top-k selection, so memory stays O(database + block + nq * k) and no n x n
// matrix is ever formed.
// The definitions, for users: docs/algorithms/knn_graph.md.
#pragma once

#include <cstdint>
#include <functional>

#include "common/array_view.h"
#include "common/buffer.h"
#include "common/device.h"
#include "common/dtype.h"

namespace deepret::knn {

enum class Metric : int { InnerProduct = 0, L2 = 1 };

// Database rows packed for the micro-kernel: panels of kPanel rows, each
// stored dimension-major (panel[p][j][c] = x[p * kPanel + c][j]), zero-padded
// to a whole panel. Built once, searched many times (all-vs-all, batches of
// queries, unseen queries later).
template <class T>
class PackedDatabase {
 public:
  static constexpr int kPanel = 64 / sizeof(T);  // 16 floats or 8 doubles: one cache line a row

  PackedDatabase(const T* x, index_t n, index_t d, int num_threads);  // x: [n, d] row-major
  index_t size() const { return n_; }
  index_t dim() const { return d_; }
  index_t panels() const { return (n_ + kPanel - 1) / kPanel; }
  const T* panel(index_t p) const { return data_.get() + p * kPanel * d_; }  // [d, kPanel]
  // -|x_i|^2 / 2 for each row: with it, maximizing <q, x_i> - |x_i|^2 / 2
  // minimizes |q - x_i|^2.
  const T* half_neg_norms() const { return half_neg_norms_.get(); }  // [panels * kPanel]

 private:
  index_t n_, d_;
  Buffer<T> data_;  // [panels, d, kPanel], 64-byte aligned
  Buffer<T> half_neg_norms_;
};

// For each query row q_i: the k database rows with the largest inner product
// (metric InnerProduct) or the smallest squared Euclidean distance (L2), best
// first, ties broken by the smaller index. With self_offset >= 0 the queries
// are database rows self_offset .. self_offset + nq - 1 and each skips its own
// row (exclude_self). Requires 1 <= k <= n (minus one with self_offset).
// With raw, L2 scores stay the heap keys <q, x> - |x|^2 / 2 (larger is
// better) instead of distances: lists from parts of a split search merge
// exactly on those (merge_sorted), and finish_distances converts them.
template <class T>
void search(const PackedDatabase<T>& db,
            const T* queries, index_t nq,  // [nq, d] row-major
            index_t k, Metric metric, index_t self_offset,
            T* scores,                     // [nq, k] out
            std::int64_t* indices,         // [nq, k] out
            int num_threads, bool raw = false);

// All-vs-all search of the database against itself (x = the rows it was
// packed from), using the symmetry <x_i, x_j> = <x_j, x_i>: each score tile
// is computed once and feeds the heaps of its rows and of its columns, which
// halves the arithmetic. A thread takes a tile only while no other thread
// holds either of its blocks, so no two threads touch the same heap (no
// barriers). `progress(done, total)` (tiles) is called on the calling thread
// about a hundred times, then once with done = total (may be empty).
template <class T>
void search_self(const PackedDatabase<T>& db,
                 const T* x,              // [n, d] row-major, the packed rows
                 index_t k, Metric metric, bool exclude_self,
                 T* scores,               // [n, k] out
                 std::int64_t* indices,   // [n, k] out
                 int num_threads,
                 const std::function<void(index_t, index_t)>& progress, bool raw = false);

// One off-diagonal rectangle of a blocked all-vs-all, for callers that split
// the all-vs-all themselves (deepret.dask): rows a and rows b are disjoint
// sets of points, db is packed from b. Each score <a_i, b_j> is computed once
// and feeds both a_i's heap (its best ka rows of b) and b_j's heap (its best
// kb rows of a), as search_self's tiles do, with the same bits: every score
// is the same chain of products whichever side is the query. Indices are
// local (rows of b for a's lists, rows of a for b's); scores raw (see search).
// Requires 1 <= ka <= nb and 1 <= kb <= na.
template <class T>
void search_pair(const PackedDatabase<T>& db,     // packed rows b [nb, d]
                 const T* a, index_t na,          // [na, d] row-major
                 const T* b,                      // [nb, d] the rows db was packed from
                 index_t ka, index_t kb, Metric metric,
                 T* a_scores,                     // [na, ka] out, best first
                 std::int64_t* a_indices,         // [na, ka] out
                 T* b_scores,                     // [nb, kb] out, best first
                 std::int64_t* b_indices,         // [nb, kb] out
                 int num_threads);

// Per row, the best k of two best-first lists of disjoint candidates, best
// first, in the heaps' order (larger score, then smaller index): the exact
// top-k of the union. Requires 1 <= k <= ka + kb.
template <class T>
void merge_sorted(index_t n,
                  const T* a_scores, const std::int64_t* a_indices, index_t ka,  // [n, ka]
                  const T* b_scores, const std::int64_t* b_indices, index_t kb,  // [n, kb]
                  index_t k,
                  T* scores,              // [n, k] out
                  std::int64_t* indices,  // [n, k] out
                  int num_threads);

// The topk best of each of `lists` lists of `items` values, best first: a
// larger value, then the smaller item; NaN below every number. That is the
// first topk of a stable descending argsort of each list. Item i of list j
// is values[i * item_stride + j * list_stride]: the columns of a row-major
// (items, lists) array with (lists, 1), its rows with (1, items). Requires
// 1 <= topk <= items.
template <class T>
void top_k_lists(const T* values, index_t items, index_t lists, index_t item_stride,
                 index_t list_stride, index_t topk,
                 T* scores,              // [lists, topk] out
                 std::int64_t* indices,  // [lists, topk] out: the items
                 int num_threads);

// Raw L2 scores of rows x (see search) to squared distances, in place, with
// the same arithmetic as an unsplit search.
template <class T>
void finish_distances(T* scores,            // [n, k] in/out
                      index_t n, index_t k,
                      const T* x, index_t d,  // [n, d] the query rows
                      int num_threads);

// The similarity part of search() alone, for benchmarks: every score of the
// queries against the database, computed block by block with the same kernel
// and blocking, and dropped (no selection). Returns the sum of each block's
// first score so that the work is observable.
template <class T>
double similarity_only(const PackedDatabase<T>& db,
                       const T* queries, index_t nq,  // [nq, d]
                       int num_threads);

}  // namespace deepret::knn

// ---------------------------------------------------------------- CUDA engine
// (knn_cuda.cu; built only with DEEPRET_CUDA). Device pointers, row-major,
// contiguous; the element type is passed at run time.
namespace deepret::knn::cuda {

// dtype: F32 or F64.
// Largest k the GPU top-k handles (a shared-memory bitonic merge).
constexpr index_t kMaxK = 1024;

// The same contract as knn::search above, on the GPU: tiled similarity into a
// device scratch of (query block x database chunk) scores, then per-query
// top-k state updated chunk by chunk. Queued on `stream`; returns after
// queueing (the caller's stream order makes the outputs ready).
void search(DType dtype,
            const void* x, index_t n, index_t d,  // [n, d] database on the device
            const void* queries, index_t nq,      // [nq, d] on the device
            index_t k, Metric metric, index_t self_offset,
            void* scores,                         // [nq, k] out, dtype
            std::int64_t* indices,                // [nq, k] out
            deepret::cuda::Scratch& scratch,      // device scratch (<= 256 MiB score tile)
            std::uintptr_t stream);

}  // namespace deepret::knn::cuda
