// Batched conjugate gradient for diffusion: solve (I - alpha W) F = Y for all
// m columns of Y at once (one sparse x dense product per iteration), each
// column stopping on its own relative residual, with the same iterates as
// scipy.sparse.linalg.cg (x0 = 0, no preconditioner): a column stops before
// an iteration once |r| < tol * |y|, and after maxiter iterations at most.
#pragma once

#include <cstdint>

#include "diffusion/spmv.h"

namespace deepret::diffusion {

// With `order` (a permutation of the rows, e.g. reverse Cuthill-McKee), the
// system is solved on the graph relabelled so that row i is old row
// order[i]: the same solution, but the rows of P gathered by the product lie
// close together in memory when the graph has locality.
template <class T, class I>
void batched_cg(const Csr<T, I>& w,     // symmetric [n, n]
                T alpha,                // in (0, 1)
                const T* y, index_t m,  // [n, m] row-major right-hand sides
                T* f,                   // [n, m] out: the solutions
                double tol, index_t maxiter,
                std::int64_t* iterations,  // [m] out: iterations done per column
                double* residuals,         // [m] out: final |r| / |y| (0 where y = 0)
                int num_threads,
                const I* order = nullptr);  // [n] or nullptr

}  // namespace deepret::diffusion
