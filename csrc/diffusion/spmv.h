// Sparse (CSR) times dense products for diffusion: Y = W X with X and Y
// row-major (n x m), so that one pass over W serves every column and the
// inner loop over columns is contiguous.
#pragma once

#include <cstdint>

#include "common/array_view.h"

namespace deepret::diffusion {

// A CSR matrix as scipy stores it: indptr [rows + 1], indices and data [nnz];
// I is int32 or int64 (scipy uses one type for both index arrays).
template <class T, class I>
struct Csr {
  index_t rows = 0, cols = 0;
  const I* indptr = nullptr;   // [rows + 1]
  const I* indices = nullptr;  // [nnz]
  const T* data = nullptr;     // [nnz]
};

// Y = beta * X_self - scale * W X over rows [row_begin, row_end) of Y, where
// X_self is X itself (so that Y = X - alpha W X needs one pass) when beta != 0.
// X: [W.cols, m], Y: [W.rows, m], row-major, contiguous.
template <class T, class I>
inline void spmm_rows(const Csr<T, I>& w, const T* x, index_t m, T beta, T scale, T* y,
                      index_t row_begin, index_t row_end) {
  // Rows of X are gathered in the graph's (random) order: ask for the row
  // kPrefetch entries ahead so that several cache misses are in flight.
  constexpr I kPrefetch = 8;
  const I last = w.indptr[w.rows];
  if (m == 1) {  // one column: a plain sparse matrix-vector product
    for (index_t i = row_begin; i < row_end; ++i) {
      T sum = T(0);
      for (I e = w.indptr[i]; e < w.indptr[i + 1]; ++e) sum += w.data[e] * x[w.indices[e]];
      y[i] = (beta != T(0) ? beta * x[i] : T(0)) - scale * sum;
    }
    return;
  }
  for (index_t i = row_begin; i < row_end; ++i) {
    T* out = y + i * m;
    const T* self = x + i * m;
    for (index_t c = 0; c < m; ++c) out[c] = beta != T(0) ? beta * self[c] : T(0);
    for (I e = w.indptr[i]; e < w.indptr[i + 1]; ++e) {
      if (e + kPrefetch < last) {
        const T* ahead = x + static_cast<index_t>(w.indices[e + kPrefetch]) * m;
        for (index_t c = 0; c < m; c += 64 / index_t(sizeof(T))) __builtin_prefetch(ahead + c);
      }
      const T weight = -scale * w.data[e];
      const T* row = x + static_cast<index_t>(w.indices[e]) * m;
      for (index_t c = 0; c < m; ++c) out[c] += weight * row[c];
    }
  }
}

// Y = W X (all rows, multithreaded).
template <class T, class I>
void spmm(const Csr<T, I>& w, const T* x, index_t m, T* y, int num_threads);

}  // namespace deepret::diffusion
