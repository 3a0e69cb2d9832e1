// Sparse (CSR) times dense products for diffusion: Y = W X with X and Y
// row-major (n x m).
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

// Y = W X (all rows, multithreaded), in blocks of one cache line of columns
// (16 float32, 8 float64; cg_simd.h's block_product), each block of X first
// copied into a contiguous panel: the lines gathered for one block (6.4 MB
// at n = 10^5) stay in the last-level cache where whole rows of 64 columns
// (25.6 MB) would not, and are prefetched in software where they miss it
// anyway (cg_cpu.cpp's kGatherAhead). Leftover columns one by one.
template <class T, class I>
void spmm(const Csr<T, I>& w, const T* x, index_t m, T* y, int num_threads);

}  // namespace deepret::diffusion
