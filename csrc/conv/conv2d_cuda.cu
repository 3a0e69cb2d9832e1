// CUDA 2-D correlation and conv2d.
//
// correlate2d: each block computes a 32 x 32 tile of outputs (256 threads, 4
// rows each); the boundary-extended input window of the tile and the kernel
// are staged in shared memory (the extension rule applied while staging), so
// every mode and boundary runs the same inner loop. Kernels whose window does
// not fit in shared memory take a direct kernel reading global memory.
//
// conv2d: an implicit GEMM, C[Og, P] = A[Og, K] * B[K, P] per (image, group):
// each block computes 64 output channels x 64 pixels, staging 16-deep slices
// of the weights and of the implicit im2col matrix (gathered on the fly, with
// padding, stride and dilation) in shared memory; each thread accumulates a
// 4 x 4 register tile. Depthwise layers (one input channel per output channel)
// take a direct kernel.
#include <cstdint>
#include <string>

#include "common/complex.h"
#include "common/cuda_check.h"
#include "common/launch.h"
#include "conv/conv.h"
#include "conv/conv2d.h"

namespace deepret::conv::cuda {

namespace {

constexpr int kTileW = 32, kTileH = 32, kRowsPerThread = 4;
constexpr int kThreads2d = kTileW * (kTileH / kRowsPerThread);  // 256
constexpr std::size_t kMaxShared = 48 * 1024;

template <class T> __device__ __forceinline__ T zero() { return T(0); }
template <> __device__ __forceinline__ Complex<float> zero() { return {0.f, 0.f}; }
template <> __device__ __forceinline__ Complex<double> zero() { return {0.0, 0.0}; }

// acc + x * y; narrow unsigned integers wrap in their own width.
template <class T> __device__ __forceinline__ T madd(T acc, T x, T y) { return acc + x * y; }
template <> __device__ __forceinline__ std::uint8_t madd(std::uint8_t acc, std::uint8_t x, std::uint8_t y) {
  return static_cast<std::uint8_t>(acc + x * y);
}
template <> __device__ __forceinline__ std::uint16_t madd(std::uint16_t acc, std::uint16_t x, std::uint16_t y) {
  return static_cast<std::uint16_t>(std::uint32_t(acc) + std::uint32_t(x) * std::uint32_t(y));
}

// ext(q, x): the image value at extended index (q, x), or the fill value.
template <class T>
__device__ __forceinline__ T extended(const T* image, index_t h, index_t w, index_t q, index_t x,
                                      int boundary, T fill) {
  if (q < 0 || q >= h || x < 0 || x >= w) {
    if (boundary == static_cast<int>(Boundary::Fill)) return fill;
    if (boundary == static_cast<int>(Boundary::Wrap)) {
      q = wrap_index(q, h);
      x = wrap_index(x, w);
    } else {
      q = symm_index(q, h);
      x = symm_index(x, w);
    }
  }
  return image[q * w + x];
}

template <class T>
__global__ void __launch_bounds__(kThreads2d)
correlate2d_tiled(const T* __restrict__ image, index_t h, index_t w,   // [h, w]
                  const T* __restrict__ weights, int kh, int kw,      // [kh, kw]
                  T* __restrict__ out, index_t oh, index_t ow,        // [oh, ow]
                  index_t top, index_t left, int boundary, T fill) {
  extern __shared__ unsigned char shared_bytes[];
  const int win_w = kTileW + kw - 1, win_h = kTileH + kh - 1;
  T* window = reinterpret_cast<T*>(shared_bytes);  // [win_h, win_w]
  T* taps = window + win_h * win_w;                // [kh, kw]
  const int tid = threadIdx.y * kTileW + threadIdx.x;
  // Tile (blockIdx.x, blockIdx.y), then the tiles a grid's stride on: the
  // grid is capped (launch.h), the image is not.
  for (index_t m0 = static_cast<index_t>(blockIdx.y) * kTileH; m0 < oh; m0 += index_t(gridDim.y) * kTileH)
  for (index_t n0 = static_cast<index_t>(blockIdx.x) * kTileW; n0 < ow; n0 += index_t(gridDim.x) * kTileW) {
    for (int i = tid; i < win_h * win_w; i += kThreads2d) {
      const int r = i / win_w, c = i % win_w;
      window[i] = extended(image, h, w, m0 - top + r, n0 - left + c, boundary, fill);
    }
    for (int i = tid; i < kh * kw; i += kThreads2d) taps[i] = weights[i];
    __syncthreads();
    T acc[kRowsPerThread];
#pragma unroll
    for (int r = 0; r < kRowsPerThread; ++r) acc[r] = zero<T>();
    const int col = threadIdx.x, row0 = threadIdx.y * kRowsPerThread;
    for (int j = 0; j < kh; ++j)
      for (int k = 0; k < kw; ++k) {
        const T tap = taps[j * kw + k];
#pragma unroll
        for (int r = 0; r < kRowsPerThread; ++r)
          acc[r] = madd(acc[r], window[(row0 + r + j) * win_w + col + k], tap);
      }
#pragma unroll
    for (int r = 0; r < kRowsPerThread; ++r) {
      const index_t m = m0 + row0 + r, n = n0 + col;
      if (m < oh && n < ow) out[m * ow + n] = acc[r];
    }
    __syncthreads();  // the next tile overwrites the window
  }
}

template <class T>
__global__ void correlate2d_direct(const T* __restrict__ image, index_t h, index_t w,
                                   const T* __restrict__ weights, index_t kh, index_t kw,
                                   T* __restrict__ out, index_t oh, index_t ow, index_t top,
                                   index_t left, int boundary, T fill) {
  for (index_t o = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < oh * ow;
       o += index_t(gridDim.x) * blockDim.x) {
    const index_t m = o / ow, n = o % ow;
    T acc = zero<T>();
    for (index_t j = 0; j < kh; ++j)
      for (index_t k = 0; k < kw; ++k)
        acc = madd(acc, extended(image, h, w, m - top + j, n - left + k, boundary, fill),
                   weights[j * kw + k]);
    out[o] = acc;
  }
}

template <class T>
void launch_correlate2d(const void* image, index_t h, index_t w, const void* weights, index_t kh,
                        index_t kw, void* out, index_t oh, index_t ow, index_t top, index_t left,
                        int boundary, const void* fill_ptr, cudaStream_t stream) {
  if (oh <= 0 || ow <= 0) return;
  const T fill = *static_cast<const T*>(fill_ptr);
  const auto* pi = static_cast<const T*>(image);
  const auto* pw = static_cast<const T*>(weights);
  auto* po = static_cast<T*>(out);
  const std::size_t shared = sizeof(T) * ((kTileH + kh - 1) * (kTileW + kw - 1) + kh * kw);
  if (shared <= kMaxShared) {
    const launch::Grid3 g = launch::tiles(launch::ceil_div(ow, kTileW), launch::ceil_div(oh, kTileH), 1);
    const dim3 grid(g.x, g.y);
    const dim3 block(kTileW, kTileH / kRowsPerThread);
    correlate2d_tiled<T><<<grid, block, shared, stream>>>(pi, h, w, pw, static_cast<int>(kh),
                                                          static_cast<int>(kw), po, oh, ow, top,
                                                          left, boundary, fill);
  } else {
    correlate2d_direct<T><<<launch::blocks_1d(oh * ow, 256), 256, 0, stream>>>(
        pi, h, w, pw, kh, kw, po, oh, ow, top, left, boundary, fill);
  }
  cuda_check(cudaGetLastError(), "correlate2d kernel launch");
}

// ------------------------------------------------------------------ conv2d
constexpr int kBM = 64, kBN = 64, kBK = 16;

template <class T>
__global__ void __launch_bounds__(256)
conv2d_gemm_kernel(const T* __restrict__ input,   // [n, c, h, w]
                   const T* __restrict__ weight,  // [o, c / groups, kh, kw]
                   const T* __restrict__ bias,    // [o] or null
                   T* __restrict__ out,           // [n, o, oh, ow]
                   Conv2dShape s) {
  __shared__ T as[kBK][kBM];
  __shared__ T bs[kBK][kBN];
  const index_t cg = s.c / s.groups, og = s.o / s.groups;
  const index_t K = cg * s.kh * s.kw, P = s.oh * s.ow, khw = s.kh * s.kw;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16, tid = threadIdx.x;
  // (image, group) pairs in z, output-channel tiles in y, pixel tiles in x,
  // each looped with the grid's stride: batch x groups is not bounded by
  // gridDim.z's 65535, nor the tiles by gridDim.y's.
  for (index_t z = blockIdx.z; z < s.n * s.groups; z += gridDim.z)
  for (index_t o0 = static_cast<index_t>(blockIdx.y) * kBM; o0 < og; o0 += index_t(gridDim.y) * kBM)
  for (index_t p0 = static_cast<index_t>(blockIdx.x) * kBN; p0 < P; p0 += index_t(gridDim.x) * kBN) {
    const index_t b = z / s.groups, g = z % s.groups;
    const T* planes = input + (b * s.c + g * cg) * s.h * s.w;
    T acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = T(0);
    for (index_t k0 = 0; k0 < K; k0 += kBK) {
      for (int e = tid; e < kBK * kBM; e += 256) {  // weights: k fastest for coalescing
        const int kk = e % kBK, oo = e / kBK;
        const index_t o = o0 + oo, k = k0 + kk;
        as[kk][oo] = (o < og && k < K) ? weight[(g * og + o) * K + k] : T(0);
      }
      for (int e = tid; e < kBK * kBN; e += 256) {  // im2col: pixels fastest
        const int pp = e % kBN, kk = e / kBN;
        const index_t p = p0 + pp, k = k0 + kk;
        T value = T(0);
        if (p < P && k < K) {
          const index_t c = k / khw, j = (k / s.kw) % s.kh, jk = k % s.kw;
          const index_t iy = (p / s.ow) * s.sh - s.ph + j * s.dh;
          const index_t ix = (p % s.ow) * s.sw - s.pw + jk * s.dw;
          if (iy >= 0 && iy < s.h && ix >= 0 && ix < s.w) value = planes[(c * s.h + iy) * s.w + ix];
        }
        bs[kk][pp] = value;
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kBK; ++kk) {
        T a[4], bv[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) a[i] = as[kk][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; ++j) bv[j] = bs[kk][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const index_t o = o0 + ty + 16 * i;
      if (o >= og) continue;
      const T base = bias ? bias[g * og + o] : T(0);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const index_t p = p0 + tx + 16 * j;
        if (p < P) out[(b * s.o + g * og + o) * P + p] = base + acc[i][j];
      }
    }
  }
}

// One input channel per output channel: one thread per output.
template <class T>
__global__ void conv2d_depthwise_kernel(const T* __restrict__ input, const T* __restrict__ weight,
                                        const T* __restrict__ bias, T* __restrict__ out,
                                        Conv2dShape s) {
  const index_t P = s.oh * s.ow, total = s.n * s.o * P;
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += index_t(gridDim.x) * blockDim.x) {
    const index_t p = i % P, o = (i / P) % s.o, b = i / (P * s.o);
    const index_t og = s.o / s.groups;
    const T* x = input + (b * s.c + o / og) * s.h * s.w;
    const T* w = weight + o * s.kh * s.kw;
    const index_t y0 = (p / s.ow) * s.sh - s.ph, x0 = (p % s.ow) * s.sw - s.pw;
    T acc = bias ? bias[o] : T(0);
    for (index_t j = 0; j < s.kh; ++j) {
      const index_t iy = y0 + j * s.dh;
      if (iy < 0 || iy >= s.h) continue;
      for (index_t k = 0; k < s.kw; ++k) {
        const index_t ix = x0 + k * s.dw;
        if (ix >= 0 && ix < s.w) acc += x[iy * s.w + ix] * w[j * s.kw + k];
      }
    }
    out[i] = acc;
  }
}

template <class T>
__global__ void fill_bias_kernel(const T* __restrict__ bias, T* __restrict__ out, index_t total,
                                 index_t plane, index_t channels) {
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += index_t(gridDim.x) * blockDim.x)
    out[i] = bias ? bias[(i / plane) % channels] : T(0);
}

template <class T>
void launch_conv2d(const void* input, const void* weight, const void* bias, void* out,
                   const Conv2dShape& s, cudaStream_t stream) {
  const index_t P = s.oh * s.ow, total = s.n * s.o * P;
  if (total == 0) return;
  const auto* x = static_cast<const T*>(input);
  const auto* w = static_cast<const T*>(weight);
  const auto* b = static_cast<const T*>(bias);
  auto* y = static_cast<T*>(out);
  const index_t cg = s.c / s.groups, og = s.o / s.groups;
  const unsigned blocks = launch::blocks_1d(total, 256);
  if (cg * s.kh * s.kw == 0) {
    fill_bias_kernel<T><<<blocks, 256, 0, stream>>>(b, y, total, P, s.o);
  } else if (cg == 1) {
    conv2d_depthwise_kernel<T><<<blocks, 256, 0, stream>>>(x, w, b, y, s);
  } else {
    const launch::Grid3 g = launch::tiles(launch::ceil_div(P, kBN), launch::ceil_div(og, kBM), s.n * s.groups);
    const dim3 grid(g.x, g.y, g.z);
    conv2d_gemm_kernel<T><<<grid, 256, 0, stream>>>(x, w, b, y, s);
  }
  cuda_check(cudaGetLastError(), "conv2d kernel launch");
}

}  // namespace

void correlate2d(DType dtype, const void* image, index_t h, index_t w, const void* weights, index_t kh,
                 index_t kw, void* out, index_t oh, index_t ow, index_t top, index_t left,
                 int boundary, const void* fill, std::uintptr_t stream_handle) {
  check(h >= 0 && w >= 0 && kh >= 0 && kw >= 0 && oh >= 0 && ow >= 0,
        "correlate2d: shapes must be non-negative");
  check(boundary >= 0 && boundary <= 2, "correlate2d: boundary must be 0, 1 or 2");
  check(boundary == 0 || (h > 0 && w > 0) || oh * ow == 0 || kh * kw == 0,
        "correlate2d: boundary 'wrap' and 'symm' need a non-empty image");
  auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  switch (unsigned_twin(dtype)) {  // signed integers as their unsigned twins (same bits)
    case DType::U8: return launch_correlate2d<std::uint8_t>(image, h, w, weights, kh, kw, out, oh, ow, top, left, boundary, fill, stream);
    case DType::U16: return launch_correlate2d<std::uint16_t>(image, h, w, weights, kh, kw, out, oh, ow, top, left, boundary, fill, stream);
    case DType::U32: return launch_correlate2d<std::uint32_t>(image, h, w, weights, kh, kw, out, oh, ow, top, left, boundary, fill, stream);
    case DType::U64: return launch_correlate2d<unsigned long long>(image, h, w, weights, kh, kw, out, oh, ow, top, left, boundary, fill, stream);
    case DType::F32: return launch_correlate2d<float>(image, h, w, weights, kh, kw, out, oh, ow, top, left, boundary, fill, stream);
    case DType::F64: return launch_correlate2d<double>(image, h, w, weights, kh, kw, out, oh, ow, top, left, boundary, fill, stream);
    case DType::C64: return launch_correlate2d<Complex<float>>(image, h, w, weights, kh, kw, out, oh, ow, top, left, boundary, fill, stream);
    case DType::C128: return launch_correlate2d<Complex<double>>(image, h, w, weights, kh, kw, out, oh, ow, top, left, boundary, fill, stream);
    default: break;
  }
  throw TypeError(std::string("correlate2d: unsupported dtype ") + dtype_name(dtype));
}

void conv2d(DType dtype, const void* input, const void* weight, const void* bias, void* out,
            const Conv2dShape& s, std::uintptr_t stream_handle) {
  check(s.n >= 0 && s.c >= 0 && s.h >= 0 && s.w >= 0 && s.o >= 0 && s.kh >= 0 && s.kw >= 0 &&
            s.oh >= 0 && s.ow >= 0,
        "conv2d: shapes must be non-negative");
  check(s.sh >= 1 && s.sw >= 1 && s.dh >= 1 && s.dw >= 1 && s.ph >= 0 && s.pw >= 0,
        "conv2d: stride and dilation must be positive, padding non-negative");
  check(s.groups >= 1 && s.c % s.groups == 0 && s.o % s.groups == 0,
        "conv2d: groups must divide the input and output channels");
  auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  if (dtype == DType::F32) return launch_conv2d<float>(input, weight, bias, out, s, stream);
  if (dtype == DType::F64) return launch_conv2d<double>(input, weight, bias, out, s, stream);
  throw TypeError(std::string("conv2d: unsupported dtype ") + dtype_name(dtype) + " (float32 or float64)");
}

}  // namespace deepret::conv::cuda
