// Truncated diffusion: each query is solved on the subgraph of its own top-T
// database items (large-scale diffusion; docs/spectral.md, "Truncated diffusion").
// Two ways to form the subgraph from the full graph G:
//   renormalize: G = A (affinities), the submatrix A_S is normalized again,
//                W_S = D_S^-1/2 A_S D_S^-1/2, as the MATLAB code of Iscen et al.;
//   restrict:    G = W (the normalized full graph), W_S its submatrix as is,
//                i.e. the restriction of (I - alpha W) to S, as fyang93/diffusion.
// Then (I - alpha W_S) f = y by conjugate gradient with scipy's iterates
// (x0 = 0; stop before an iteration once |r| < tol |y|; at most maxiter),
// dot products summed in double. Queries run in parallel, one thread each;
// the result does not depend on the number of threads.
#pragma once

#include <cstdint>

#include "diffusion/spmv.h"

namespace deepret::diffusion {

template <class T, class I>
void truncated_cg(const Csr<T, I>& g,         // [n, n] symmetric: A or W (see above)
                  const std::int64_t* ids,     // [nq, t] distinct rows of g per query
                  index_t nq, index_t t,
                  bool renormalize,
                  T alpha,                     // in (0, 1)
                  const T* y,                  // [nq, t] right-hand sides on the subgraphs
                  T* f,                        // [nq, t] out: the solutions
                  double tol, index_t maxiter,
                  std::int64_t* iterations,    // [nq] out
                  double* residuals,           // [nq] out: |y - (I - alpha W_S) f| / |y|
                  int num_threads);

}  // namespace deepret::diffusion
