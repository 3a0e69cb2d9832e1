// CUDA object saliency, weighted pooling and CroW weights: a block per map
// (threads over its pixels) for the maps, a thread per (image, channel) for
// the pooled sums, a block per row for normalizations; double accumulation,
// the same formulas as objects_cpu.cpp. Bad input sets *status to 1.
#include <cstdint>
#include <string>

#include "common/cuda_check.h"
#include "common/errors.h"
#include "common/launch.h"
#include "objects/objects.h"

namespace deepret::objects::cuda {

namespace {

constexpr int kThreads = 256;
constexpr double kNormEps = 1e-6;

unsigned blocks(index_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

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

// A block per map; each thread owns pixels t and loops over the channels
// (reads coalesced across the threads), then over the map's regions.
template <class T>
__global__ void os_kernel(const T* a, const T* fs, index_t c, index_t h, index_t w, const float* desc,
                          const double* boxes, const double* weight, const std::int64_t* offsets, bool box_cover,
                          T* out, int* status) {
  const index_t m = blockIdx.x, hw = h * w;
  const T* img = a + m * c * hw;
  const index_t r0 = offsets[m], r1 = offsets[m + 1];
  for (index_t t = threadIdx.x; t < hw; t += blockDim.x) {
    const index_t y = t / w, x = t % w;
    double sq = 0.0;
    for (index_t j = 0; j < c; ++j) {
      const double v = double(img[j * hw + t]);
      if (!isfinite(v) || v < 0) *status = 1;
      sq += v * v;
    }
    double acc = 0.0;
    if (sq > 0) {
      const double inv = 1.0 / sqrt(sq);
      for (index_t r = r0; r < r1; ++r) {
        if (box_cover) {
          const double* bx = boxes + 4 * r;
          const index_t y0 = max(index_t(0), index_t(ceil(bx[0]))), y1 = min(h - 1, index_t(floor(bx[2])));
          const index_t x0 = max(index_t(0), index_t(ceil(bx[1]))), x1 = min(w - 1, index_t(floor(bx[3])));
          if (y < y0 || y > y1 || x < x0 || x > x1) continue;
        }
        const float* v = desc + r * c;
        double dot = 0.0;
        for (index_t j = 0; j < c; ++j) dot += double(v[j]) * double(img[j * hw + t]);
        acc += weight[r] * fmax(0.0, dot * inv);
      }
    }
    const double f = double(fs[m * hw + t]);
    if (!isfinite(f) || f < 0) *status = 1;
    out[m * hw + t] = T(f * acc);
  }
}

// out[i, j] = cw[i, j] * sum_t s[i, t] a[i, j, t] (a thread per (i, j)).
template <class T>
__global__ void weighted_kernel(const T* a, const T* s, const T* cw, index_t b, index_t c, index_t hw, T* out,
                                int* status) {
  const index_t q = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (q >= b * c) return;
  const index_t i = q / c;
  const T* ch = a + q * hw;
  const T* si = s + i * hw;
  double v = 0.0;
  for (index_t t = 0; t < hw; ++t) {
    const double x = double(ch[t]), wt = double(si[t]);
    if (!isfinite(x) || !isfinite(wt)) *status = 1;
    v += wt * x;
  }
  if (cw) {
    const double f = double(cw[q]);
    if (!isfinite(f)) *status = 1;
    v *= f;
  }
  out[q] = T(v);
}

template <class T>
__global__ void normalize_rows(T* x, index_t c) {
  __shared__ double red[kThreads];
  T* row = x + blockIdx.x * c;
  double ss = 0.0;
  for (index_t j = threadIdx.x; j < c; j += blockDim.x) ss += double(row[j]) * double(row[j]);
  const double scale = 1.0 / (sqrt(block_sum(ss, red)) + kNormEps);
  for (index_t j = threadIdx.x; j < c; j += blockDim.x) row[j] = T(double(row[j]) * scale);
}

// A block per image: summed activations per pixel, their normalization, the
// non-zero fraction per channel and the log weights.
template <class T>
__global__ void crow_kernel(const T* a, index_t c, index_t hw, double eps, T* spatial, T* channel, int* status) {
  __shared__ double red[kThreads];
  const index_t m = blockIdx.x;
  const T* img = a + m * c * hw;
  double ss = 0.0;
  for (index_t t = threadIdx.x; t < hw; t += blockDim.x) {
    double sum = 0.0;
    for (index_t j = 0; j < c; ++j) {
      const double v = double(img[j * hw + t]);
      if (!isfinite(v) || v < 0) *status = 1;
      sum += v;
    }
    spatial[m * hw + t] = T(sum);
    ss += sum * sum;
  }
  const double norm = sqrt(block_sum(ss, red));
  for (index_t t = threadIdx.x; t < hw; t += blockDim.x) {
    const double sum = double(spatial[m * hw + t]);
    spatial[m * hw + t] = T(norm > 0 ? sqrt(sum / norm) : 0.0);
  }
  double part = 0.0;
  for (index_t j = threadIdx.x; j < c; j += blockDim.x) {
    index_t nz = 0;
    for (index_t t = 0; t < hw; ++t) nz += img[j * hw + t] != T(0);
    const double q = hw > 0 ? double(nz) / double(hw) : 0.0;
    channel[m * c + j] = T(q);
    part += q + eps;
  }
  const double qsum = block_sum(part, red);
  for (index_t j = threadIdx.x; j < c; j += blockDim.x)
    channel[m * c + j] = T(log(qsum / (double(channel[m * c + j]) + eps)));
}

// float32 or float64; the kernels run a block per map or a thread per
// (image, channel): within gridDim.x's limit for any array that fits in
// memory, checked all the same.
void checked(DType dtype, index_t grid_items, const char* what) {
  check_type(dtype == DType::F32 || dtype == DType::F64,
             std::string(what) + ": on the GPU the activations must be float32 or float64, got " + dtype_name(dtype));
  check(grid_items <= launch::kMaxGridX, std::string(what) + ": on the GPU at most 2^31 - 1 rows per call");
}

}  // namespace

void object_saliency(DType dtype, const void* a, const void* fs, index_t b, index_t c, index_t h, index_t w,
                     const float* desc, const double* boxes, const double* weight, const std::int64_t* offsets,
                     bool box_cover, void* out, int* status, std::uintptr_t stream) {
  const auto st = reinterpret_cast<cudaStream_t>(stream);
  checked(dtype, b, "object_saliency");
  if (b * h * w == 0) return;
  if (dtype == DType::F64)
    os_kernel<double><<<static_cast<unsigned>(b), kThreads, 0, st>>>(
        static_cast<const double*>(a), static_cast<const double*>(fs), c, h, w, desc, boxes, weight, offsets,
        box_cover, static_cast<double*>(out), status);
  else
    os_kernel<float><<<static_cast<unsigned>(b), kThreads, 0, st>>>(
        static_cast<const float*>(a), static_cast<const float*>(fs), c, h, w, desc, boxes, weight, offsets,
        box_cover, static_cast<float*>(out), status);
  cuda_check(cudaGetLastError(), "object_saliency kernel");
}

void weighted_pool(DType dtype, const void* a, const void* s, const void* cw, index_t b, index_t c, index_t hw,
                   bool normalize, void* out, int* status, std::uintptr_t stream) {
  const auto st = reinterpret_cast<cudaStream_t>(stream);
  checked(dtype, b * c, "weighted_pool");
  if (b * c == 0) return;
  if (dtype == DType::F64) {
    weighted_kernel<double><<<blocks(b * c), kThreads, 0, st>>>(
        static_cast<const double*>(a), static_cast<const double*>(s), static_cast<const double*>(cw), b, c, hw,
        static_cast<double*>(out), status);
    if (normalize) normalize_rows<double><<<static_cast<unsigned>(b), kThreads, 0, st>>>(static_cast<double*>(out), c);
  } else {
    weighted_kernel<float><<<blocks(b * c), kThreads, 0, st>>>(
        static_cast<const float*>(a), static_cast<const float*>(s), static_cast<const float*>(cw), b, c, hw,
        static_cast<float*>(out), status);
    if (normalize) normalize_rows<float><<<static_cast<unsigned>(b), kThreads, 0, st>>>(static_cast<float*>(out), c);
  }
  cuda_check(cudaGetLastError(), "weighted_pool kernels");
}

void crow_weights(DType dtype, const void* a, index_t b, index_t c, index_t hw, double eps, void* spatial,
                  void* channel, int* status, std::uintptr_t stream) {
  const auto st = reinterpret_cast<cudaStream_t>(stream);
  checked(dtype, b, "crow_weights");
  if (b == 0) return;
  if (dtype == DType::F64)
    crow_kernel<double><<<static_cast<unsigned>(b), kThreads, 0, st>>>(
        static_cast<const double*>(a), c, hw, eps, static_cast<double*>(spatial), static_cast<double*>(channel),
        status);
  else
    crow_kernel<float><<<static_cast<unsigned>(b), kThreads, 0, st>>>(
        static_cast<const float*>(a), c, hw, eps, static_cast<float*>(spatial), static_cast<float*>(channel),
        status);
  cuda_check(cudaGetLastError(), "crow_weights kernel");
}

}  // namespace deepret::objects::cuda
