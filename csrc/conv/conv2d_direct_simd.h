// The register tiles of conv2d's direct paths, written once with GCC vector
// extensions and compiled once per instruction set like conv2d_simd.h
// (portable 16-byte vectors in conv2d_direct_cpu.cpp, 32-byte in
// conv2d_direct_cpu_avx2.cpp, 64-byte in conv2d_direct_cpu_avx512.cpp), each
// copy in its own namespace and using nothing inline from outside it.
//
// Both tiles read the reduction operand B in place, with no im2col panel:
// row k of B starts at b + offsets[k], contiguous along output pixels. The
// driver lays the input out so that this holds (a zero-padded, stride-phase
// split copy of the rows a task reads; or, for 1x1 layers, the input itself).
//
// direct_tile() (stems, pointwise 1x1): an MR x NR tile of C = A * B,
//     c[i * ldc + q] (+)= sum_{k < kc} A(i, k) * b[offsets[k] + q]
// with A(i, k) = a[k * MR + i] (packed weights) or a[i * lda + k] (the
// weights as they are, rows of a [O, K] matrix).
//
// depthwise_tile() (one weight vector, many output rows): R output rows x
// NV vectors of one output plane,
//     c[r * ldc + q] = init + sum_{k < kc} w[k] * b[r * row_step + offsets[k] + q]
// one broadcast of w[k] serving R * NV accumulators.
#ifndef DEEPRET_SIMD_NS
#error "define DEEPRET_SIMD_NS and DEEPRET_VBYTES before including conv2d_direct_simd.h"
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "conv/conv2d_direct_tiles.h"

namespace deepret::conv::DEEPRET_SIMD_NS {

using index_t = std::int64_t;

#include "common/simd_vec.inc"

template <class T>
using DirectVec = SimdVec<T>;

// Tile families (rows x up to 3 vectors): 16 vector registers on SSE/AVX2
// hold 6 x 2 or 4 x 3 accumulators (as fast as each other, about 98 % of
// the FMA peak on a Zen 3 core with data in L1; 4 x 2 about 90 %, single
// vectors far less), 32 on AVX-512 8 x 3 or 4 x 3.
constexpr int kFamilyMR[direct::kFamilies] = {DEEPRET_VBYTES >= 64 ? 8 : 6, 4};
constexpr int kFamilyNV[direct::kFamilies] = {DEEPRET_VBYTES >= 64 ? 3 : 2, 3};

template <class T>
constexpr int direct_lanes() {
  return DirectVec<T>::lanes;
}

// Lane i of the result: x[i] where lo <= i < hi, else 0.
template <class T, class V>
inline V lanes_between(V x, index_t lo, index_t hi) {
  using S = DirectVec<T>;
  V lane;
  for (int i = 0; i < S::lanes; ++i) lane[i] = T(i);
  return lane >= S::broadcast(T(lo)) && lane < S::broadcast(T(hi)) ? x : S::broadcast(T(0));
}

// Stores rows x cols of an R x NV-vector accumulator block at c (rows ldc
// apart). A row may be stored as whole vectors, past cols, when that stays
// within the first `room` elements from c: the caller guarantees that what
// lies there is stored again later (the next output row). Other partial rows
// go through a buffer, the last vector overlapping the one before, so that
// no store loop becomes a library call.
template <class T, int R, int NV, class V>
inline void store_block(V (&acc)[R][NV], T* c, index_t ldc, int rows, int cols, bool accumulate,
                        index_t room) {
  using S = DirectVec<T>;
  constexpr int L = S::lanes;
  for (int i = 0; i < rows; ++i) {
    T* row = c + i * ldc;
    if (cols == NV * L || i * ldc + NV * L <= room) {
      for (int v = 0; v < NV; ++v) {
        T* p = row + v * L;
        S::store(p, accumulate ? S::load(p) + acc[i][v] : acc[i][v]);
      }
      continue;
    }
    T tile[NV * L];
    for (int v = 0; v < NV; ++v) S::store(tile + v * L, acc[i][v]);
    int q = 0;
    for (; q + L <= cols; q += L) S::store(row + q, accumulate ? S::load(row + q) + S::load(tile + q) : S::load(tile + q));
    if (q == cols) continue;
    if (cols >= L) {  // the last vector again, ending at cols; lanes before q are done
      const int e = cols - L;
      const V t = S::load(tile + e);
      S::store(row + e, accumulate ? S::load(row + e) + lanes_between<T>(t, q - e, L) : t);
      continue;
    }
    for (int k = 0; k < L; ++k)
      if (k < cols) row[k] = accumulate ? row[k] + tile[k] : tile[k];
  }
}

// PackedA: a is [kc, MR]; else a is rows of stride lda ([rows, lda], kc used).
// With accumulate the tile adds to c, else it starts from init[i] or zero.
template <class T, int MR, int NV, bool PackedA>
void direct_tile(index_t kc,
                 const T* a, index_t lda,  // see PackedA
                 const T* b,               // B row k at b + offsets[k]
                 const index_t* offsets,   // [kc]
                 T* c, index_t ldc, int rows, int cols, bool accumulate,
                 const T* init,            // [rows] or nullptr
                 index_t room)             // see store_block
{
  using S = DirectVec<T>;
  using V = typename S::V;
  constexpr int L = S::lanes;
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i) {
    const V start = S::broadcast(!accumulate && init && i < rows ? init[i] : T(0));
    for (int v = 0; v < NV; ++v) acc[i][v] = start;
  }
  // Rows past `rows` repeat the last one (their results are never stored), so
  // that A is never read past its end.
  const T* arow[MR];
  for (int i = 0; i < MR; ++i) arow[i] = a + (PackedA ? i : (i < rows ? i : rows - 1) * lda);
  for (index_t k = 0; k < kc; ++k) {
    const T* bk = b + offsets[k];
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = S::load(bk + v * L);
    for (int i = 0; i < MR; ++i) {
      const V ai = S::broadcast(PackedA ? arow[0][k * MR + i] : arow[i][k]);
      for (int v = 0; v < NV; ++v) acc[i][v] += ai * bv[v];
    }
  }
  store_block<T, MR, NV>(acc, c, ldc, rows, cols, accumulate, room);
}

// A few (Q) pixel columns of C = A * B for up to `rows` rows of A, as dot
// products along k: a 7x7 layer's 49th pixel would otherwise take a whole
// vector tile of its own.
//     c[i * ldc + q] (+)= sum_{k < kc} a[i * lda + k] * xt[q * kc + k]
// xt holds the Q columns of B, transposed (contiguous in k).
template <class T, int Q>
void dot_tile(index_t kc, const T* a, index_t lda, const T* xt, T* c, index_t ldc, int rows,
              bool accumulate, const T* init) {
  using S = DirectVec<T>;
  using V = typename S::V;
  constexpr int L = S::lanes;
  constexpr int R = Q <= 2 ? 4 : 2;  // rows at a time: R * Q accumulators
  for (int i0 = 0; i0 < rows; i0 += R) {
    V acc[R][Q];
    const T* arow[R];
    for (int i = 0; i < R; ++i) {
      arow[i] = a + (i0 + i < rows ? i0 + i : rows - 1) * lda;
      for (int q = 0; q < Q; ++q) acc[i][q] = S::broadcast(T(0));
    }
    index_t k = 0;
    for (; k + L <= kc; k += L) {
      V xv[Q];
      for (int q = 0; q < Q; ++q) xv[q] = S::load(xt + q * kc + k);
      for (int i = 0; i < R; ++i) {
        const V av = S::load(arow[i] + k);
        for (int q = 0; q < Q; ++q) acc[i][q] += av * xv[q];
      }
    }
    for (int i = 0; i < R && i0 + i < rows; ++i)
      for (int q = 0; q < Q; ++q) {
        T lanes[L];
        S::store(lanes, acc[i][q]);
        T sum = T(0);
        for (int l = 0; l < L; ++l) sum += lanes[l];
        for (index_t kk = k; kk < kc; ++kk) sum += arow[i][kk] * xt[q * kc + kk];
        T* p = c + (i0 + i) * ldc + q;
        *p = (accumulate ? *p : init ? init[i0 + i] : T(0)) + sum;
      }
  }
}

// KC > 0 fixes the tap count at compile time (3x3, 5x5: fully unrolled);
// KC = 0 takes kc at run time.
template <class T, int R, int NV, int KC>
void depthwise_tile(index_t kc, const T* w,   // [kc]
                    const T* b, index_t row_step,
                    const index_t* offsets,   // [kc]
                    T* c, index_t ldc, int rows, int cols, T init, index_t room) {
  using S = DirectVec<T>;
  using V = typename S::V;
  constexpr int L = S::lanes;
  if (KC > 0) kc = KC;
  V acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = S::broadcast(init);
  for (index_t k = 0; k < kc; ++k) {
    const V wk = S::broadcast(w[k]);
    const T* bk = b + offsets[k];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] += wk * S::load(bk + r * row_step + v * L);
  }
  store_block<T, R, NV>(acc, c, ldc, rows, cols, false, room);
}

// Copies n elements. Where `readable` elements exist at src, the last vector
// may read past n and then writes zeros past n (into padding of the copy,
// which Rows makes room for); else it overlaps the vector before, or, for n
// below one vector, goes element by element.
template <class T>
inline void copy_run(const T* src, index_t n, index_t readable, T* dst) {
  using S = DirectVec<T>;
  constexpr int L = S::lanes;
  index_t i = 0;
  for (; i + L <= n; i += L) S::store(dst + i, S::load(src + i));
  if (i == n) return;
  if (i + L <= readable) {
    S::store(dst + i, lanes_between<T>(S::load(src + i), 0, n - i));
  } else if (n >= L) {
    S::store(dst + n - L, S::load(src + n - L));
  } else {
    for (int k = 0; k < L; ++k)
      if (k < n) dst[k] = src[k];
  }
}

// (even, odd) lanes of the 2L elements x0 then x1.
template <class T, class V, std::size_t... I>
inline void deinterleave(V x0, V x1, V& even, V& odd, std::index_sequence<I...>) {
#if defined(__clang__)
  even = __builtin_shufflevector(x0, x1, int(2 * I)...);
  odd = __builtin_shufflevector(x0, x1, int(2 * I + 1)...);
#else
  using Lane = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
  typedef Lane Mask __attribute__((vector_size(DEEPRET_VBYTES)));
  even = __builtin_shuffle(x0, x1, Mask{Lane(2 * I)...});
  odd = __builtin_shuffle(x0, x1, Mask{Lane(2 * I + 1)...});
#endif
}

// Stride 2: input columns 2t go to one phase, 2t + 1 to the other (which
// one, and at what offset, depends on the parity of `left`), one vector pair
// at a time. Past the row (where `readable` allows the loads) the stores
// write zeros, into padding Rows made room for.
template <class T>
inline void copy_row_stride2(const T* src, index_t w, index_t readable, index_t left,
                             index_t phase_len, T* row) {
  using S = DirectVec<T>;
  using V = typename S::V;
  constexpr int L = S::lanes;
  const index_t a = left / 2;
  const bool odd_left = left % 2;
  T* even_dst = row + (odd_left ? phase_len : 0) + a;  // input columns 0, 2, 4, ...
  T* odd_dst = row + (odd_left ? a + 1 : phase_len + a);  // input columns 1, 3, 5, ...
  const index_t n_even = (w + 1) / 2, n_odd = w / 2;
  index_t t = 0;
  for (; t < n_even && 2 * t + 2 * L <= readable; t += L) {
    V even, odd;
    deinterleave<T>(S::load(src + 2 * t), S::load(src + 2 * t + L), even, odd,
                    std::make_index_sequence<L>{});
    S::store(even_dst + t, t + L <= n_even ? even : lanes_between<T>(even, 0, n_even - t));
    S::store(odd_dst + t, t + L <= n_odd ? odd : lanes_between<T>(odd, 0, n_odd - t));
  }
  for (; t < n_even; ++t) {
    even_dst[t] = src[2 * t];
    if (t < n_odd) odd_dst[t] = src[2 * t + 1];
  }
}

// Writes the input part of padded rows [first, first + count) of a row copy
// (see Rows in conv2d_direct_cpu.cpp): element i of phase p of padded row r
// is input element (r - top, i * sw + p - left) of plane [h, w] wherever
// that exists. The rest of dst (padding) keeps the zeros the caller wrote
// (at strides 1 and 2 the vector copies may write zeros there again).
template <class T>
void copy_rows(const T* plane, index_t h, index_t w, index_t readable,  // elements at plane
               index_t top, index_t left, index_t sw, index_t phase_len, index_t first, index_t count,
               T* dst) {
  const index_t pitch = sw * phase_len;
  // Any other stride: element i of every phase exists for i in [i0, i1),
  // the edges one by one.
  const index_t i0 = std::min(phase_len, (left + sw - 1) / sw);
  const index_t i1 = std::clamp<index_t>((w + left) / sw, i0, phase_len);
  for (index_t r = std::max<index_t>(0, top - first); r < count; ++r) {
    const index_t iy = first + r - top;
    if (iy >= h) break;
    const T* src = plane + iy * w;
    T* row = dst + r * pitch;
    if (sw == 1) {
      copy_run(src, w, readable - iy * w, row + left);
      continue;
    }
    if (sw == 2) {
      copy_row_stride2(src, w, readable - iy * w, left, phase_len, row);
      continue;
    }
    auto edge = [&](index_t lo, index_t hi) {
      for (index_t p = 0; p < sw; ++p)
        for (index_t i = lo; i < hi; ++i) {
          const index_t col = i * sw + p - left;
          if (col >= 0 && col < w) row[p * phase_len + i] = src[col];
        }
    };
    edge(0, i0);
    const T* s = src + i0 * sw - left;
    for (index_t p = 0; p < sw; ++p)
      for (index_t t = 0; t < i1 - i0; ++t) row[p * phase_len + i0 + t] = s[t * sw + p];
    edge(i1, phase_len);
  }
}

// This instruction set's tiles, for the driver's table.
template <class T, std::size_t... I>
void fill_depthwise(direct::DirectKernels<T>& k, std::index_sequence<I...>) {
  constexpr int n = direct::kDwTapCounts;
  ((k.depthwise[I / n][I % n] = &depthwise_tile<T, direct::kDwShape[I / n].rows,
                                                direct::kDwShape[I / n].nv, direct::kDwTaps[I % n]>),
   ...);
}

template <class T, int F>
void fill_family(direct::DirectFamily<T>& f) {
  constexpr int MR = kFamilyMR[F];
  f.mr = MR;
  f.max_nv = kFamilyNV[F];
  f.packed[0] = &direct_tile<T, MR, 1, true>;
  f.rows[0] = &direct_tile<T, MR, 1, false>;
  f.packed[1] = &direct_tile<T, MR, 2, true>;
  f.rows[1] = &direct_tile<T, MR, 2, false>;
  if constexpr (kFamilyNV[F] >= 3) {
    f.packed[2] = &direct_tile<T, MR, 3, true>;
    f.rows[2] = &direct_tile<T, MR, 3, false>;
  }
}

template <class T>
direct::DirectKernels<T> direct_kernels() {
  static_assert(kFamilyNV[0] <= direct::kMaxNV && kFamilyNV[1] <= direct::kMaxNV);
  direct::DirectKernels<T> k{};
  k.lanes = DirectVec<T>::lanes;
  fill_family<T, 0>(k.family[0]);
  fill_family<T, 1>(k.family[1]);
  fill_depthwise(k, std::make_index_sequence<direct::kDwShapes * direct::kDwTapCounts>{});
  k.copy_rows = &copy_rows<T>;
  k.dot[0] = &dot_tile<T, 1>;
  k.dot[1] = &dot_tile<T, 2>;
  k.dot[2] = &dot_tile<T, 3>;
  k.dot[3] = &dot_tile<T, 4>;
  return k;
}

}  // namespace deepret::conv::DEEPRET_SIMD_NS
