// CUDA feature saliency and pooling: a thread per (image, channel) or
// (region, channel) for the reductions over positions, a block per row for
// the L2 normalizations; double accumulation. Bad input (a negative or
// non-finite activation, a box holding no pixel) sets *status to 1 instead
// of raising: the caller checks it.
#include <cstdint>
#include <string>

#include "common/cuda_check.h"
#include "common/errors.h"
#include "common/launch.h"
#include "pool/pool.h"

namespace deepret::pool::cuda {

using deepret::cuda::Scratch;

namespace {

constexpr int kThreads = 256;

__device__ double block_sum(double v, double* red) {
  red[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  const double out = red[0];
  __syncthreads();
  return out;
}

// Channel weights: b[i, j] = q_j, the fraction of non-zero positions (a thread per (i, j)).
template <class T>
__global__ void nonzero_fraction(const T* a, index_t rows, index_t hw, double* q, int* status) {
  const index_t r = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (r >= rows) return;
  const T* ch = a + r * hw;
  index_t nz = 0;
  for (index_t t = 0; t < hw; ++t) {
    const double v = double(ch[t]);
    if (!isfinite(v) || v < 0) *status = 1;
    nz += v != 0.0;
  }
  q[r] = hw > 0 ? double(nz) / double(hw) : 0.0;
}

// One block per image: weights, the weighted sum F, then sqrt(F / ||F||).
template <class T>
__global__ void saliency_kernel(const T* a, index_t c, index_t hw, double eps, double* q, double* f, T* out) {
  __shared__ double red[kThreads];
  const index_t img = blockIdx.x;
  double* qi = q + img * c;
  double* fi = f + img * hw;
  double part = 0.0;
  for (index_t j = threadIdx.x; j < c; j += blockDim.x) part += qi[j] + eps;
  const double qsum = block_sum(part, red);
  for (index_t j = threadIdx.x; j < c; j += blockDim.x) qi[j] = log(qsum / (qi[j] + eps));
  __syncthreads();
  double ss = 0.0;
  for (index_t t = threadIdx.x; t < hw; t += blockDim.x) {
    double v = 0.0;
    for (index_t j = 0; j < c; ++j) v += qi[j] * double(a[(img * c + j) * hw + t]);
    fi[t] = v;
    ss += v * v;
  }
  const double norm = sqrt(block_sum(ss, red));
  for (index_t t = threadIdx.x; t < hw; t += blockDim.x)
    out[img * hw + t] = T(norm > 0 ? sqrt(fi[t] / norm) : 0.0);
}

template <class T>
__global__ void global_kernel(const T* a, index_t rows, index_t hw, int kind, double p, double eps, T* out,
                              int* status) {
  const index_t r = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (r >= rows) return;
  const T* ch = a + r * hw;
  double v = kind == int(Global::Mac) ? -INFINITY : 0.0;
  // GeM as m (mean of (x/m)^p)^(1/p), m the largest clamped value (as the CPU
  // engine): no overflow of x^p for a large p.
  double m = eps;
  if (kind == int(Global::Gem))
    for (index_t t = 0; t < hw; ++t) m = fmax(m, double(ch[t]));
  for (index_t t = 0; t < hw; ++t) {
    const double x = double(ch[t]);
    if (!isfinite(x)) *status = 1;
    if (kind == int(Global::Mac)) v = fmax(v, x);
    else if (kind == int(Global::Spoc)) v += x;
    else v += pow(fmax(x, eps) / m, p);
  }
  if (kind == int(Global::Gem)) v = m * pow(v / double(hw), 1.0 / p);
  out[r] = T(v);
}

template <class T>
__global__ void regional_kernel(const T* a, index_t b, index_t c, index_t h, index_t w, const double* boxes,
                                const std::int64_t* image, index_t per_image, index_t k, T* out, int* status) {
  const index_t r = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (r >= k * c) return;
  const index_t box = r / c, j = r % c;
  // Without `image`, the k boxes are `per_image` shared boxes for each image in turn.
  const double* g = boxes + 4 * (image ? box : box % per_image);
  index_t y0, y1, x0, x1;
  pixel_range(g[0], g[2], h, &y0, &y1);
  pixel_range(g[1], g[3], w, &x0, &x1);
  const std::int64_t img = image ? image[box] : box / per_image;
  if (y0 > y1 || x0 > x1 || img < 0 || img >= b) {
    *status = 1;
    out[r] = T(0);
    return;
  }
  double m = -INFINITY;
  for (index_t y = y0; y <= y1; ++y)
    for (index_t x = x0; x <= x1; ++x) {
      const double v = double(a[((img * c + j) * h + y) * w + x]);
      if (!isfinite(v)) *status = 1;
      m = fmax(m, v);
    }
  out[r] = T(m);
}

// rows of length c: v / (||v|| + 1e-6), a block per row.
template <class T>
__global__ void normalize_rows(T* x, index_t c) {
  __shared__ double red[kThreads];
  T* row = x + blockIdx.x * c;
  double ss = 0.0;
  for (index_t j = threadIdx.x; j < c; j += blockDim.x) ss += double(row[j]) * double(row[j]);
  const double scale = 1.0 / (sqrt(block_sum(ss, red)) + kNormEps);
  for (index_t j = threadIdx.x; j < c; j += blockDim.x) row[j] = T(double(row[j]) * scale);
}

// out[i, j] = sum over r < per of x[i * per + r, j] (a thread per (i, j)).
template <class T>
__global__ void sum_groups(const T* x, index_t rows, index_t per, index_t c, T* out) {
  const index_t q = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (q >= rows * c) return;
  const index_t i = q / c, j = q % c;
  double v = 0.0;
  for (index_t r = 0; r < per; ++r) v += double(x[(i * per + r) * c + j]);
  out[q] = T(v);
}

unsigned blocks(index_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

// The kernels run a thread per item or a block per row, b rows at most
// b * c items: within gridDim.x's limit for any array that fits in memory,
// checked all the same.
void check_rows(index_t items, const char* what) {
  check(items <= launch::kMaxGridX, std::string(what) + ": on the GPU at most 2^31 - 1 rows per call");
}

void require_float(DType dtype, const char* what) {
  check_type(dtype == DType::F32 || dtype == DType::F64,
             std::string(what) + ": on the GPU the activations must be float32 or float64, got " + dtype_name(dtype));
}

template <class T>
void saliency_t(const T* a, index_t b, index_t c, index_t hw, double eps, T* out, int* status, Scratch& pool,
                cudaStream_t st) {
  double* scratch = pool.array<double>(b * (c + hw));
  nonzero_fraction<T><<<blocks(b * c), kThreads, 0, st>>>(a, b * c, hw, scratch, status);
  saliency_kernel<T><<<static_cast<unsigned>(b), kThreads, 0, st>>>(a, c, hw, eps, scratch, scratch + b * c, out);
  cuda_check(cudaGetLastError(), "feature_saliency kernels");
}

template <class T>
void rmac_t(const T* a, index_t b, index_t c, index_t h, index_t w, const double* boxes, index_t r, T* out,
            int* status, Scratch& pool, cudaStream_t st) {
  T* scratch = pool.array<T>(b * r * c);
  regional_kernel<T><<<blocks(b * r * c), kThreads, 0, st>>>(a, b, c, h, w, boxes, nullptr, r, b * r, scratch,
                                                             status);
  normalize_rows<T><<<static_cast<unsigned>(b * r), kThreads, 0, st>>>(scratch, c);
  sum_groups<T><<<blocks(b * c), kThreads, 0, st>>>(scratch, b, r, c, out);
  normalize_rows<T><<<static_cast<unsigned>(b), kThreads, 0, st>>>(out, c);
  cuda_check(cudaGetLastError(), "rmac kernels");
}

}  // namespace

void rmac(DType dtype, const void* a, index_t b, index_t c, index_t h, index_t w, const double* boxes,
          index_t r, void* out, int* status, Scratch& scratch, std::uintptr_t stream) {
  const auto st = reinterpret_cast<cudaStream_t>(stream);
  require_float(dtype, "rmac");
  if (b * r * c == 0) return;
  check_rows(b * r, "rmac");
  if (dtype == DType::F64)
    rmac_t(static_cast<const double*>(a), b, c, h, w, boxes, r, static_cast<double*>(out), status, scratch, st);
  else
    rmac_t(static_cast<const float*>(a), b, c, h, w, boxes, r, static_cast<float*>(out), status, scratch, st);
}

void feature_saliency(DType dtype, const void* a, index_t b, index_t c, index_t hw, double eps, void* out,
                      int* status, Scratch& scratch, std::uintptr_t stream) {
  const auto st = reinterpret_cast<cudaStream_t>(stream);
  require_float(dtype, "feature_saliency");
  if (b * hw == 0) return;
  check_rows(b, "feature_saliency");
  if (dtype == DType::F64)
    saliency_t(static_cast<const double*>(a), b, c, hw, eps, static_cast<double*>(out), status, scratch, st);
  else
    saliency_t(static_cast<const float*>(a), b, c, hw, eps, static_cast<float*>(out), status, scratch, st);
}

void global_pool(DType dtype, const void* a, index_t b, index_t c, index_t hw, Global kind, double p,
                 double eps, bool normalize, void* out, int* status, std::uintptr_t stream) {
  const auto st = reinterpret_cast<cudaStream_t>(stream);
  require_float(dtype, "global_pool");
  if (b * c == 0) return;
  check_rows(b * c, "global_pool");
  if (dtype == DType::F64) {
    global_kernel<double><<<blocks(b * c), kThreads, 0, st>>>(static_cast<const double*>(a), b * c, hw,
                                                              int(kind), p, eps, static_cast<double*>(out), status);
    if (normalize) normalize_rows<double><<<static_cast<unsigned>(b), kThreads, 0, st>>>(static_cast<double*>(out), c);
  } else {
    global_kernel<float><<<blocks(b * c), kThreads, 0, st>>>(static_cast<const float*>(a), b * c, hw,
                                                            int(kind), p, eps, static_cast<float*>(out), status);
    if (normalize) normalize_rows<float><<<static_cast<unsigned>(b), kThreads, 0, st>>>(static_cast<float*>(out), c);
  }
  cuda_check(cudaGetLastError(), "global_pool kernels");
}

void regional_max(DType dtype, const void* a, index_t b, index_t c, index_t h, index_t w,
                  const double* boxes, const std::int64_t* image, index_t k, bool normalize, void* out,
                  int* status, std::uintptr_t stream) {
  const auto st = reinterpret_cast<cudaStream_t>(stream);
  require_float(dtype, "regional_max");
  if (k * c == 0) return;
  check_rows(k * c, "regional_max");
  if (dtype == DType::F64) {
    regional_kernel<double><<<blocks(k * c), kThreads, 0, st>>>(static_cast<const double*>(a), b, c, h, w, boxes,
                                                               image, 1, k, static_cast<double*>(out), status);
    if (normalize) normalize_rows<double><<<static_cast<unsigned>(k), kThreads, 0, st>>>(static_cast<double*>(out), c);
  } else {
    regional_kernel<float><<<blocks(k * c), kThreads, 0, st>>>(static_cast<const float*>(a), b, c, h, w, boxes,
                                                              image, 1, k, static_cast<float*>(out), status);
    if (normalize) normalize_rows<float><<<static_cast<unsigned>(k), kThreads, 0, st>>>(static_cast<float*>(out), c);
  }
  cuda_check(cudaGetLastError(), "regional_max kernels");
}

}  // namespace deepret::pool::cuda
