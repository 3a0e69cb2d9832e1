// The register-tiled inner kernel of 1-D correlation, written once with GCC
// vector extensions and compiled twice: in conv_cpu.cpp as the portable path
// (16-byte vectors: SSE2 on x86-64, NEON on arm64) and in conv_cpu_avx2.cpp
// with -mavx2 -mfma (32-byte vectors). Each copy lives in its own namespace
// (DEEPRET_SIMD_NS) and uses nothing inline from outside it, so the linker can
// never hand AVX2 code to the portable path.
//
// interior() computes, for p in [0, count),
//     out[p] = sum_{k < P} sum_{j < m} a[k][p + j] * v[k][j]
// where every a[k][p + j] exists (the driver pads the edges). P = 2 lets a
// complex product's real or imaginary part run as one pass over two planes.
#ifndef DEEPRET_SIMD_NS
#error "define DEEPRET_SIMD_NS and DEEPRET_VBYTES before including conv_simd.h"
#endif

#include <cstdint>
#include <cstring>

#include "conv/conv_tags.h"

namespace deepret::conv::DEEPRET_SIMD_NS {

using index_t = std::int64_t;
constexpr int kMaxLanes = kMaxSimdLanes;

#include "common/simd_vec.inc"

template <class T>
using Simd = SimdVec<T>;  // a vector of T, or T for long double


// acc (op)= x * y : multiply-add for numbers, and-or for booleans. Integers are
// unsigned here, so vector arithmetic wraps as numpy's does.
template <class Tag, class T>
struct Step;

template <class T>
struct Step<MulAddTag, T> {
  template <class V>
  static V apply(V acc, V x, V y) {
    return acc + x * y;
  }
};

template <class T>
struct Step<AndOrTag, T> {
  template <class V>
  static V apply(V acc, V x, V y) {
    return acc | (x & y);
  }
};

// R vector accumulators per block: enough independent chains to hide FMA
// latency (4 cycles, 2 per cycle) without spilling 16 registers.
template <class T, int P>
constexpr int block_vectors() {
  if constexpr (std::is_integral_v<T>) return 4;
  return P == 1 ? 8 : 4;
}

// One block of R * lanes outputs over taps [j0, j1); accumulates into out
// unless `first`, so that long filters can be split into L1-sized tap chunks.
template <class T, class Tag, int P, int R>
inline void block(const T* const* a, const T* const* v, index_t j0, index_t j1, T* out,
                  bool first) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int L = S::lanes;
  V acc[R];
  for (int r = 0; r < R; ++r) acc[r] = first ? S::broadcast(T(0)) : S::load(out + r * L);
  for (index_t j = j0; j < j1; ++j) {
    for (int k = 0; k < P; ++k) {
      const V tap = S::broadcast(v[k][j]);
      const T* src = a[k] + j;
      for (int r = 0; r < R; ++r) acc[r] = Step<Tag, T>::apply(acc[r], S::load(src + r * L), tap);
    }
  }
  for (int r = 0; r < R; ++r) S::store(out + r * L, acc[r]);
}

// Every output runs through the vector code, the last partial vector too (on a
// zero-padded copy of its window), so that each output is rounded the same way
// wherever the threads split the range.
template <class T, class Tag, int P>
void interior(const T* const* a,  // P pointers to [count + m - 1]
              const T* const* v,  // P pointers to [m]
              index_t m,
              T* out,             // [count]
              index_t count,
              T* scratch) {       // [P * (kMaxLanes + m - 1)]
  constexpr int R = block_vectors<T, P>();
  constexpr int L = Simd<T>::lanes;
  constexpr index_t kBlock = index_t(R) * L;
  // Output chunks keep the input window and the outputs in L1/L2 while tap
  // chunks keep the taps in L1 for long filters.
  constexpr index_t kOutChunk = kBlock * (4096 / kBlock > 0 ? 4096 / kBlock : 1);
  constexpr index_t kTapChunk = 512;
  static_assert(L <= kMaxLanes, "scratch is sized for kMaxLanes");

  const index_t vector_count = count - count % L;
  const T* ap[P];
  for (index_t oc = 0; oc < vector_count; oc += kOutChunk) {
    const index_t oe = oc + kOutChunk < vector_count ? oc + kOutChunk : vector_count;
    for (index_t j0 = 0; j0 < m; j0 += kTapChunk) {
      const index_t j1 = j0 + kTapChunk < m ? j0 + kTapChunk : m;
      const bool first = j0 == 0;
      index_t p = oc;
      for (; p + kBlock <= oe; p += kBlock) {
        for (int k = 0; k < P; ++k) ap[k] = a[k] + p;
        block<T, Tag, P, R>(ap, v, j0, j1, out + p, first);
      }
      for (; p < oe; p += L) {
        for (int k = 0; k < P; ++k) ap[k] = a[k] + p;
        block<T, Tag, P, 1>(ap, v, j0, j1, out + p, first);
      }
    }
  }
  const index_t tail = count - vector_count;
  if (tail == 0) return;
  // The last `tail` outputs read a[k][vector_count .. count + m - 1); pad that
  // window to a full vector's worth (the padded lanes are computed and dropped).
  const index_t width = L + m - 1, used = tail + m - 1;
  for (int k = 0; k < P; ++k) {
    T* window = scratch + k * width;
    std::memcpy(window, a[k] + vector_count, sizeof(T) * used);
    std::memset(static_cast<void*>(window + used), 0, sizeof(T) * (width - used));
    ap[k] = window;
  }
  T lanes_out[L];
  for (index_t j0 = 0; j0 < m; j0 += kTapChunk) {
    const index_t j1 = j0 + kTapChunk < m ? j0 + kTapChunk : m;
    block<T, Tag, P, 1>(ap, v, j0, j1, lanes_out, j0 == 0);
  }
  std::memcpy(out + vector_count, lanes_out, sizeof(T) * tail);
}

}  // namespace deepret::conv::DEEPRET_SIMD_NS
