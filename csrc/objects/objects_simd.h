// The two hot loops of the object-saliency family, written once with GCC
// vector extensions and compiled three times, like knn_simd.h: in
// objects_cpu.cpp as the portable path (16-byte vectors), in
// objects_cpu_avx2.cpp (-mavx2 -mfma -mf16c, 32-byte vectors) and in
// objects_cpu_avx512.cpp (-mavx512f, 64-byte vectors), each copy in its own
// namespace and using nothing inline from outside it.
//
// region_dots(): for one float32 map a [c, hw] and regions v_0 .. v_{nr-1}
// (rows of [*, c]), adds dot[r, t] += sum_j v_r[j] a[j, t] and
// sq[t] += sum_j a[j, t]^2, in one pass over the map. The sums over a block
// of kChannelBlock rows are float32 (they vectorize at full width), the sums
// of blocks double, so the error stays that of 64-term float32 sums even for
// signed descriptors.
//
// half_range() / float_range(): half (or float) values to float, with their
// smallest and largest value, the one pass that both converts and validates
// a batch of activations (image_batches in python/deepret/regionset.py).
#ifndef DEEPRET_SIMD_NS
#error "define DEEPRET_SIMD_NS and DEEPRET_VBYTES before including objects_simd.h"
#endif

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace deepret::objects::DEEPRET_SIMD_NS {

using index_t = std::int64_t;

#include "common/simd_vec.inc"

constexpr index_t kChannelBlock = 64;  // rows per float32 sum (then added to double)
constexpr index_t kRowsInL1 = 16;      // 24 KB of a 1280 x 16 x 24 map
constexpr int kRegionGroup = 4;        // 4 x 2 accumulators + 2 loads + 2 temporaries: 12 of 16 registers

// sq[t] += row[t]^2 for t < hw.
inline void square_row(const float* __restrict row, index_t hw, float* __restrict sq) {
  for (index_t t = 0; t < hw; ++t) sq[t] += row[t] * row[t];
}

// For the R regions v[0 .. R-1] and rows [j0, j1) (in L1): each tile of 2
// vectors of pixels accumulates every region in registers over the rows,
// then adds to acc [R, hw]; pixels past the last whole tile, scalar.
template <int R>
inline void dots_rows(const float* a, index_t hw, index_t j0, index_t j1, const float* const* v, float* acc) {
  using S = SimdVec<float>;
  using V = S::V;
  constexpr int L = S::lanes;
  index_t t = 0;
  for (; t + 2 * L <= hw; t += 2 * L) {
    V sum[R][2];
    for (int r = 0; r < R; ++r) sum[r][0] = sum[r][1] = V{};
    for (index_t j = j0; j < j1; ++j) {
      const float* row = a + j * hw + t;
      const V x0 = S::load(row), x1 = S::load(row + L);
      for (int r = 0; r < R; ++r) {
        const V b = S::broadcast(v[r][j]);
        sum[r][0] += b * x0;
        sum[r][1] += b * x1;
      }
    }
    for (int r = 0; r < R; ++r) {
      float* out = acc + r * hw + t;
      S::store(out, S::load(out) + sum[r][0]);
      S::store(out + L, S::load(out + L) + sum[r][1]);
    }
  }
  for (; t < hw; ++t)
    for (int r = 0; r < R; ++r) {
      float total = 0.0f;
      for (index_t j = j0; j < j1; ++j) total += v[r][j] * a[j * hw + t];
      acc[r * hw + t] += total;
    }
}

// a [c, hw]; v[r] -> [c] for r < nr; dot [nr, hw] and sq [hw] are added to;
// block: scratch [(nr + 1) * hw]. Each piece of kRowsInL1 rows is first
// read in order by the squares (a stream the hardware prefetchers follow),
// which leaves it in L1 for the regions' register tiles (dots_rows); read
// straight from memory in tile order, the rows lie 1.5 KB apart and every
// load stalled; one region at a time over whole rows (load, multiply, add,
// store per 4 values) ran at a third of the tiles' speed on the portable
// build.
inline void region_dots(const float* a, index_t c, index_t hw, const float* const* v, index_t nr, double* dot,
                        double* sq, float* block) {
  float* bsq = block + nr * hw;
  for (index_t j0 = 0; j0 < c; j0 += kChannelBlock) {
    const index_t j1 = j0 + kChannelBlock < c ? j0 + kChannelBlock : c;
    for (index_t t = 0; t < (nr + 1) * hw; ++t) block[t] = 0.0f;
    for (index_t s0 = j0; s0 < j1; s0 += kRowsInL1) {
      const index_t s1 = s0 + kRowsInL1 < j1 ? s0 + kRowsInL1 : j1;
      for (index_t j = s0; j < s1; ++j) square_row(a + j * hw, hw, bsq);
      for (index_t r0 = 0; r0 < nr; r0 += kRegionGroup) {
        const float* const* vg = v + r0;
        float* ag = block + r0 * hw;
        switch (nr - r0 < kRegionGroup ? nr - r0 : kRegionGroup) {
          case 1: dots_rows<1>(a, hw, s0, s1, vg, ag); break;
          case 2: dots_rows<2>(a, hw, s0, s1, vg, ag); break;
          case 3: dots_rows<3>(a, hw, s0, s1, vg, ag); break;
          default: dots_rows<4>(a, hw, s0, s1, vg, ag); break;
        }
      }
    }
    for (index_t r = 0; r < nr; ++r)
      for (index_t t = 0; t < hw; ++t) dot[r * hw + t] += double(block[r * hw + t]);
    for (index_t t = 0; t < hw; ++t) sq[t] += double(bsq[t]);
  }
}

// out[t] = in[t] as float for t < n (when Store), with the smallest and
// largest value in *lo / *hi (both NaN when any value is NaN or infinite).
// load(t) gives the vector of lanes t .. t + L - 1 and one(t) the single
// value t.
template <bool Store, class Load, class One>
inline void widen_range(index_t n, Load load, One one, float* out, float* lo, float* hi) {
  using S = SimdVec<float>;
  using V = S::V;
  constexpr int L = S::lanes;
  V vlo = S::broadcast(INFINITY), vhi = S::broadcast(-INFINITY), bad = V{};
  index_t t = 0;
  for (; t + L <= n; t += L) {
    const V x = load(t);
    if (Store) S::store(out + t, x);
    vlo = x < vlo ? x : vlo;
    vhi = x > vhi ? x : vhi;
    bad += x - x;  // 0 for finite values, NaN for NaN and infinities
  }
  float l0 = INFINITY, h0 = -INFINITY, b0 = 0.0f;
  for (int l = 0; l < L; ++l) {
    l0 = vlo[l] < l0 ? vlo[l] : l0;
    h0 = vhi[l] > h0 ? vhi[l] : h0;
    b0 += bad[l];
  }
  for (; t < n; ++t) {
    const float x = one(t);
    if (Store) out[t] = x;
    l0 = x < l0 ? x : l0;
    h0 = x > h0 ? x : h0;
    b0 += x - x;
  }
  *lo = b0 == b0 ? l0 : NAN;
  *hi = b0 == b0 ? h0 : NAN;
}

// One IEEE half (bits h) as float, exactly, without branches (so that the
// portable build's loop vectorizes; a table lookup per value was 0.67 ns):
// the exponent and mantissa move into float's place and the exponent is
// rebiased (127 - 15); an all-ones exponent (inf, NaN) gets float's all-ones
// exponent; a zero exponent (zero, subnormal m 2^-24) is computed as
// (2^-14 (1 + m / 1024)) - 2^-14, exact by Sterbenz's lemma.
inline float half_bits_to_float(std::uint16_t h) {
  const std::uint32_t mag = std::uint32_t(h & 0x7fffu) << 13;
  const std::uint32_t exponent = mag & 0x0f800000u;
  const std::uint32_t inf_nan = exponent == 0x0f800000u ? std::uint32_t(128 - 16) << 23 : 0u;
  const std::uint32_t bits = mag + (std::uint32_t(127 - 15) << 23) + inf_nan;
  const std::uint32_t low_bits = bits + (1u << 23);
  float low;
  std::memcpy(&low, &low_bits, sizeof low);
  low -= 0x1p-14f;
  std::uint32_t low_out;
  std::memcpy(&low_out, &low, sizeof low_out);
  // The choice in integers: a float select after the subtraction kept the
  // loop scalar (GCC's trapping-math rules).
  const std::uint32_t zero_exponent = std::uint32_t(0) - std::uint32_t(exponent == 0);  // all ones or 0
  const std::uint32_t out = (low_out & zero_exponent) | (bits & ~zero_exponent) | (std::uint32_t(h & 0x8000u) << 16);
  float f;
  std::memcpy(&f, &out, sizeof f);
  return f;
}

// float in[0, n) copied to out, with its range.
inline void float_range(const float* in, index_t n, float* out, float* lo, float* hi) {
  using S = SimdVec<float>;
  widen_range<true>(n, [&](index_t t) { return S::load(in + t); }, [&](index_t t) { return in[t]; }, out, lo,
                    hi);
}

// IEEE half in[0, n) to float: F16C's conversion on the AVX2 and AVX-512
// builds; elsewhere half_bits_to_float in a plain loop over pieces of 1,024
// values (it vectorizes there, not lane by lane inside widen_range's
// loads), whose range is then taken while they are in L1.
inline void half_range(const std::uint16_t* in, index_t n, float* out, float* lo, float* hi) {
#if defined(__F16C__)
  using S = SimdVec<float>;
  auto load = [&](index_t t) {
    S::V x;
#if DEEPRET_VBYTES == 64
    const __m512 w = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + t)));
#else
    const __m256 w = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + t)));
#endif
    std::memcpy(&x, &w, sizeof x);
    return x;
  };
  widen_range<true>(n, load, [&](index_t t) { return half_bits_to_float(in[t]); }, out, lo, hi);
#else
  constexpr index_t kPiece = 1024;
  float l = INFINITY, h = -INFINITY;
  bool bad = false;
  for (index_t t0 = 0; t0 < n; t0 += kPiece) {
    const index_t m = n - t0 < kPiece ? n - t0 : kPiece;
    const std::uint16_t* __restrict src = in + t0;
    float* __restrict dst = out + t0;
    for (index_t t = 0; t < m; ++t) dst[t] = half_bits_to_float(src[t]);
    float pl, ph;  // the piece's range, read back from L1 (nothing stored again)
    widen_range<false>(m, [&](index_t t) { return SimdVec<float>::load(dst + t); },
                       [&](index_t t) { return dst[t]; }, dst, &pl, &ph);
    bad = bad || pl != pl;
    l = pl < l ? pl : l;
    h = ph > h ? ph : h;
  }
  *lo = bad ? NAN : l;
  *hi = bad ? NAN : h;
#endif
}

}  // namespace deepret::objects::DEEPRET_SIMD_NS
