// CPU driver of 2-D correlation: splits the output rows into tasks run in
// parallel; each task computes the interior (every tap inside the image) on the
// SIMD tile kernel of corr2d_simd.h straight from the image, and the edges on
// small boundary-extended copies (patches) of the part of the image they read,
// with the same kernel. Complex inputs run as real passes over two planes.
#include <algorithm>
#include <complex>
#include <memory>
#include <vector>

#include "common/buffer.h"
#include "common/errors.h"
#include "common/parallel.h"
#include "common/simd.h"
#include "conv/conv2d.h"

#define DEEPRET_SIMD_NS portable
#define DEEPRET_VBYTES 16
#include "conv/corr2d_simd.h"
#undef DEEPRET_SIMD_NS
#undef DEEPRET_VBYTES

namespace deepret::conv {

#if defined(DEEPRET_X86)
namespace avx2 {
// Instantiated in corr2d_cpu_avx2.cpp, compiled with -mavx2 -mfma.
template <class T, int P>
void tile2d(const T* const* in, index_t is, const T* const* w, index_t kh, index_t kw, T* out,
            index_t os, index_t rows, index_t cols);
}  // namespace avx2
namespace avx512 {
// Instantiated in corr2d_cpu_avx512.cpp, compiled with -mavx512f.
template <class T, int P>
void tile2d(const T* const* in, index_t is, const T* const* w, index_t kh, index_t kw, T* out,
            index_t os, index_t rows, index_t cols);
}  // namespace avx512
#endif

namespace {

// Widest vector of any path in elements of T: the fewest columns a tile needs.
template <class T>
constexpr index_t min_cols() {
  return sizeof(T) > 8 ? 1 : index_t(64 / sizeof(T));
}

template <class T, int P>
void tile(const T* const* in, index_t is, const T* const* w, index_t kh, index_t kw, T* out,
          index_t os, index_t rows, index_t cols) {
  if (rows <= 0 || cols <= 0) return;
#if defined(DEEPRET_X86)
  if (use_avx512f()) return avx512::tile2d<T, P>(in, is, w, kh, kw, out, os, rows, cols);
  if (use_avx2_fma()) return avx2::tile2d<T, P>(in, is, w, kh, kw, out, os, rows, cols);
#endif
  portable::tile2d<T, P>(in, is, w, kh, kw, out, os, rows, cols);
}

template <class T, int P>
struct Problem {
  const T* const* image;  // P planes [h, w]
  index_t h, w;
  const T* const* taps;   // P planes [kh, kw]
  index_t kh, kw;
  T* out;                 // [oh, ow]
  index_t oh, ow, top, left;
  Boundary boundary;
  const T* fill;          // [P]

  // Image index of extended index q along an axis of length m, or -1 for fill.
  index_t map(index_t q, index_t m) const {
    if (q >= 0 && q < m) return q;
    if (boundary == Boundary::Wrap) return wrap_index(q, m);
    if (boundary == Boundary::Symm) return symm_index(q, m);
    return -1;
  }

  // Outputs [ma, mb) x [ca, cb) from a boundary-extended copy of what they read.
  void patch(index_t ma, index_t mb, index_t ca, index_t cb) const {
    if (ma >= mb || ca >= cb) return;
    const index_t rows = mb - ma;
    const index_t pw = std::max(cb - ca, min_cols<T>());  // outputs computed per row
    const index_t width = pw + kw - 1, height = rows + kh - 1;
    Scratch<T> buffer(static_cast<std::size_t>(P * height * width + rows * pw));
    T* result = buffer.data() + P * height * width;
    const index_t q0 = ma - top, x0 = ca - left;  // image index of patch (0, 0)
    // Columns [lo, hi) of the patch fall inside the image.
    const index_t lo = std::clamp<index_t>(-x0, 0, width), hi = std::clamp<index_t>(w - x0, lo, width);
    const T* planes[P];
    for (int p = 0; p < P; ++p) {
      T* dst = buffer.data() + p * height * width;
      planes[p] = dst;
      for (index_t i = 0; i < height; ++i, dst += width) {
        const index_t q = map(q0 + i, h);
        if (q < 0) {
          std::fill(dst, dst + width, fill[p]);
          continue;
        }
        const T* src = image[p] + q * w;
        for (index_t c = 0; c < lo; ++c) {
          const index_t x = map(x0 + c, w);
          dst[c] = x < 0 ? fill[p] : src[x];
        }
        std::copy(src + x0 + lo, src + x0 + hi, dst + lo);
        for (index_t c = hi; c < width; ++c) {
          const index_t x = map(x0 + c, w);
          dst[c] = x < 0 ? fill[p] : src[x];
        }
      }
    }
    tile<T, P>(planes, width, taps, kh, kw, result, pw, rows, pw);
    for (index_t i = 0; i < rows; ++i)
      std::copy(result + i * pw, result + i * pw + (cb - ca), out + (ma + i) * ow + ca);
  }

  // Output rows [ma, mb): interior columns straight from the image where
  // every tap of these rows is inside it, patches elsewhere.
  void rows(index_t ma, index_t mb, index_t r0, index_t r1, index_t c0, index_t c1) const {
    // Small outputs (CNN feature maps): one padded copy beats edge patches.
    if ((mb - ma) * (ow + kw) <= (index_t(1) << 14)) return patch(ma, mb, 0, ow);
    const index_t cuts[4] = {ma, std::clamp(r0, ma, mb), std::clamp(r1, ma, mb), mb};
    for (int s = 0; s < 3; ++s) {
      const index_t a = cuts[s], b = cuts[s + 1];
      if (a >= b) continue;
      if (s != 1 || c1 - c0 < min_cols<T>()) {
        patch(a, b, 0, ow);
        continue;
      }
      const T* in[P];
      for (int p = 0; p < P; ++p) in[p] = image[p] + (a - top) * w + (c0 - left);
      tile<T, P>(in, w, taps, kh, kw, out + a * ow + c0, ow, b - a, c1 - c0);
      patch(a, b, 0, c0);
      patch(a, b, c1, ow);
    }
  }

  void run(int num_threads) const {
    if (oh <= 0 || ow <= 0) return;
    if (kh == 0 || kw == 0) {  // empty sums
      std::fill(out, out + oh * ow, T(0));
      return;
    }
    check(boundary == Boundary::Fill || (h > 0 && w > 0),
          "correlate2d: boundary 'wrap' and 'symm' need a non-empty image");
    // Interior: rows m with m - top in [0, h - kh], columns likewise.
    const index_t r0 = std::clamp<index_t>(top, 0, oh);
    const index_t r1 = std::clamp<index_t>(h - kh + 1 + top, r0, oh);
    const index_t c0 = std::clamp<index_t>(left, 0, ow);
    const index_t c1 = std::clamp<index_t>(w - kw + 1 + left, c0, ow);
    // Enough work per task to pay for waking a thread (about 64k multiply-adds).
    const index_t per_row = std::max<index_t>(1, ow * kh * kw * P);
    const index_t grain = std::max<index_t>(4, (index_t(1) << 16) / per_row);
    parallel_for<8>(0, oh, grain, num_threads,
                 [&](index_t ma, index_t mb) { rows(ma, mb, r0, r1, c0, c1); });
  }
};

}  // namespace

template <class T>
void correlate2d(const T* image, index_t h, index_t w, const T* weights, index_t kh, index_t kw,
                 T* out, index_t oh, index_t ow, index_t top, index_t left, Boundary boundary, T fill,
                 int num_threads) {
  check(h >= 0 && w >= 0 && kh >= 0 && kw >= 0 && oh >= 0 && ow >= 0,
        "correlate2d: shapes must be non-negative");
  const T* image_planes[1] = {image};
  const T* tap_planes[1] = {weights};
  const T fills[1] = {fill};
  Problem<T, 1>{image_planes, h, w, tap_planes, kh, kw, out, oh, ow, top, left, boundary, fills}.run(
      num_threads);
}

// (ar + i ai)(wr + i wi) = (ar wr - ai wi) + i (ar wi + ai wr): two real
// passes of two planes each.
template <class T>
void correlate2d_complex(const std::complex<T>* image, index_t h, index_t w,
                         const std::complex<T>* weights, index_t kh, index_t kw, std::complex<T>* out,
                         index_t oh, index_t ow, index_t top, index_t left, Boundary boundary,
                         std::complex<T> fill, int num_threads) {
  check(h >= 0 && w >= 0 && kh >= 0 && kw >= 0 && oh >= 0 && ow >= 0,
        "correlate2d: shapes must be non-negative");
  const index_t n = h * w, m = kh * kw, len = oh * ow;
  std::vector<T> planes(static_cast<std::size_t>(2 * n + 3 * m + 2 * len));
  T* ar = planes.data();
  T* ai = ar + n;
  T* wr = ai + n;
  T* wi = wr + m;
  T* neg_wi = wi + m;
  T* re = neg_wi + m;
  T* im = re + len;
  for (index_t i = 0; i < n; ++i) {
    ar[i] = image[i].real();
    ai[i] = image[i].imag();
  }
  for (index_t j = 0; j < m; ++j) {
    wr[j] = weights[j].real();
    wi[j] = weights[j].imag();
    neg_wi[j] = -wi[j];
  }
  const T* sig[2] = {ar, ai};
  const T* re_taps[2] = {wr, neg_wi};
  const T* im_taps[2] = {wi, wr};
  const T fills[2] = {fill.real(), fill.imag()};
  Problem<T, 2>{sig, h, w, re_taps, kh, kw, re, oh, ow, top, left, boundary, fills}.run(num_threads);
  Problem<T, 2>{sig, h, w, im_taps, kh, kw, im, oh, ow, top, left, boundary, fills}.run(num_threads);
  for (index_t o = 0; o < len; ++o) out[o] = std::complex<T>(re[o], im[o]);
}

#define DEEPRET_INSTANTIATE_REAL(T)                                                          \
  template void correlate2d<T>(const T*, index_t, index_t, const T*, index_t, index_t, T*,  \
                               index_t, index_t, index_t, index_t, Boundary, T, int);
DEEPRET_INSTANTIATE_REAL(float)
DEEPRET_INSTANTIATE_REAL(double)
DEEPRET_INSTANTIATE_REAL(long double)
DEEPRET_INSTANTIATE_REAL(std::uint8_t)
DEEPRET_INSTANTIATE_REAL(std::uint16_t)
DEEPRET_INSTANTIATE_REAL(std::uint32_t)
DEEPRET_INSTANTIATE_REAL(std::uint64_t)
#undef DEEPRET_INSTANTIATE_REAL

#define DEEPRET_INSTANTIATE_COMPLEX(T)                                                          \
  template void correlate2d_complex<T>(const std::complex<T>*, index_t, index_t,                \
                                       const std::complex<T>*, index_t, index_t, std::complex<T>*, \
                                       index_t, index_t, index_t, index_t, Boundary, std::complex<T>, \
                                       int);
DEEPRET_INSTANTIATE_COMPLEX(float)
DEEPRET_INSTANTIATE_COMPLEX(double)
DEEPRET_INSTANTIATE_COMPLEX(long double)
#undef DEEPRET_INSTANTIATE_COMPLEX

}  // namespace deepret::conv
