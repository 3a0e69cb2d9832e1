// CUDA 1-D correlation: one thread block per tile of outputs; the signal window
// and a chunk of taps are staged in shared memory (zero-padded at the ends, so
// every mode runs the same loop), and each thread accumulates kItems outputs
// spaced kThreads apart so that a warp reads consecutive shared words.
#include <cstdint>
#include <string>

#include "common/complex.h"
#include "common/cuda_check.h"
#include "common/launch.h"
#include "conv/conv.h"

namespace deepret::conv::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kItems = 4;
constexpr int kTile = kThreads * kItems;  // outputs per block
constexpr int kTaps = 512;                // taps staged per pass

struct Bool8 {
  std::uint8_t value;
};

// acc (op)= x * y: multiply-add, with integers wrapping (they are unsigned),
// and numpy's and-or for booleans.
template <class T>
__device__ __forceinline__ T step(T acc, T x, T y) {
  return acc + x * y;
}
template <>
__device__ __forceinline__ Bool8 step(Bool8 acc, Bool8 x, Bool8 y) {
  return {static_cast<std::uint8_t>(acc.value | (x.value & y.value))};
}
template <>
__device__ __forceinline__ std::uint8_t step(std::uint8_t acc, std::uint8_t x, std::uint8_t y) {
  return static_cast<std::uint8_t>(acc + x * y);
}
template <>
__device__ __forceinline__ std::uint16_t step(std::uint16_t acc, std::uint16_t x, std::uint16_t y) {
  return static_cast<std::uint16_t>(std::uint32_t(acc) + std::uint32_t(x) * std::uint32_t(y));
}

template <class T> __device__ __forceinline__ T zero() { return T(0); }
template <> __device__ __forceinline__ Bool8 zero() { return {0}; }
template <> __device__ __forceinline__ Complex<float> zero() { return {0.f, 0.f}; }
template <> __device__ __forceinline__ Complex<double> zero() { return {0.0, 0.0}; }

template <class T> __device__ __forceinline__ T maybe_conj(T x, bool) { return x; }
template <class T> __device__ __forceinline__ Complex<T> maybe_conj(Complex<T> x, bool c) {
  return c ? conj(x) : x;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
correlate_kernel(const T* __restrict__ a, index_t n,    // [n]
                 const T* __restrict__ v, index_t m,    // [m]
                 T* __restrict__ out, index_t out_len,  // [out_len]
                 index_t left, bool conjugate_v) {
  extern __shared__ unsigned char shared_bytes[];
  T* window = reinterpret_cast<T*>(shared_bytes);  // [kTile + kTaps - 1]
  T* taps = window + kTile + kTaps - 1;            // [kTaps]

  // Tiles tile_start = blockIdx.x * kTile, then gridDim.x tiles on (grid-stride).
  for (index_t tile_start = static_cast<index_t>(blockIdx.x) * kTile; tile_start < out_len;
       tile_start += static_cast<index_t>(gridDim.x) * kTile) {
    T acc[kItems];
#pragma unroll
    for (int i = 0; i < kItems; ++i) acc[i] = zero<T>();

    for (index_t j0 = 0; j0 < m; j0 += kTaps) {
      const int chunk = static_cast<int>(m - j0 < kTaps ? m - j0 : kTaps);
      const index_t first = tile_start - left + j0;  // signal index of window[0]
      for (int w = threadIdx.x; w < kTile + chunk - 1; w += kThreads) {
        const index_t q = first + w;
        window[w] = (q >= 0 && q < n) ? a[q] : zero<T>();
      }
      for (int j = threadIdx.x; j < chunk; j += kThreads) taps[j] = maybe_conj(v[j0 + j], conjugate_v);
      __syncthreads();
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        const T* src = window + threadIdx.x + i * kThreads;
        T sum = acc[i];
        for (int j = 0; j < chunk; ++j) sum = step(sum, src[j], taps[j]);
        acc[i] = sum;
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const index_t o = tile_start + threadIdx.x + i * kThreads;
      if (o < out_len) out[o] = acc[i];
    }
  }
}

template <class T>
void launch(const void* a, index_t n, const void* v, index_t m, void* out, index_t out_len,
            index_t left, bool conjugate_v, cudaStream_t stream) {
  if (out_len <= 0) return;
  const std::size_t shared = sizeof(T) * (kTile + 2 * kTaps - 1);
  if (shared > 48 * 1024)
    cuda_check(cudaFuncSetAttribute(correlate_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(shared)),
               "correlate1d: shared memory size");
  correlate_kernel<T><<<launch::blocks_1d(out_len, kTile), kThreads, shared, stream>>>(
      static_cast<const T*>(a), n, static_cast<const T*>(v), m, static_cast<T*>(out), out_len, left,
      conjugate_v);
  cuda_check(cudaGetLastError(), "correlate1d kernel launch");
}

}  // namespace

void correlate1d(DType dtype, const void* a, index_t n, const void* v, index_t m, void* out,
                 index_t out_len, index_t left, bool conjugate_v, std::uintptr_t stream_handle) {
  check(n > 0 && m > 0, "correlate1d: both inputs must be non-empty");
  auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  switch (unsigned_twin(dtype)) {  // signed integers as their unsigned twins (same bits)
    case DType::Bool: return launch<Bool8>(a, n, v, m, out, out_len, left, false, stream);
    case DType::U8: return launch<std::uint8_t>(a, n, v, m, out, out_len, left, false, stream);
    case DType::U16: return launch<std::uint16_t>(a, n, v, m, out, out_len, left, false, stream);
    case DType::U32: return launch<std::uint32_t>(a, n, v, m, out, out_len, left, false, stream);
    case DType::U64:
      return launch<unsigned long long>(a, n, v, m, out, out_len, left, false, stream);
    case DType::F32: return launch<float>(a, n, v, m, out, out_len, left, false, stream);
    case DType::F64: return launch<double>(a, n, v, m, out, out_len, left, false, stream);
    case DType::C64: return launch<Complex<float>>(a, n, v, m, out, out_len, left, conjugate_v, stream);
    case DType::C128:
      return launch<Complex<double>>(a, n, v, m, out, out_len, left, conjugate_v, stream);
    default: break;
  }
  throw TypeError(std::string("correlate1d: unsupported dtype ") + dtype_name(dtype));
}

}  // namespace deepret::conv::cuda
