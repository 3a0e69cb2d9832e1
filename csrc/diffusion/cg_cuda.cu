// CUDA batched CG for diffusion: the same algorithm as cg_cpu.cpp. Row-major
// (n x m) vectors; one thread per (row, column) in every kernel, so a warp
// reads consecutive columns of a row. Per-column scalars (rho, <p, q>, the
// step sizes) stay on the device; the host reads one flag per iteration to
// stop once every column has converged.
#include <cstdint>

#include "common/cuda_check.h"
#include "common/errors.h"
#include "diffusion/cg.h"

namespace deepret::diffusion::cuda {

namespace {

constexpr int kColumnsPerBlock = 32;
constexpr int kRowsPerBlock = 8;

struct Grid {
  dim3 blocks, threads;
};

Grid grid_for(index_t n, index_t m) {
  const int columns = m < kColumnsPerBlock ? static_cast<int>(m) : kColumnsPerBlock;
  const int rows = kColumnsPerBlock * kRowsPerBlock / columns;
  return {dim3(static_cast<unsigned>((m + columns - 1) / columns),
               static_cast<unsigned>((n + rows - 1) / rows)),
          dim3(columns, rows)};
}

// Per-column state: rho = |r|^2, pq = <p, q>, target = tol * |y|, and flags.
struct State {
  double* rho;
  double* pq;
  double* rho_new;
  double* norm_y;
  double* beta;
  double* step;
  int* active;
  int* any_active;
  std::int64_t* iterations;
  double* residuals;
};

// f = 0, r = y, rho += r^2 (per column).
template <class T>
__global__ void init_kernel(const T* y, T* f, T* r, index_t n, index_t m, double* rho) {
  const index_t c = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const index_t i = static_cast<index_t>(blockIdx.y) * blockDim.y + threadIdx.y;
  if (c >= m || i >= n) return;
  const T value = y[i * m + c];
  f[i * m + c] = T(0);
  r[i * m + c] = value;
  atomicAdd(&rho[c], double(value) * double(value));
}

__global__ void start_kernel(State s, index_t m, double tol) {
  const index_t c = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= m) return;
  s.norm_y[c] = sqrt(s.rho[c]);
  s.active[c] = s.rho[c] > 0.0;
  s.iterations[c] = 0;
  s.beta[c] = 0.0;
  (void)tol;
}

// Before an iteration: stop columns with |r| < tol |y| (scipy's rule).
__global__ void check_kernel(State s, index_t m, double tol) {
  const index_t c = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= m) return;
  if (s.active[c] && sqrt(s.rho[c]) < tol * s.norm_y[c]) s.active[c] = 0;
  if (!s.active[c]) s.beta[c] = 0.0;
  if (s.active[c]) atomicOr(s.any_active, 1);
  s.pq[c] = 0.0;
  s.rho_new[c] = 0.0;
}

// p = r + beta p (p = r on the first iteration).
template <class T>
__global__ void direction_kernel(const T* r, T* p, index_t n, index_t m, const double* beta,
                                 bool first) {
  const index_t c = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const index_t i = static_cast<index_t>(blockIdx.y) * blockDim.y + threadIdx.y;
  if (c >= m || i >= n) return;
  p[i * m + c] = first ? r[i * m + c] : r[i * m + c] + T(beta[c]) * p[i * m + c];
}

// q = p - alpha W p and <p, q> per column.
template <class T, class I>
__global__ void product_kernel(const I* indptr, const I* indices, const T* data, T alpha,
                               const T* p, T* q, index_t n, index_t m, double* pq) {
  const index_t c = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const index_t i = static_cast<index_t>(blockIdx.y) * blockDim.y + threadIdx.y;
  if (c >= m || i >= n) return;
  T sum = T(0);
  for (I e = indptr[i]; e < indptr[i + 1]; ++e) sum += data[e] * p[static_cast<index_t>(indices[e]) * m + c];
  const T value = p[i * m + c] - alpha * sum;
  q[i * m + c] = value;
  atomicAdd(&pq[c], double(p[i * m + c]) * double(value));
}

__global__ void step_kernel(State s, index_t m) {
  const index_t c = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= m) return;
  s.step[c] = s.active[c] && s.pq[c] != 0.0 ? s.rho[c] / s.pq[c] : 0.0;
}

// f += a p, r -= a q, and the new |r|^2.
template <class T>
__global__ void update_kernel(T* f, T* r, const T* p, const T* q, index_t n, index_t m,
                              const double* step, double* rho_new) {
  const index_t c = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const index_t i = static_cast<index_t>(blockIdx.y) * blockDim.y + threadIdx.y;
  if (c >= m || i >= n) return;
  const T a = T(step[c]);
  f[i * m + c] += a * p[i * m + c];
  const T value = r[i * m + c] - a * q[i * m + c];
  r[i * m + c] = value;
  atomicAdd(&rho_new[c], double(value) * double(value));
}

__global__ void advance_kernel(State s, index_t m) {
  const index_t c = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= m || !s.active[c]) return;
  s.beta[c] = s.rho_new[c] / s.rho[c];
  s.rho[c] = s.rho_new[c];
  s.iterations[c] += 1;
}

// |y - (I - alpha W) f|^2 per column, the product summed in double: the
// true residual of f.
template <class T, class I>
__global__ void residual_kernel(const I* indptr, const I* indices, const T* data, double alpha,
                                const T* y, const T* f, index_t n, index_t m, double* rho) {
  const index_t c = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const index_t i = static_cast<index_t>(blockIdx.y) * blockDim.y + threadIdx.y;
  if (c >= m || i >= n) return;
  double sum = 0.0;
  for (I e = indptr[i]; e < indptr[i + 1]; ++e)
    sum += double(data[e]) * double(f[static_cast<index_t>(indices[e]) * m + c]);
  const double e = double(y[i * m + c]) - (double(f[i * m + c]) - alpha * sum);
  atomicAdd(&rho[c], e * e);
}

// The reported residual is the true one (rho_new after residual_kernel), not
// the recursive |r| that decided stopping.
__global__ void finish_kernel(State s, index_t m) {
  const index_t c = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= m) return;
  s.residuals[c] = s.norm_y[c] > 0.0 ? sqrt(s.rho_new[c]) / s.norm_y[c] : 0.0;
}

template <class T>
struct Device {
  T* ptr = nullptr;
  explicit Device(index_t count) {
    cuda_check(cudaMalloc(&ptr, sizeof(T) * (count > 0 ? count : 1)), "diffuse: cudaMalloc");
  }
  ~Device() { cudaFree(ptr); }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
};

template <class T, class I>
void run(index_t n, const I* indptr, const I* indices, const T* data, T alpha, const T* y, index_t m,
         T* f, double tol, index_t maxiter, std::int64_t* iterations, double* residuals,
         cudaStream_t stream) {
  Device<T> r(n * m), p(n * m), q(n * m);
  Device<double> scalars(6 * m);
  Device<int> flags(m + 1);
  State s{scalars.ptr,          scalars.ptr + m,     scalars.ptr + 2 * m, scalars.ptr + 3 * m,
          scalars.ptr + 4 * m,  scalars.ptr + 5 * m, flags.ptr,           flags.ptr + m,
          iterations,           residuals};
  const Grid g = grid_for(n, m);
  const unsigned column_blocks = static_cast<unsigned>((m + 255) / 256);
  cuda_check(cudaMemsetAsync(s.rho, 0, sizeof(double) * m, stream), "diffuse: memset");
  init_kernel<T><<<g.blocks, g.threads, 0, stream>>>(y, f, r.ptr, n, m, s.rho);
  start_kernel<<<column_blocks, 256, 0, stream>>>(s, m, tol);
  for (index_t it = 0; it < maxiter; ++it) {
    cuda_check(cudaMemsetAsync(s.any_active, 0, sizeof(int), stream), "diffuse: memset");
    check_kernel<<<column_blocks, 256, 0, stream>>>(s, m, tol);
    int any = 0;
    cuda_check(cudaMemcpyAsync(&any, s.any_active, sizeof(int), cudaMemcpyDeviceToHost, stream),
               "diffuse: flag copy");
    cuda_check(cudaStreamSynchronize(stream), "diffuse: synchronize");
    if (!any) break;
    direction_kernel<T><<<g.blocks, g.threads, 0, stream>>>(r.ptr, p.ptr, n, m, s.beta, it == 0);
    product_kernel<T, I><<<g.blocks, g.threads, 0, stream>>>(indptr, indices, data, alpha, p.ptr,
                                                             q.ptr, n, m, s.pq);
    step_kernel<<<column_blocks, 256, 0, stream>>>(s, m);
    update_kernel<T><<<g.blocks, g.threads, 0, stream>>>(f, r.ptr, p.ptr, q.ptr, n, m, s.step,
                                                         s.rho_new);
    advance_kernel<<<column_blocks, 256, 0, stream>>>(s, m);
    cuda_check(cudaGetLastError(), "diffuse: kernel launch");
  }
  cuda_check(cudaMemsetAsync(s.rho_new, 0, sizeof(double) * m, stream), "diffuse: memset");
  residual_kernel<T, I><<<g.blocks, g.threads, 0, stream>>>(indptr, indices, data, double(alpha),
                                                            y, f, n, m, s.rho_new);
  finish_kernel<<<column_blocks, 256, 0, stream>>>(s, m);
  cuda_check(cudaGetLastError(), "diffuse: kernel launch");
  cuda_check(cudaStreamSynchronize(stream), "diffuse: synchronize");  // before freeing scratch
}

}  // namespace

void batched_cg(Value value, Index index, index_t n, const void* indptr, const void* indices,
                const void* data, double alpha, const void* y, index_t m, void* f, double tol,
                index_t maxiter, std::int64_t* iterations, double* residuals,
                std::uintptr_t stream_handle) {
  check(alpha > 0.0 && alpha < 1.0, "diffuse: alpha must be in (0, 1)");
  if (n == 0 || m == 0) return;
  auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
#define DEEPRET_RUN(T, I)                                                                        \
  return run<T, I>(n, static_cast<const I*>(indptr), static_cast<const I*>(indices),            \
                   static_cast<const T*>(data), T(alpha), static_cast<const T*>(y), m,          \
                   static_cast<T*>(f), tol, maxiter, iterations, residuals, stream)
  if (value == Value::F32) {
    if (index == Index::I32) DEEPRET_RUN(float, std::int32_t);
    DEEPRET_RUN(float, std::int64_t);
  }
  if (index == Index::I32) DEEPRET_RUN(double, std::int32_t);
  DEEPRET_RUN(double, std::int64_t);
#undef DEEPRET_RUN
}

}  // namespace deepret::diffusion::cuda
