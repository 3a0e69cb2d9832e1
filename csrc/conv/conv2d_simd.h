// The register-tiled micro-kernel of conv2d, written once with GCC vector
// extensions and compiled twice like conv_simd.h (portable 16-byte vectors in
// conv2d_cpu.cpp, AVX2+FMA 32-byte vectors in conv2d_cpu_avx2.cpp), each copy in
// its own namespace and using nothing inline from outside it.
//
// gemm_tile() computes an MR x NR tile of C = A * B over kc steps:
//     c[i * ldc + q] (+)= sum_{k < kc} a[k * MR + i] * b[k * NR + q]
// with MR output channels and NR = NV vectors of pixels: MR * NV accumulators,
// NV vector loads and MR broadcasts per step. A holds packed weights, B a packed
// tile of the implicit im2col matrix (the driver builds it per tile, never the
// whole matrix).
#ifndef DEEPRET_SIMD_NS
#error "define DEEPRET_SIMD_NS and DEEPRET_VBYTES before including conv2d_simd.h"
#endif

#include <cstdint>
#include <cstring>

namespace deepret::conv::DEEPRET_SIMD_NS {

using index_t = std::int64_t;

// Register tile: MR output channels x NV vectors of pixels, MR * NV
// accumulators. With 32 vector registers (AVX-512) 8 x 3: 24 accumulators,
// 11 loads per 24 FMAs; with 16 (AVX2, SSE) 6 x 2.
#ifndef DEEPRET_GEMM_MR
#define DEEPRET_GEMM_MR (DEEPRET_VBYTES >= 64 ? 8 : 6)
#define DEEPRET_GEMM_NV (DEEPRET_VBYTES >= 64 ? 3 : 2)
#endif
constexpr int kGemmMR = DEEPRET_GEMM_MR;
constexpr int kGemmNV = DEEPRET_GEMM_NV;

template <class T>
constexpr int gemm_nr() {
  return kGemmNV * int(DEEPRET_VBYTES / sizeof(T));
}

#include "common/simd_vec.inc"

template <class T>
using GemmVec = SimdVec<T>;  // a vector of T

// rows x cols of the tile are stored (the rest is padding); with accumulate
// the tile adds to c, else it starts from init[i] (bias) or zero.
template <class T>
void gemm_tile(index_t kc,
               const T* a,     // [kc, MR]
               const T* b,     // [kc, NR]
               T* c,           // [rows, ldc], cols used per row
               index_t ldc, int rows, int cols, bool accumulate,
               const T* init)  // [rows] or nullptr
{
  using S = GemmVec<T>;
  using V = typename S::V;
  constexpr int L = S::lanes;
  constexpr int MR = kGemmMR;
  constexpr int NV = kGemmNV;
  constexpr int NR = NV * L;
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = S::broadcast(T(0));
  for (index_t k = 0; k < kc; ++k) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = S::load(b + k * NR + v * L);
    const T* ak = a + k * MR;
    for (int i = 0; i < MR; ++i) {
      const V ai = S::broadcast(ak[i]);
      for (int v = 0; v < NV; ++v) acc[i][v] += ai * bv[v];
    }
  }
  if (rows == MR && cols == NR) {
    for (int i = 0; i < MR; ++i) {
      T* row = c + i * ldc;
      for (int v = 0; v < NV; ++v) {
        const V base = accumulate ? S::load(row + v * L) : S::broadcast(init ? init[i] : T(0));
        S::store(row + v * L, base + acc[i][v]);
      }
    }
    return;
  }
  T tile[MR * NR];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) S::store(tile + i * NR + v * L, acc[i][v]);
  for (int i = 0; i < rows; ++i) {
    T* row = c + i * ldc;
    const T base = init ? init[i] : T(0);
    for (int q = 0; q < cols; ++q) row[q] = (accumulate ? row[q] : base) + tile[i * NR + q];
  }
}

}  // namespace deepret::conv::DEEPRET_SIMD_NS
