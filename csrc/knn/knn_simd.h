// The similarity micro-kernel of kNN search, written once with GCC vector
// extensions and compiled three times, like conv2d_simd.h: in knn_cpu.cpp as the
// portable path (16-byte vectors), in knn_cpu_avx2.cpp with -mavx2 -mfma
// (32-byte vectors) and in knn_cpu_avx512.cpp with -mavx512f (64-byte
// vectors), each in its own namespace and using nothing inline from outside it.
//
// score_block() computes, for a block of queries and a range of database
// panels, scores[r][c] = <q_r, x_c> (+ bias[c]) into a row-major buffer: the
// queries are packed into MR-row micro-panels, and each (MR x kPanel) tile of
// scores accumulates in registers over the whole dimension, with every loaded
// database vector feeding MR fused multiply-adds.
#ifndef DEEPRET_SIMD_NS
#error "define DEEPRET_SIMD_NS and DEEPRET_VBYTES before including knn_simd.h"
#endif

#include <cstdint>
#include <cstring>

namespace deepret::knn::DEEPRET_SIMD_NS {

using index_t = std::int64_t;

#include "common/simd_vec.inc"

template <class T>
using Vec = SimdVec<T>;  // a vector of T

// Database panels per register tile: two on AVX-512, whose 32 registers hold
// a 12 x 2-panel tile (24 accumulators), one elsewhere (16 registers).
constexpr int kTilePanels = DEEPRET_VBYTES == 64 ? 2 : 1;

// Rows per micro-panel: 12 accumulators in 16 vector registers on 16- and
// 32-byte vectors (6 rows x 2 vectors on AVX2, 3 rows x 4 vectors on 16
// bytes), 24 in 32 registers on AVX-512 (12 rows x 2 panels of 1 vector).
template <class T, int NR>
constexpr int micro_rows() {
  return (DEEPRET_VBYTES == 64 ? 24 : 12) / (kTilePanels * (NR / Vec<T>::lanes));
}

// Block rows must be a multiple of every path's micro_rows (12, 6 and 3).
constexpr index_t kBlockRows = 96;

// Pack rows [0, rows) of q (row stride d) into micro-panels of MR rows,
// dimension-major: packed[(p * d + j) * MR + r] = q[p * MR + r][j]; rows past
// `rows` are zero.
template <class T, int MR>
void pack_queries(const T* q, index_t rows, index_t d, T* packed) {
  const index_t panels = (rows + MR - 1) / MR;
  for (index_t p = 0; p < panels; ++p) {
    T* dst = packed + p * d * MR;
    for (int r = 0; r < MR; ++r) {
      const index_t row = p * MR + r;
      if (row < rows) {
        const T* src = q + row * d;
        for (index_t j = 0; j < d; ++j) dst[j * MR + r] = src[j];
      } else {
        for (index_t j = 0; j < d; ++j) dst[j * MR + r] = T(0);
      }
    }
  }
}

// One MR x (P * NR) tile over P consecutive database panels:
// c[r][p * NR + col] = sum_j a[j][r] * b[p][j][col] (+ bias[p * NR + col]).
template <class T, int MR, int NR, int P>
inline void tile(const T* a,     // [d, MR] packed queries
                 const T* b,     // [P, d, NR] packed database panels
                 index_t d,
                 const T* bias,  // [P * NR] or nullptr
                 T* c, index_t ldc) {
  using S = Vec<T>;
  using V = typename S::V;
  constexpr int L = S::lanes;
  constexpr int NV = P * NR / L;  // accumulators per row
  constexpr int PV = NR / L;      // vectors per panel row
  V acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = S::broadcast(T(0));
  for (index_t j = 0; j < d; ++j) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = S::load(b + (v / PV) * d * NR + j * NR + (v % PV) * L);
    for (int r = 0; r < MR; ++r) {
      const V ar = S::broadcast(a[j * MR + r]);
      for (int v = 0; v < NV; ++v) acc[r][v] += ar * bv[v];
    }
  }
  if (bias) {
    V bb[NV];
    for (int v = 0; v < NV; ++v) bb[v] = S::load(bias + v * L);
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] += bb[v];
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) S::store(c + r * ldc + v * L, acc[r][v]);
}

// scores[r][c] for queries q[0 .. rows) (rows <= kBlockRows) against the
// database panels [panel_begin, panel_end); ldc = (panel_end - panel_begin) * NR.
// `packed` is scratch of kBlockRows * d elements; pack=false reuses the
// queries packed by the previous call (same queries, next panels).
template <class T, int NR>
void score_block(const T* q, index_t rows, index_t d,  // q: [rows, d]
                 const T* panels,                      // [panels, d, NR], from panel_begin
                 index_t panel_count,
                 const T* bias,                        // [panel_count * NR] or nullptr
                 T* scores,                            // [round_up(rows, MR), panel_count * NR]
                 T* packed, bool pack) {
  constexpr int MR = micro_rows<T, NR>();
  static_assert(kBlockRows % MR == 0, "block rows must hold whole micro-panels");
  if (pack) pack_queries<T, MR>(q, rows, d, packed);
  const index_t ldc = panel_count * NR;
  const index_t micro_panels = (rows + MR - 1) / MR;
  // Database panels outer: they stay in L1 while the packed queries (L2)
  // stream. An odd last panel takes the one-panel tile.
  constexpr int P = kTilePanels;
  for (index_t p = 0; p < panel_count; p += P) {
    const T* b = panels + p * d * NR;
    const T* bias_p = bias ? bias + p * NR : nullptr;
    if (p + P <= panel_count) {
      for (index_t m = 0; m < micro_panels; ++m)
        tile<T, MR, NR, P>(packed + m * d * MR, b, d, bias_p, scores + m * MR * ldc + p * NR, ldc);
    } else {
      for (index_t m = 0; m < micro_panels; ++m)
        tile<T, MR, NR, 1>(packed + m * d * MR, b, d, bias_p, scores + m * MR * ldc + p * NR, ldc);
    }
  }
}

}  // namespace deepret::knn::DEEPRET_SIMD_NS

namespace deepret::knn::DEEPRET_SIMD_NS {

// The columns c < count whose score row[c] + column_bias[c] + row_bias is at
// least threshold[c] (or the scalar `threshold` when thresholds is null),
// written to out in increasing order; returns how many. Heap updates are
// rare once the heaps fill, so this vector test skips whole vectors of
// scores that cannot enter; the caller re-checks each candidate exactly.
template <class T>
index_t candidates(const T* row, const T* column_bias, T row_bias, const T* thresholds,
                   T threshold, index_t count, std::int32_t* out) {
  using S = SimdVec<T>;
  using V = typename S::V;
  constexpr int L = S::lanes;
  index_t found = 0;
  index_t c = 0;
  const V bias = S::broadcast(row_bias), limit = S::broadcast(threshold);
  auto hits = [&](index_t at) {
    V value = S::load(row + at) + bias;
    if (column_bias) value += S::load(column_bias + at);
    return value >= (thresholds ? S::load(thresholds + at) : limit);
  };
  using M = decltype(hits(0));
  // Any lane set? OR the mask's 64-bit words (cheaper than lane extracts).
  auto any = [](const M& hit) {
    std::uint64_t words[sizeof(M) / 8], bits = 0;
    std::memcpy(words, &hit, sizeof(M));
    for (std::size_t w = 0; w < sizeof(M) / 8; ++w) bits |= words[w];
    return bits != 0;
  };
  auto emit = [&](const M& hit, index_t at) {
    for (int l = 0; l < L; ++l)
      if (hit[l]) out[found++] = static_cast<std::int32_t>(at + l);
  };
  // Four vectors per test: hits are rare, and the test costs more than a compare.
  for (; c + 4 * L <= count; c += 4 * L) {
    const M h0 = hits(c), h1 = hits(c + L), h2 = hits(c + 2 * L), h3 = hits(c + 3 * L);
    if (!any(h0 | h1 | h2 | h3)) continue;
    emit(h0, c), emit(h1, c + L), emit(h2, c + 2 * L), emit(h3, c + 3 * L);
  }
  for (; c + L <= count; c += L) {
    const M hit = hits(c);
    if (any(hit)) emit(hit, c);
  }
  for (; c < count; ++c) {
    const T value = row[c] + row_bias + (column_bias ? column_bias[c] : T(0));
    if (value >= (thresholds ? thresholds[c] : threshold)) out[found++] = static_cast<std::int32_t>(c);
  }
  return found;
}

}  // namespace deepret::knn::DEEPRET_SIMD_NS
