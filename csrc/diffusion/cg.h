// Batched conjugate gradient for diffusion: solve (I - alpha W) F = Y for all
// m columns of Y at once (one sparse x dense product per iteration), each
// column stopping on its own relative residual, with the same iterates as
// scipy.sparse.linalg.cg (x0 = 0, no preconditioner): a column stops before
// an iteration once |r| < tol * |y|, and after maxiter iterations at most.
// The algorithm and the stopping rule, for users: docs/algorithms/cg.md.
#pragma once

#include <cstdint>

#include "common/device.h"
#include "common/dtype.h"
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
                double* residuals,         // [m] out: true |y - (I - alpha W) f| / |y| (0 where y = 0)
                int num_threads,
                const I* order = nullptr);  // [n] or nullptr

// Reverse Cuthill-McKee order of W's pattern (assumed symmetric), each
// connected component from its lowest-degree node (order_cpu.cpp): graph
// neighbours end up close together. With max_front > 0 it gives up (returns
// false, order unfinished) as soon as more than max_front nodes wait in the
// breadth-first queue: the order would then spread neighbours at least that
// far apart (a graph without locality, e.g. an expander, gets there within a
// few levels).
template <class I>
bool reverse_cuthill_mckee(index_t n, const I* indptr, const I* indices,  // W's [n + 1], [nnz]
                           I* order,                                      // [n] out
                           index_t max_front = 0);

// The fraction of W's nonzeros (i, j) (sampled on every 8th row) whose rows
// lie fewer than `window` rows apart in `order`.
template <class I>
double near_fraction(index_t n, const I* indptr, const I* indices,  // W's [n + 1], [nnz]
                     const I* order, index_t window);               // [n]

}  // namespace deepret::diffusion

// ---------------------------------------------------------------- CUDA engine
// (cg_cuda.cu; built only with DEEPRET_CUDA). Device pointers, row-major y and
// f; the value dtype (F32/F64) and the index dtype (I32/I64) are passed at run
// time. The same recurrence and stopping rule as batched_cg above, with
// deterministic per-column sums; scratch (3 n m values and O(m) scalars) from
// `scratch`; queued on `stream`, synchronizing once per iteration to stop
// early.
namespace deepret::diffusion::cuda {

void batched_cg(DType value, DType index, index_t n,
                const void* indptr,   // [n + 1]
                const void* indices,  // [nnz]
                const void* data,     // [nnz]
                double alpha,
                const void* y, index_t m,   // [n, m]
                void* f,                    // [n, m] out
                double tol, index_t maxiter,
                std::int64_t* iterations,   // [m] out, on the device
                double* residuals,          // [m] out, on the device (true residuals, as above)
                deepret::cuda::Scratch& scratch, std::uintptr_t stream);

}  // namespace deepret::diffusion::cuda
