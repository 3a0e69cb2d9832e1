// The register-tiled kernel of 2-D correlation, written once with GCC vector
// extensions and compiled twice, like conv_simd.h: in corr2d_cpu.cpp as the
// portable path (16-byte vectors) and in corr2d_cpu_avx2.cpp with -mavx2 -mfma
// (32-byte vectors), each copy in its own namespace (DEEPRET_SIMD_NS) and
// using nothing inline from outside it.
//
// tile2d() computes, for i < rows and c < cols,
//     out[i * os + c] = sum_{p < P} sum_{j < kh} sum_{k < kw} in[p][(i + j) * is + c + k] * w[p][j * kw + k]
// where every input element it reads exists (the driver pads the edges).
// cols must be at least one vector: the last partial vector of a row is
// computed as a full vector that overlaps the previous one, and the last
// partial block of rows overlaps the previous block. Every output runs the
// same operations in the same order (taps by row, then by column: scipy's
// order) wherever it falls, so overlapping stores write identical values.
#ifndef DEEPRET_SIMD_NS
#error "define DEEPRET_SIMD_NS and DEEPRET_VBYTES before including corr2d_simd.h"
#endif

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace deepret::conv::DEEPRET_SIMD_NS {

using index_t = std::int64_t;

#include "common/simd_vec.inc"

template <class T>
using Vec2 = SimdVec<T>;  // a vector of T, or T for long double


// R output rows x NV vectors of accumulators: each input vector loaded is
// used by up to R rows (one weight broadcast each), so loads per FMA stay
// well under one, and R * NV + NV + 1 registers fit the 16 of AVX2/SSE.
template <class T>
constexpr int tile_rows() {
  return std::is_integral_v<T> ? 2 : 3;
}
template <class T>
constexpr int tile_vectors() {
  return std::is_integral_v<T> ? 2 : 3;
}

// One block of R rows x NV vectors at (in + 0, out + 0). KH, KW > 0 fix the
// kernel size at compile time (the loops unroll and the row tests fold away).
template <class T, int P, int R, int NV, int KH, int KW>
inline void block2d(const T* const* in, index_t is, const T* const* w, index_t kh_arg,
                    index_t kw_arg, T* out, index_t os) {
  const index_t kh = KH > 0 ? KH : kh_arg, kw = KW > 0 ? KW : kw_arg;
  using S = Vec2<T>;
  using V = typename S::V;
  constexpr int L = S::lanes;
  V acc[R][NV];
  for (int i = 0; i < R; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = S::broadcast(T(0));
  const index_t in_rows = R + kh - 1;
  for (index_t r = 0; r < in_rows; ++r) {
    // Output rows i read this input row with kernel row j = r - i.
    for (int p = 0; p < P; ++p) {
      const T* row = in[p] + r * is;
      const T* wp = w[p];
      for (index_t k = 0; k < kw; ++k) {
        V x[NV];
        for (int v = 0; v < NV; ++v) x[v] = S::load(row + k + v * L);
        for (int i = 0; i < R; ++i) {
          const index_t j = r - i;
          if (j >= 0 && j < kh) {
            const V tap = S::broadcast(wp[j * kw + k]);
            for (int v = 0; v < NV; ++v) acc[i][v] += x[v] * tap;
          }
        }
      }
    }
  }
  for (int i = 0; i < R; ++i)
    for (int v = 0; v < NV; ++v) S::store(out + i * os + v * L, acc[i][v]);
}

// All columns of R rows: NV-vector blocks, then single vectors, then one
// overlapping vector for the tail.
template <class T, int P, int R, int KH, int KW>
inline void rows2d(const T* const* in, index_t is, const T* const* w, index_t kh, index_t kw, T* out,
                   index_t os, index_t cols) {
  constexpr int L = Vec2<T>::lanes;
  constexpr int NV = tile_vectors<T>();
  const T* ip[P];
  index_t c = 0;
  for (; c + NV * L <= cols; c += NV * L) {
    for (int p = 0; p < P; ++p) ip[p] = in[p] + c;
    block2d<T, P, R, NV, KH, KW>(ip, is, w, kh, kw, out + c, os);
  }
  for (; c + L <= cols; c += L) {
    for (int p = 0; p < P; ++p) ip[p] = in[p] + c;
    block2d<T, P, R, 1, KH, KW>(ip, is, w, kh, kw, out + c, os);
  }
  if (c < cols) {
    c = cols - L;
    for (int p = 0; p < P; ++p) ip[p] = in[p] + c;
    block2d<T, P, R, 1, KH, KW>(ip, is, w, kh, kw, out + c, os);
  }
}

template <class T, int P, int KH, int KW>
void tile2d_sized(const T* const* in, index_t is, const T* const* w, index_t kh, index_t kw, T* out,
                  index_t os, index_t rows, index_t cols) {
  constexpr int R = tile_rows<T>();
  // Column chunks keep the R + kh - 1 input rows of a block in L1/L2.
  constexpr index_t kChunk = 1024;
  const T* ip[P];
  for (index_t c0 = 0; c0 < cols; c0 += kChunk) {
    index_t width = cols - c0 < kChunk ? cols - c0 : kChunk;
    index_t start = c0;
    if (width < Vec2<T>::lanes) {  // a short last chunk: overlap the previous one
      start = cols - Vec2<T>::lanes;
      width = Vec2<T>::lanes;
    }
    index_t i = 0;
    for (; i + R <= rows; i += R) {
      for (int p = 0; p < P; ++p) ip[p] = in[p] + i * is + start;
      rows2d<T, P, R, KH, KW>(ip, is, w, kh, kw, out + i * os + start, os, width);
    }
    if (i < rows && rows >= R) {
      i = rows - R;
      for (int p = 0; p < P; ++p) ip[p] = in[p] + i * is + start;
      rows2d<T, P, R, KH, KW>(ip, is, w, kh, kw, out + i * os + start, os, width);
    } else {
      for (; i < rows; ++i) {
        for (int p = 0; p < P; ++p) ip[p] = in[p] + i * is + start;
        rows2d<T, P, 1, KH, KW>(ip, is, w, kh, kw, out + i * os + start, os, width);
      }
    }
  }
}

template <class T, int P>
void tile2d(const T* const* in,  // P pointers to [rows + kh - 1, is], cols + kw - 1 used per row
            index_t is,
            const T* const* w,   // P pointers to [kh, kw]
            index_t kh, index_t kw,
            T* out,              // [rows, os], cols used per row
            index_t os, index_t rows, index_t cols) {
  if constexpr (P == 1 && std::is_floating_point_v<T> && sizeof(T) <= 8) {
    if (kh == 3 && kw == 3) return tile2d_sized<T, P, 3, 3>(in, is, w, kh, kw, out, os, rows, cols);
    if (kh == 5 && kw == 5) return tile2d_sized<T, P, 5, 5>(in, is, w, kh, kw, out, os, rows, cols);
    if (kh == 7 && kw == 7) return tile2d_sized<T, P, 7, 7>(in, is, w, kh, kw, out, os, rows, cols);
  }
  tile2d_sized<T, P, 0, 0>(in, is, w, kh, kw, out, os, rows, cols);
}

}  // namespace deepret::conv::DEEPRET_SIMD_NS
