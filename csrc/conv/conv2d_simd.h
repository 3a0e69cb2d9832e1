// The register-tiled micro-kernel of conv2d, written once with GCC vector
// extensions and compiled twice like conv_simd.h (portable 16-byte vectors in
// conv2d_cpu.cpp, AVX2+FMA 32-byte vectors in conv2d_cpu_avx2.cpp), each copy in
// its own namespace and using nothing inline from outside it.
//
// gemm_tile() computes an MR x NR tile of C = A * B over kc steps:
//     c[i * ldc + q] (+)= sum_{k < kc} a[k * MR + i] * b[k * NR + q]
// with MR = 6 output channels (12 with AVX-512) and NR = 2 vectors of pixels:
// 2 * MR accumulators, 2 vector loads and MR broadcasts per step. A holds packed weights, B a packed
// tile of the implicit im2col matrix (the driver builds it per tile, never the
// whole matrix).
#ifndef DEEPRET_SIMD_NS
#error "define DEEPRET_SIMD_NS and DEEPRET_VBYTES before including conv2d_simd.h"
#endif

#include <cstdint>
#include <cstring>

namespace deepret::conv::DEEPRET_SIMD_NS {

using index_t = std::int64_t;

// 12 output channels with 32 vector registers (AVX-512), 6 with 16.
constexpr int kGemmMR = DEEPRET_VBYTES >= 64 ? 12 : 6;

template <class T>
constexpr int gemm_nr() {
  return 2 * int(DEEPRET_VBYTES / sizeof(T));
}

template <class T>
struct GemmVec {
  typedef T V __attribute__((vector_size(DEEPRET_VBYTES)));
  static constexpr int lanes = DEEPRET_VBYTES / sizeof(T);
  static V load(const T* p) {
    V x;
    std::memcpy(&x, p, sizeof(V));
    return x;
  }
  static void store(T* p, V x) { std::memcpy(p, &x, sizeof(V)); }
  static V broadcast(T s) { return s - V{}; }  // s - 0 folds to a plain broadcast (s + 0 would not: -0)
};

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
  constexpr int NR = 2 * L;
  V acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = S::broadcast(T(0));
  for (index_t k = 0; k < kc; ++k) {
    const V b0 = S::load(b + k * NR);
    const V b1 = S::load(b + k * NR + L);
    const T* ak = a + k * MR;
    for (int i = 0; i < MR; ++i) {
      const V ai = S::broadcast(ak[i]);
      acc[i][0] += ai * b0;
      acc[i][1] += ai * b1;
    }
  }
  if (rows == MR && cols == NR) {
    for (int i = 0; i < MR; ++i) {
      T* row = c + i * ldc;
      V base0, base1;
      if (accumulate) {
        base0 = S::load(row);
        base1 = S::load(row + L);
      } else {
        base0 = base1 = S::broadcast(init ? init[i] : T(0));
      }
      S::store(row, base0 + acc[i][0]);
      S::store(row + L, base1 + acc[i][1]);
    }
    return;
  }
  T tile[MR * NR];
  for (int i = 0; i < MR; ++i) {
    S::store(tile + i * NR, acc[i][0]);
    S::store(tile + i * NR + L, acc[i][1]);
  }
  for (int i = 0; i < rows; ++i) {
    T* row = c + i * ldc;
    const T base = init ? init[i] : T(0);
    for (int q = 0; q < cols; ++q) row[q] = (accumulate ? row[q] : base) + tile[i * NR + q];
  }
}

}  // namespace deepret::conv::DEEPRET_SIMD_NS
