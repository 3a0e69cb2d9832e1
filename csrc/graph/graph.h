// Sparse kNN graph engine: from the k nearest neighbours of every point to the
// symmetric affinity matrix that diffusion runs on, as CSR.
// The definitions, for users: docs/algorithms/knn_graph.md.
//
// Row i of (scores, indices) lists the k neighbours of point i (any order;
// index -1 means "no neighbour", as faiss returns it). For every listed pair
// (i, j) with j != i the affinity is
//     a_ij = max(0, s_ij)^gamma,   s_ij = scores[i, t]         (inner product)
//                                  s_ij = 1 - scores[i, t] / 2 (squared L2
//                                  distance; the cosine for unit vectors).
// A column listed twice in one row keeps its largest affinity. Pairs with
// a_ij == 0 are dropped. Then
//   mutual:     A_ij = min(a_ij, a_ji) where j lists i and i lists j;
//   not mutual: A_ij = max(a_ij, a_ji) over the pairs listed either way;
//   normalize:  W = D^-1/2 A D^-1/2 with D the row sums (isolated points keep
//               an empty row); entries that underflow to 0 are dropped.
// The result is symmetric bit for bit, with sorted column indices, no self
// loops and no stored zeros.
#pragma once

#include <cstdint>

#include "common/array_view.h"
#include "common/buffer.h"
#include "common/device.h"
#include "common/dtype.h"

namespace deepret::graph {

struct Options {
  double gamma = 3.0;   // > 0
  bool mutual = true;   // keep mutual pairs only (min), else the union (max)
  bool l2 = false;      // scores are squared L2 distances: s = 1 - d / 2
  bool normalize = true;
  // Tuning of the CPU engine's transposes (exposed for tests): one-level
  // counting sort up to this n, two-level beyond, with buckets of this many
  // columns (0: automatic).
  index_t two_level_from = index_t(1) << 18;
  index_t bucket_width = 0;
};

// CSR arrays owned by the engine (std::free'd); the bindings hand them to
// numpy without a copy.
template <class T>
struct Csr {
  index_t n = 0;
  index_t nnz = 0;
  Buffer<std::int64_t> indptr;   // [n + 1]
  Buffer<std::int32_t> indices;  // [nnz], sorted within each row
  Buffer<T> data;                // [nnz]
};

// T is float or double; I is std::int32_t or std::int64_t. Contiguous inputs.
// Throws ValueError for n >= 2^31, an index outside [-1, n), or a score that is
// not finite (naming the first offending row and column).
template <class T, class I>
Csr<T> graph_from_knn(const T* scores,   // [n, k]
                      const I* indices,  // [n, k]
                      index_t n, index_t k, const Options& options, int num_threads);

// Rows [row0, row0 + nb) of the unnormalized graph (Options::normalize is
// ignored) from the pieces a split search holds (graph_block_cpu.cpp): the
// block's own lists (global indices) and every pair (source -> target) of the
// other lists, and of its own, whose target lies in the block. The same bits
// as those rows of graph_from_knn(normalize=false) on all the lists. The
// result's indptr is local (nb + 1 entries), its columns global; degrees
// gets each row's sum in double (the degree normalize uses).
template <class T>
Csr<T> graph_block(const T* scores,              // [nb, k]
                   const std::int64_t* indices,  // [nb, k] in [-1, n)
                   index_t nb, index_t k, index_t row0, index_t n,
                   const std::int64_t* in_source,  // [m] in [0, n)
                   const std::int64_t* in_target,  // [m] in [row0, row0 + nb)
                   const T* in_score,              // [m] the source's score of the target
                   index_t m, const Options& options,
                   double* degrees,                // [nb] out
                   int num_threads);

// W = D^-1/2 A D^-1/2 on a block's rows from graph_block, in place, with
// every point's degree (the concatenated `degrees` of all blocks); entries
// that underflow to zero are dropped. Returns the new nnz (indptr updated).
template <class T>
index_t normalize_block(std::int64_t* indptr,   // [nb + 1] local
                        std::int32_t* indices,  // [nnz] global columns
                        T* data,                // [nnz]
                        index_t nb, index_t row0,
                        const double* degrees,  // [n]
                        index_t n, int num_threads);

}  // namespace deepret::graph

// ---------------------------------------------------------------- CUDA engine
// (graph_cuda.cu; built only with DEEPRET_CUDA). Device pointers, contiguous,
// queued on `stream` (a cudaStream_t as an integer) and synchronized before
// returning (the caller needs nnz).
namespace deepret::graph::cuda {

// Same result as graph_from_knn above. indices are int64 and already checked
// to lie in [-1, n) and scores to be finite (the Python layer does it on the
// device). Writes indptr [n + 1] (int64) and the first nnz entries of
// out_indices [capacity] (int32) and out_data [capacity] (dtype); returns nnz.
// capacity must be at least n * k (mutual) or 2 * n * k (not mutual).
index_t graph_from_knn(DType dtype,
                       const void* scores,            // [n, k] on the device
                       const std::int64_t* indices,   // [n, k] on the device
                       index_t n, index_t k, const Options& options,
                       std::int64_t* indptr,          // [n + 1] on the device
                       std::int32_t* out_indices,     // [capacity] on the device
                       void* out_data,                // [capacity] on the device
                       index_t capacity, deepret::cuda::Scratch& scratch, std::uintptr_t stream);

}  // namespace deepret::graph::cuda
