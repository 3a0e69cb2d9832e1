// CPU driver of 1-D correlation: splits the outputs into the edges (taps that
// fall outside the signal, run on a zero-padded copy) and the interior (every
// tap inside, run in parallel on the SIMD kernel of conv_simd.h), and turns the
// complex case into real passes over planes.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <memory>

#include "common/buffer.h"
#include "common/errors.h"
#include "common/parallel.h"
#include "common/simd.h"
#include "conv/conv.h"
#include "conv/conv_tags.h"

#define DEEPRET_SIMD_NS portable
#define DEEPRET_VBYTES 16
#include "conv/conv_simd.h"
#undef DEEPRET_SIMD_NS
#undef DEEPRET_VBYTES

namespace deepret::conv {

#if defined(DEEPRET_X86)
namespace avx2 {
// Instantiated in conv_cpu_avx2.cpp, compiled with -mavx2 -mfma.
template <class T, class Tag, int P>
void interior(const T* const* a, const T* const* v, index_t m, T* out, index_t count, T* scratch);
}  // namespace avx2
#endif

namespace {

// Scratch sized from the signal lengths goes through the engine's checked
// allocator: a request that cannot fit is a MemoryError naming its size.
template <class T>
Buffer<T> scratch(index_t size) {
  return allocate<T>(std::max<index_t>(size, 1), "convolution scratch");
}

template <class T, class Tag, int P>
void interior(const T* const* a, const T* const* v, index_t m, T* out, index_t count) {
  auto pad = scratch<T>(P * (kMaxSimdLanes + m - 1));
#if defined(DEEPRET_X86)
  if (use_avx2_fma()) return avx2::interior<T, Tag, P>(a, v, m, out, count, pad.get());
#endif
  portable::interior<T, Tag, P>(a, v, m, out, count, pad.get());
}

template <class T, int P>
bool all_finite(const T* const* v, index_t m) {
  if constexpr (std::is_floating_point_v<T>) {
    for (int k = 0; k < P; ++k)
      for (index_t j = 0; j < m; ++j)
        if (!std::isfinite(v[k][j])) return false;
  }
  return true;
}

// Outputs [o0, o1) whose taps run past an end of the signal. Usually: copy the
// part of each signal they read into a zero-padded window (zero is the
// identity of both multiply-add and and-or) and run the interior kernel on it.
// With an inf or nan tap that would add 0 * inf = nan where numpy skips the
// tap, so then each output sums exactly its own taps, as numpy does.
template <class T, class Tag, int P>
void edge_outputs(const T* const* a, index_t n, const T* const* v, index_t m, T* out,
                  index_t o0, index_t o1, index_t left) {
  if (o0 >= o1) return;
  if (!all_finite<T, P>(v, m)) {
    static_assert(std::is_same_v<Tag, MulAddTag> || !std::is_floating_point_v<T>);
    for (index_t o = o0; o < o1; ++o) {
      const index_t j_lo = std::max<index_t>(0, left - o);
      const index_t j_hi = std::min<index_t>(m, n - o + left);
      T sum = T(0);
      for (index_t j = j_lo; j < j_hi; ++j)
        for (int k = 0; k < P; ++k) sum += a[k][o - left + j] * v[k][j];
      out[o] = sum;
    }
    return;
  }
  const index_t start = o0 - left;               // first signal index read
  const index_t width = (o1 - o0) + m - 1;       // indices read: [start, start + width)
  const index_t copy_lo = std::max<index_t>(start, 0);
  const index_t copy_hi = std::min<index_t>(start + width, n);
  auto buffer = scratch<T>(P * width);
  const T* padded[P];
  for (int k = 0; k < P; ++k) {
    T* window = buffer.get() + k * width;
    std::fill(window, window + width, T(0));
    if (copy_hi > copy_lo) std::copy(a[k] + copy_lo, a[k] + copy_hi, window + (copy_lo - start));
    padded[k] = window;
  }
  interior<T, Tag, P>(padded, v, m, out + o0, o1 - o0);
}

// out[o] = sum_k sum_j sig[k][o - left + j] * taps[k][j] for o in [0, out_len).
template <class T, class Tag, int P>
void correlate_planes(const T* const* sig, index_t n, const T* const* taps, index_t m, T* out,
                      index_t out_len, index_t left, int num_threads) {
  if (n < m) {
    // Keep the longer array as the signal so that the interior exists:
    // out[o] = sum_i taps[i + left - o] sig[i], i.e. the same formula with the
    // roles swapped, left' = out_len - 1 - left, and the output reversed.
    correlate_planes<T, Tag, P>(taps, m, sig, n, out, out_len, out_len - 1 - left, num_threads);
    std::reverse(out, out + out_len);
    return;
  }
  // Interior outputs read sig[o - left .. o - left + m - 1], all inside [0, n).
  const index_t i0 = std::clamp<index_t>(left, 0, out_len);
  const index_t i1 = std::clamp<index_t>(left + n - m + 1, i0, out_len);
  edge_outputs<T, Tag, P>(sig, n, taps, m, out, 0, i0, left);
  edge_outputs<T, Tag, P>(sig, n, taps, m, out, i1, out_len, left);
  // Enough work per thread to pay for waking it (about 64k multiply-adds).
  const index_t grain = std::max<index_t>(256, (index_t(1) << 16) / (m * P));
  parallel_for(i0, i1, grain, num_threads, [&](index_t lo, index_t hi) {
    const T* shifted[P];
    for (int k = 0; k < P; ++k) shifted[k] = sig[k] + (lo - left);
    interior<T, Tag, P>(shifted, taps, m, out + lo, hi - lo);
  });
}

void check_lengths(index_t n, index_t m, index_t out_len) {
  check(n > 0 && m > 0, "correlate1d: both inputs must be non-empty");
  check(out_len >= 0, "correlate1d: out_len must be non-negative");
}

}  // namespace

template <class T>
void correlate1d(const T* a, index_t n, const T* v, index_t m, T* out, index_t out_len,
                 index_t left, int num_threads) {
  check_lengths(n, m, out_len);
  const T* sig[1] = {a};
  const T* taps[1] = {v};
  correlate_planes<T, MulAddTag, 1>(sig, n, taps, m, out, out_len, left, num_threads);
}

void correlate1d_bool(const std::uint8_t* a, index_t n, const std::uint8_t* v, index_t m,
                      std::uint8_t* out, index_t out_len, index_t left, int num_threads) {
  check_lengths(n, m, out_len);
  const std::uint8_t* sig[1] = {a};
  const std::uint8_t* taps[1] = {v};
  correlate_planes<std::uint8_t, AndOrTag, 1>(sig, n, taps, m, out, out_len, left, num_threads);
}

// (ar + i ai)(vr + i vi) = (ar vr - ai vi) + i (ar vi + ai vr): two real
// passes of two planes each, with vi already conjugated when asked.
template <class T>
void correlate1d_complex(const std::complex<T>* a, index_t n, const std::complex<T>* v, index_t m,
                         std::complex<T>* out, index_t out_len, index_t left, bool conjugate_v,
                         int num_threads) {
  check_lengths(n, m, out_len);
  auto planes = scratch<T>(2 * n + 3 * m + 2 * out_len);
  T* ar = planes.get();
  T* ai = ar + n;
  T* vr = ai + n;
  T* vi = vr + m;
  T* neg_vi = vi + m;
  T* re = neg_vi + m;
  T* im = re + out_len;
  for (index_t i = 0; i < n; ++i) {
    ar[i] = a[i].real();
    ai[i] = a[i].imag();
  }
  const T sign = conjugate_v ? T(-1) : T(1);
  for (index_t j = 0; j < m; ++j) {
    vr[j] = v[j].real();
    vi[j] = sign * v[j].imag();
    neg_vi[j] = -vi[j];
  }
  const T* sig[2] = {ar, ai};
  const T* re_taps[2] = {vr, neg_vi};
  const T* im_taps[2] = {vi, vr};
  correlate_planes<T, MulAddTag, 2>(sig, n, re_taps, m, re, out_len, left, num_threads);
  correlate_planes<T, MulAddTag, 2>(sig, n, im_taps, m, im, out_len, left, num_threads);
  for (index_t o = 0; o < out_len; ++o) out[o] = std::complex<T>(re[o], im[o]);
}

#define DEEPRET_INSTANTIATE_REAL(T)                                                         \
  template void correlate1d<T>(const T*, index_t, const T*, index_t, T*, index_t, index_t, \
                               int);
DEEPRET_INSTANTIATE_REAL(float)
DEEPRET_INSTANTIATE_REAL(double)
DEEPRET_INSTANTIATE_REAL(long double)
DEEPRET_INSTANTIATE_REAL(std::uint8_t)
DEEPRET_INSTANTIATE_REAL(std::uint16_t)
DEEPRET_INSTANTIATE_REAL(std::uint32_t)
DEEPRET_INSTANTIATE_REAL(std::uint64_t)
#undef DEEPRET_INSTANTIATE_REAL

#define DEEPRET_INSTANTIATE_COMPLEX(T)                                                       \
  template void correlate1d_complex<T>(const std::complex<T>*, index_t, const std::complex<T>*, \
                                       index_t, std::complex<T>*, index_t, index_t, bool, int);
DEEPRET_INSTANTIATE_COMPLEX(float)
DEEPRET_INSTANTIATE_COMPLEX(double)
DEEPRET_INSTANTIATE_COMPLEX(long double)
#undef DEEPRET_INSTANTIATE_COMPLEX

}  // namespace deepret::conv
