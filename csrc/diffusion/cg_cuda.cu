// CUDA batched CG for diffusion: the recurrence and stopping rule of
// cg_cpu.cpp. Per iteration, one product pass q = d - alpha W d that also
// sums <d, q>, <r, q> and <q, q>, which give the step a = rho / <d, q> and
// the predicted |r - a q|^2 = rho - 2a<r, q> + a^2<q, q>, hence beta, before
// r is updated; then one update pass f += a d, r -= a q, p = r + beta d
// that sums the new |r|^2 from the stored r (which decides stopping).
//
// Row-major (n x m) vectors. A block is columns x rows threads (a warp reads
// consecutive columns of a row) and owns a fixed set of rows
// (launch::cg_geometry). Every per-column sum is deterministic: each thread
// adds its rows in order, the block adds its threads in a fixed tree, and a
// per-column kernel adds the blocks' partials in block order. No atomics.
// Per-column scalars stay on the device; the host reads one flag per
// iteration to stop once every column has converged.
#include <cstdint>
#include <string>

#include "common/cuda_check.h"
#include "common/errors.h"
#include "common/launch.h"
#include "diffusion/cg.h"

namespace deepret::diffusion::cuda {

namespace {

using deepret::cuda::Scratch;
using launch::CgGeometry;

constexpr int kColumnThreads = 256;  // the per-column kernels

// Per-column state.
struct State {
  double* rho;      // [m] |r|^2 that decides stopping and the next step
  double* target;   // [m] tol * |y|
  double* norm_y;   // [m]
  double* step;     // [m] a (0 for stopped columns)
  double* turn;     // [m] beta (0 for stopped columns)
  int* active;      // [m]
  int* any_active;  // [1]
  std::int64_t* iterations;  // [m] the caller's
  double* residuals;         // [m] the caller's
};

// Sums v over the block's rows (threadIdx.y) for each column (threadIdx.x)
// in a fixed tree; thread (x, 0) gets its column's sum. shared: [rows][columns].
__device__ double sum_rows(double v, double* shared) {
  const int columns = blockDim.x, rows = blockDim.y, x = threadIdx.x, y = threadIdx.y;
  shared[y * columns + x] = v;
  __syncthreads();
  int span = 1;
  while (span < rows) span <<= 1;
  for (int s = span >> 1; s > 0; s >>= 1) {
    if (y < s && y + s < rows) shared[y * columns + x] += shared[(y + s) * columns + x];
    __syncthreads();
  }
  const double out = shared[x];
  __syncthreads();
  return out;
}

// The rows a block visits: chunk blockIdx.x, then gridDim.x chunks on.
#define DEEPRET_FOR_ROWS(i, n)                                                          \
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.y + threadIdx.y; i < (n); \
       i += static_cast<index_t>(gridDim.x) * blockDim.y)
// The column tiles a block visits (grid-stride in y); c may be >= m, whose
// thread then adds nothing but still joins the block's barriers.
#define DEEPRET_FOR_TILES(c, m)                                                   \
  for (index_t tile = blockIdx.y; tile * blockDim.x < (m); tile += gridDim.y)     \
    if (const index_t c = tile * blockDim.x + threadIdx.x; true)

// r = y, f = 0; partial[block, c] = sum of y^2 over the block's rows.
template <class T>
__global__ void init_kernel(const T* y, T* f, T* r, index_t n, index_t m, double* partial) {
  extern __shared__ double shared[];
  DEEPRET_FOR_TILES(c, m) {
    double sum = 0.0;
    if (c < m) {
      DEEPRET_FOR_ROWS(i, n) {
        const T value = y[i * m + c];
        f[i * m + c] = T(0);
        r[i * m + c] = value;
        sum += double(value) * double(value);
      }
    }
    sum = sum_rows(sum, shared);
    if (threadIdx.y == 0 && c < m) partial[blockIdx.x * m + c] = sum;
  }
}

// q = d - alpha W d (d = p, or r on the first iteration); partials of
// <d, q>, <r, q>, <q, q> at partial[(k * blocks + block) * m + c], k = 0, 1, 2.
template <class T, class I>
__global__ void product_kernel(const I* indptr, const I* indices, const T* data, T alpha,
                               const T* d, const T* r, T* q, index_t n, index_t m,
                               const int* active, double* partial) {
  extern __shared__ double shared[];
  const index_t blocks = gridDim.x;
  DEEPRET_FOR_TILES(c, m) {
    double dq = 0.0, rq = 0.0, qq = 0.0;
    if (c < m && active[c]) {  // a stopped column's q is never read again
      DEEPRET_FOR_ROWS(i, n) {
        T sum = T(0);
        for (I e = indptr[i]; e < indptr[i + 1]; ++e)
          sum += data[e] * d[static_cast<index_t>(indices[e]) * m + c];
        const T self = d[i * m + c];
        const T value = self - alpha * sum;
        q[i * m + c] = value;
        dq += double(self) * double(value);
        rq += double(r[i * m + c]) * double(value);
        qq += double(value) * double(value);
      }
    }
    dq = sum_rows(dq, shared);
    rq = sum_rows(rq, shared);
    qq = sum_rows(qq, shared);
    if (threadIdx.y == 0 && c < m) {
      partial[(0 * blocks + blockIdx.x) * m + c] = dq;
      partial[(1 * blocks + blockIdx.x) * m + c] = rq;
      partial[(2 * blocks + blockIdx.x) * m + c] = qq;
    }
  }
}

// f += a d, r -= a q, p = r + beta d (d read before r is written: on the
// first iteration d is r); partial[block, c] = the new |r|^2 over its rows.
template <class T>
__global__ void update_kernel(T* f, T* r, const T* d, T* p, const T* q, index_t n, index_t m,
                              const double* step, const double* turn, const int* active,
                              double* partial) {
  extern __shared__ double shared[];
  DEEPRET_FOR_TILES(c, m) {
    double sum = 0.0;
    if (c < m && active[c]) {
      const T a = T(step[c]), beta = T(turn[c]);
      DEEPRET_FOR_ROWS(i, n) {
        const T direction = d[i * m + c];
        f[i * m + c] += a * direction;
        const T residual = r[i * m + c] - a * q[i * m + c];
        r[i * m + c] = residual;
        p[i * m + c] = residual + beta * direction;
        sum += double(residual) * double(residual);
      }
    }
    sum = sum_rows(sum, shared);
    if (threadIdx.y == 0 && c < m) partial[blockIdx.x * m + c] = sum;
  }
}

// |y - (I - alpha W) f|^2 per column, the product summed in double: the
// true residual of f, as the CPU engine reports it.
template <class T, class I>
__global__ void residual_kernel(const I* indptr, const I* indices, const T* data, double alpha,
                                const T* y, const T* f, index_t n, index_t m, double* partial) {
  extern __shared__ double shared[];
  DEEPRET_FOR_TILES(c, m) {
    double sum = 0.0;
    if (c < m) {
      DEEPRET_FOR_ROWS(i, n) {
        double wf = 0.0;
        for (I e = indptr[i]; e < indptr[i + 1]; ++e)
          wf += double(data[e]) * double(f[static_cast<index_t>(indices[e]) * m + c]);
        const double e = double(y[i * m + c]) - (double(f[i * m + c]) - alpha * wf);
        sum += e * e;
      }
    }
    sum = sum_rows(sum, shared);
    if (threadIdx.y == 0 && c < m) partial[blockIdx.x * m + c] = sum;
  }
}

// The partials of quantity k for column c, added in block order.
__device__ double sum_blocks(const double* partial, index_t blocks, index_t m, int k, index_t c) {
  double sum = 0.0;
  for (index_t b = 0; b < blocks; ++b) sum += partial[(k * blocks + b) * m + c];
  return sum;
}

// The per-column kernels: a thread per column, grid-stride (check_kernel
// runs as one block, for its block-wide "any column left" vote).
#define DEEPRET_FOR_COLUMNS(c, m)                                                             \
  for (index_t c = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < (m); \
       c += static_cast<index_t>(gridDim.x) * blockDim.x)

__global__ void start_kernel(State s, const double* partial, index_t blocks, index_t m, double tol) {
  DEEPRET_FOR_COLUMNS(c, m) {
    const double rho = sum_blocks(partial, blocks, m, 0, c);
    s.rho[c] = rho;
    s.norm_y[c] = sqrt(rho);
    s.target[c] = tol * s.norm_y[c];  // scipy: stop once |r| < tol * |y|
    s.active[c] = rho > 0.0;          // y = 0: the solution is 0, no iteration
    s.iterations[c] = 0;
  }
}

// Before an iteration: stop the columns with |r| < tol |y|; any_active says
// whether one is left.
__global__ void check_kernel(State s, index_t m) {
  int any = 0;
  DEEPRET_FOR_COLUMNS(c, m) {
    if (s.active[c] && sqrt(s.rho[c]) < s.target[c]) s.active[c] = 0;
    any |= s.active[c];
  }
  any = __syncthreads_or(any);
  if (threadIdx.x == 0) *s.any_active = any;
}

// a = rho / <d, q>, beta = |r - a q|^2 / rho (predicted); 0 for stopped columns.
__global__ void step_kernel(State s, const double* partial, index_t blocks, index_t m) {
  DEEPRET_FOR_COLUMNS(c, m) {
    s.step[c] = s.turn[c] = 0.0;
    if (!s.active[c]) continue;
    const double dq = sum_blocks(partial, blocks, m, 0, c);
    const double rq = sum_blocks(partial, blocks, m, 1, c);
    const double qq = sum_blocks(partial, blocks, m, 2, c);
    const double rho = s.rho[c];
    const double a = dq != 0.0 ? rho / dq : 0.0;
    s.step[c] = a;
    s.turn[c] = fmax(0.0, rho - 2.0 * a * rq + a * a * qq) / rho;
  }
}

__global__ void advance_kernel(State s, const double* partial, index_t blocks, index_t m) {
  DEEPRET_FOR_COLUMNS(c, m) {
    if (!s.active[c]) continue;
    s.rho[c] = sum_blocks(partial, blocks, m, 0, c);
    s.iterations[c] += 1;
  }
}

__global__ void finish_kernel(State s, const double* partial, index_t blocks, index_t m) {
  DEEPRET_FOR_COLUMNS(c, m) {
    const double rho = sum_blocks(partial, blocks, m, 0, c);
    s.residuals[c] = s.norm_y[c] > 0.0 ? sqrt(rho) / s.norm_y[c] : 0.0;
  }
}

template <class T, class I>
void run(index_t n, const I* indptr, const I* indices, const T* data, T alpha, const T* y,
         index_t m, T* f, double tol, index_t maxiter, std::int64_t* iterations,
         double* residuals, Scratch& scratch, cudaStream_t stream) {
  const CgGeometry g = launch::cg_geometry(n, m);
  const dim3 grid(g.grid.x, g.grid.y), threads(g.columns, g.rows);
  const std::size_t shared = sizeof(double) * g.columns * g.rows;
  const index_t blocks = g.grid.x;
  const unsigned column_blocks = launch::blocks_1d(m, kColumnThreads);
  T* const r = scratch.array<T>(n * m);
  T* const p = scratch.array<T>(n * m);
  T* const q = scratch.array<T>(n * m);
  double* const partial = scratch.array<double>(3 * blocks * m);
  double* const scalars = scratch.array<double>(5 * m);
  int* const flags = scratch.array<int>(m + 1);
  const State s{scalars,         scalars + m, scalars + 2 * m, scalars + 3 * m, scalars + 4 * m,
                flags,           flags + m,   iterations,      residuals};
  init_kernel<T><<<grid, threads, shared, stream>>>(y, f, r, n, m, partial);
  start_kernel<<<column_blocks, kColumnThreads, 0, stream>>>(s, partial, blocks, m, tol);
  cuda_check(cudaGetLastError(), "diffuse: kernel launch");
  for (index_t it = 0; it < maxiter; ++it) {
    check_kernel<<<1, kColumnThreads, 0, stream>>>(s, m);
    int any = 0;
    cuda_check(cudaMemcpyAsync(&any, s.any_active, sizeof(int), cudaMemcpyDeviceToHost, stream),
               "diffuse: flag copy");
    cuda_check(cudaStreamSynchronize(stream), "diffuse: synchronize");
    if (!any) break;
    const T* const d = it == 0 ? r : p;
    product_kernel<T, I><<<grid, threads, shared, stream>>>(indptr, indices, data, alpha, d, r, q,
                                                            n, m, s.active, partial);
    step_kernel<<<column_blocks, kColumnThreads, 0, stream>>>(s, partial, blocks, m);
    update_kernel<T><<<grid, threads, shared, stream>>>(f, r, d, p, q, n, m, s.step, s.turn,
                                                        s.active, partial);
    advance_kernel<<<column_blocks, kColumnThreads, 0, stream>>>(s, partial, blocks, m);
    cuda_check(cudaGetLastError(), "diffuse: kernel launch");
  }
  residual_kernel<T, I><<<grid, threads, shared, stream>>>(indptr, indices, data, double(alpha),
                                                           y, f, n, m, partial);
  finish_kernel<<<column_blocks, kColumnThreads, 0, stream>>>(s, partial, blocks, m);
  cuda_check(cudaGetLastError(), "diffuse: kernel launch");
}

}  // namespace

void batched_cg(DType value, DType index, index_t n, const void* indptr, const void* indices,
                const void* data, double alpha, const void* y, index_t m, void* f, double tol,
                index_t maxiter, std::int64_t* iterations, double* residuals, Scratch& scratch,
                std::uintptr_t stream_handle) {
  check(alpha > 0.0 && alpha < 1.0, "diffuse: alpha must be in (0, 1)");
  check_type(value == DType::F32 || value == DType::F64,
             std::string("diffuse: on the GPU W must be float32 or float64, got ") + dtype_name(value));
  check_type(index == DType::I32 || index == DType::I64,
             std::string("diffuse: W's indices must be int32 or int64, got ") + dtype_name(index));
  if (n == 0 || m == 0) return;
  auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
#define DEEPRET_RUN(T, I)                                                                        \
  return run<T, I>(n, static_cast<const I*>(indptr), static_cast<const I*>(indices),            \
                   static_cast<const T*>(data), T(alpha), static_cast<const T*>(y), m,          \
                   static_cast<T*>(f), tol, maxiter, iterations, residuals, scratch, stream)
  if (value == DType::F32) {
    if (index == DType::I32) DEEPRET_RUN(float, std::int32_t);
    DEEPRET_RUN(float, std::int64_t);
  }
  if (index == DType::I32) DEEPRET_RUN(double, std::int32_t);
  DEEPRET_RUN(double, std::int64_t);
#undef DEEPRET_RUN
}

}  // namespace deepret::diffusion::cuda
