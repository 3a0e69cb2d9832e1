// CPU driver of conv2d's direct paths (see conv2d_direct.h for which layers).
//
// The layers of mobile networks do little arithmetic per input element: a
// depthwise 3x3 does 9 multiply-adds per input pixel (2.25 at stride 2), a
// 3-channel stem 27 per output pixel and channel. An im2col panel copies each
// input element kh * kw times for that, and on these layers the copy, not the
// arithmetic, set the time. Here each task copies the input rows it reads
// once, zero-padded and split by stride phase (phase r of a padded row holds
// its columns r, r + sw, r + 2 sw, ...), so that every tap of the kernel is
// one contiguous run of the copy: tap (j, kx) of output pixel x is element
// x + (kx * dw) / sw of phase (kx * dw) % sw of padded row y * sh + j * dh.
// The register tiles (conv2d_direct_simd.h) then read B in place through one
// offset per tap. Pointwise 1x1 layers need no copy at all: row k of B is
// input channel k.
#include <algorithm>
#include <cstring>

#include "common/buffer.h"
#include "common/errors.h"
#include "common/parallel.h"
#include "common/simd.h"
#include "conv/conv2d_direct.h"

#define DEEPRET_SIMD_NS portable
#define DEEPRET_VBYTES 16
#include "conv/conv2d_direct_simd.h"
#undef DEEPRET_SIMD_NS
#undef DEEPRET_VBYTES

namespace deepret::conv {

#if defined(DEEPRET_X86)
namespace avx2 {
// Instantiated in conv2d_direct_cpu_avx2.cpp, compiled with -mavx2 -mfma.
template <class T>
direct::DirectKernels<T> direct_kernels();
}  // namespace avx2
namespace avx512 {
// Instantiated in conv2d_direct_cpu_avx512.cpp, compiled with -mavx512f.
template <class T>
direct::DirectKernels<T> direct_kernels();
}  // namespace avx512
#endif

int conv2d_threads(int num_threads, index_t flops) {
  const index_t useful = std::max<index_t>(1, flops / 1000000);
  return static_cast<int>(std::min<index_t>(resolve_threads(num_threads), useful));
}

bool conv2d_direct_applies(const Conv2dShape& s) {
  const index_t cg = s.c / s.groups;
  if (cg == 1) return true;                                             // depthwise
  if (s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0)  // pointwise
    return true;
  return cg <= 4 && cg * s.kh * s.kw <= 512;                            // stems
}

namespace {

using direct::DirectKernels;

template <class T>
const DirectKernels<T>& kernels() {
#if defined(DEEPRET_X86)
  if (use_avx512f()) {
    static const DirectKernels<T> k = avx512::direct_kernels<T>();
    return k;
  }
  if (use_avx2_fma()) {
    static const DirectKernels<T> k = avx2::direct_kernels<T>();
    return k;
  }
#endif
  static const DirectKernels<T> k = portable::direct_kernels<T>();
  return k;
}

// A task's copy of its input rows is kept near this size (L1/L2 resident
// while the tiles read it back).
constexpr index_t kBandBytes = 48 * 1024;
constexpr index_t kPointwiseKC = 256;  // reduction steps per pointwise tile call

index_t round_up(index_t x, index_t m) { return (x + m - 1) / m * m; }

// Per-thread scratch kept between calls (slot 0: row copies, 1: tail strips).
template <class T>
T* scratch(int slot, std::size_t count) {
  thread_local Scratch<T> buffers[2];
  Scratch<T>& buffer = buffers[slot];
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

// The row copies of one layer: every padded row is `pitch` = sw * phase_len
// elements, phase p at p * phase_len, its element i padded column i * sw + p
// (input column i * sw + p - left, zero outside the input); phase_len covers
// the widest tile (cols output pixels, rounded up) plus the furthest tap,
// and at strides 1 and 2 the whole input row, its phases rounded up to
// vectors (copy_rows writes whole vectors there).
struct Rows {
  index_t sw, phase_len, pitch, top, left;

  static index_t length(const Conv2dShape& s, index_t cols, index_t lanes) {
    const index_t taps = cols + ((s.kw - 1) * s.dw) / s.sw;
    if (s.sw == 1) return std::max(taps, s.pw + round_up(s.w, lanes));
    if (s.sw == 2) return std::max(taps, s.pw / 2 + 1 + round_up((s.w + 1) / 2, lanes));
    return taps;
  }

  Rows(const Conv2dShape& s, index_t cols, index_t lanes)
      : sw(s.sw), phase_len(length(s, cols, lanes)), pitch(s.sw * phase_len), top(s.ph), left(s.pw) {}

  // Offset of tap (c, j, kx) from output pixel (0, 0) of a copy whose
  // channels lie chan_pitch apart.
  index_t tap(const Conv2dShape& s, index_t c, index_t j, index_t kx, index_t chan_pitch) const {
    return c * chan_pitch + j * s.dh * pitch + ((kx * s.dw) % sw) * phase_len + (kx * s.dw) / sw;
  }
};

// A thread's row copy, reused by its tasks: the padding is zeroed again only
// when the rows that fall outside the input change (the first and last bands
// of a plane); otherwise a task rewrites only the input part (copy_rows).
template <class T>
struct RowCopy {
  T* data;
  index_t size;  // elements
  index_t lead = -1, valid = -1, rows_used = -1;  // the zero pattern now in data

  // readable: elements of the input from plane on.
  void prepare(const Rows& rows, const DirectKernels<T>& k, const T* plane, index_t h, index_t w,
               index_t readable, index_t first, index_t count, index_t chan, index_t chan_pitch) {
    const index_t new_lead = std::clamp<index_t>(rows.top - first, 0, count);
    const index_t new_valid = std::clamp<index_t>(h + rows.top - first, 0, count) - new_lead;
    if (new_lead != lead || new_valid != valid || count != rows_used) {
      std::fill(data, data + size, T(0));
      lead = new_lead;
      valid = new_valid;
      rows_used = count;
    }
    k.copy_rows(plane, h, w, readable, rows.top, rows.left, rows.sw, rows.phase_len, first, count,
                data + chan * chan_pitch);
  }
};

// The tile family for `rows` output channels by `width` pixels (pointwise:
// all of P; stems: one output row): the one that leaves the fewest lanes
// idle, narrow tiles weighted by their lower speed. MobileNet/EfficientNet
// channel counts are multiples of 8 and their rows of pixels of 7 or 16,
// which the 4-row family with 24-pixel tiles covers without idle lanes.
struct Tiling {
  int family;
  index_t mr, nr;  // rows and pixels of the widest tile
};

// Speed of a tile with this many accumulators relative to the widest ones
// (measured on a Zen 3 core, data in L1: FMA latency needs 8 or more).
double tile_speed(index_t accumulators) {
  return accumulators >= 12 ? 1.0 : accumulators >= 8 ? 0.85 : accumulators >= 6 ? 0.75 : 0.55;
}

template <class T>
Tiling choose_tiling(const DirectKernels<T>& k, index_t rows, index_t width, bool dot_rest) {
  const index_t L = k.lanes;
  Tiling best{0, 0, 0};
  double best_cost = 0;
  for (int f = 0; f < direct::kFamilies; ++f) {
    const direct::DirectFamily<T>& fam = k.family[f];
    const index_t mr = fam.mr, nr = fam.max_nv * L, rest = width % nr;
    double cols = double(width / nr * nr) / tile_speed(mr * fam.max_nv);
    if (rest > 0 && dot_rest && rest <= direct::kDotColumns) {
      cols += double(rest) / 0.7;  // dot products along k: about 70 % of a wide tile
    } else if (rest > 0) {
      const index_t nv = (rest + L - 1) / L;
      cols += double(nv * L) / tile_speed(mr * nv);
    }
    const double cost = double((rows + mr - 1) / mr * mr) * cols;
    if (f == 0 || cost < best_cost) {
      best = Tiling{f, mr, nr};
      best_cost = cost;
    }
  }
  return best;
}

// ------------------------------------------------------------------ depthwise
// Tasks: (image, output channel, band of output rows). Each copies the rows
// of its input plane the band reads, then runs R-row tiles across them.
template <class T>
void depthwise(const T* input, const T* weight, const T* bias, T* out, const Conv2dShape& s,
               int num_threads) {
  const DirectKernels<T>& k = kernels<T>();
  const index_t L = k.lanes, og = s.o / s.groups, P = s.oh * s.ow, taps = s.kh * s.kw;
  const index_t vecs = (s.ow + L - 1) / L;  // vectors per output row
  // Narrow rows: one tile across (shapes 0-3); wide ones: tiles of 4 vectors
  // (shape 3) and one of the rest (shapes 4-6), all of 2 rows.
  const int wide = vecs > 4;
  const int shape = wide ? 3 : static_cast<int>(vecs) - 1;
  const int rest_shape = wide && vecs % 4 ? 3 + static_cast<int>(vecs % 4) : -1;
  const index_t R = direct::kDwShape[shape].rows;
  const int tap_kind = taps == 9 ? 0 : taps == 25 ? 1 : 2;
  const direct::DepthwiseTileFn<T> tile = k.depthwise[shape][tap_kind];
  const direct::DepthwiseTileFn<T> rest = rest_shape >= 0 ? k.depthwise[rest_shape][tap_kind] : nullptr;
  const index_t tile_cols = direct::kDwShape[shape].nv * L;

  const Rows rows(s, vecs * L, L);
  const index_t eh = (s.kh - 1) * s.dh + 1;
  const index_t row_bytes = rows.pitch * static_cast<index_t>(sizeof(T));
  index_t band = std::max<index_t>(1, (kBandBytes / row_bytes - eh) / s.sh + 1);
  band = std::max(R, band / R * R);
  const index_t bands = (s.oh + band - 1) / band;
  band = round_up((s.oh + bands - 1) / bands, R);  // the same work in every band
  const index_t copy_rows = (band - 1) * s.sh + eh;

  Scratch<index_t> offsets(static_cast<std::size_t>(taps));
  for (index_t j = 0; j < s.kh; ++j)
    for (index_t kx = 0; kx < s.kw; ++kx) offsets[j * s.kw + kx] = rows.tap(s, 0, j, kx, 0);
  const index_t row_step = s.sh * rows.pitch;
  const index_t in_size = s.n * s.c * s.h * s.w;

  // A depthwise layer moves about a byte per flop (a GEMM far less): it
  // takes several times longer per flop, and a thread pays off sooner.
  const int threads = conv2d_threads(num_threads, 8 * 2 * s.n * s.o * P * taps);
  parallel_for<8>(0, s.n * s.o * bands, 1, threads, [&](index_t lo, index_t hi) {
    RowCopy<T> copy{scratch<T>(0, static_cast<std::size_t>(copy_rows * rows.pitch)),
                    copy_rows * rows.pitch};
    for (index_t t = lo; t < hi; ++t) {
      if (t > lo) checkpoint();
      const index_t plane = t / bands, y0 = (t % bands) * band, y1 = std::min(s.oh, y0 + band);
      const index_t b = plane / s.o, o = plane % s.o;
      const index_t count = (round_up(y1 - y0, R) - 1) * s.sh + eh;
      const index_t at = (b * s.c + o / og) * s.h * s.w;
      copy.prepare(rows, k, input + at, s.h, s.w, in_size - at, y0 * s.sh, count, 0, 0);
      const T* w = weight + o * taps;
      const T init = bias ? bias[o] : T(0);
      T* y_out = out + plane * P;
      for (index_t y = y0; y < y1; y += R) {
        const int nrows = static_cast<int>(std::min(R, y1 - y));
        const T* src = copy.data + (y - y0) * row_step;
        T* dst = y_out + y * s.ow;
        // One tile across a row: its rows may be stored as whole vectors up
        // to the band's end (the next row is stored after them).
        const index_t room = wide ? 0 : (y1 - y) * s.ow;
        index_t x = 0;
        for (; x + tile_cols <= s.ow || (!rest && x < s.ow); x += tile_cols)
          tile(taps, w, src + x, row_step, offsets.data(), dst + x, s.ow, nrows,
               static_cast<int>(std::min(tile_cols, s.ow - x)), init, room);
        if (rest && x < s.ow)
          rest(taps, w, src + x, row_step, offsets.data(), dst + x, s.ow, nrows,
               static_cast<int>(s.ow - x), init, 0);
      }
    }
  });
}

// ----------------------------------------------------------- few input channels
// Tasks: (image, group, band of output rows). Each copies its band of the
// group's input channels, then for each output row and strip of pixels runs
// the weight blocks over the same B (in L1 after the first).
template <class T>
void few_channels(const T* input, const T* weight, const T* bias, T* out, const Conv2dShape& s,
                  int num_threads) {
  const DirectKernels<T>& k = kernels<T>();
  const index_t L = k.lanes, G = s.groups, cg = s.c / G, og = s.o / G, P = s.oh * s.ow;
  const Tiling tiling = choose_tiling(k, og, s.ow, false);
  const direct::DirectFamily<T>& fam = k.family[tiling.family];
  const index_t MR = tiling.mr, NR = tiling.nr;
  const index_t K = cg * s.kh * s.kw, ob_count = (og + MR - 1) / MR;

  const Rows rows(s, round_up(s.ow, NR), L);
  const index_t eh = (s.kh - 1) * s.dh + 1;
  const index_t row_bytes = cg * rows.pitch * static_cast<index_t>(sizeof(T));
  index_t band = std::max<index_t>(1, (kBandBytes / row_bytes - eh) / s.sh + 1);
  const int threads = conv2d_threads(num_threads, 2 * s.n * s.o * K * P);
  // Enough tasks for every thread on one image.
  band = std::min(band, std::max<index_t>(1, s.oh * s.n * G / (4 * threads)));
  const index_t bands = (s.oh + band - 1) / band;
  band = (s.oh + bands - 1) / bands;
  const index_t copy_rows = (band - 1) * s.sh + eh, chan_pitch = copy_rows * rows.pitch;

  // Weights as [group][o block][K][MR], zero rows past og.
  const index_t in_size = s.n * s.c * s.h * s.w;
  Scratch<T> a_pack(static_cast<std::size_t>(G * ob_count * K * MR));
  for (index_t gb = 0; gb < G * ob_count; ++gb) {
    const index_t g = gb / ob_count, ob = gb % ob_count;
    T* dst = a_pack.data() + gb * K * MR;
    for (index_t i = 0; i < MR; ++i) {
      const index_t o = ob * MR + i;
      for (index_t kk = 0; kk < K; ++kk) dst[kk * MR + i] = o < og ? weight[(g * og + o) * K + kk] : T(0);
    }
  }
  Scratch<index_t> offsets(static_cast<std::size_t>(K));
  for (index_t c = 0; c < cg; ++c)
    for (index_t j = 0; j < s.kh; ++j)
      for (index_t kx = 0; kx < s.kw; ++kx)
        offsets[(c * s.kh + j) * s.kw + kx] = rows.tap(s, c, j, kx, chan_pitch);

  parallel_for<8>(0, s.n * G * bands, 1, threads, [&](index_t lo, index_t hi) {
    RowCopy<T> copy{scratch<T>(0, static_cast<std::size_t>(cg * chan_pitch)), cg * chan_pitch};
    for (index_t t = lo; t < hi; ++t) {
      if (t > lo) checkpoint();
      const index_t bg = t / bands, y0 = (t % bands) * band, y1 = std::min(s.oh, y0 + band);
      const index_t b = bg / G, g = bg % G;
      const index_t count = (y1 - y0 - 1) * s.sh + eh;
      for (index_t c = 0; c < cg; ++c)
      {
        const index_t at = (b * s.c + g * cg + c) * s.h * s.w;
        copy.prepare(rows, k, input + at, s.h, s.w, in_size - at, y0 * s.sh, count, c, chan_pitch);
      }
      for (index_t y = y0; y < y1; ++y) {
        const T* src = copy.data + (y - y0) * s.sh * rows.pitch;
        for (index_t x = 0; x < s.ow; x += NR) {
          const int cols = static_cast<int>(std::min(NR, s.ow - x));
          const direct::DirectTileFn<T> tile = fam.packed[(cols + L - 1) / L - 1];
          for (index_t ob = 0; ob < ob_count; ++ob) {
            const index_t o = g * og + ob * MR;
            tile(K, a_pack.data() + (g * ob_count + ob) * K * MR, MR, src + x, offsets.data(),
                 out + (b * s.o + o) * P + y * s.ow + x, P,
                 static_cast<int>(std::min(MR, og - ob * MR)), cols, false, bias ? bias + o : nullptr, 0);
          }
        }
      }
    }
  });
}

// ------------------------------------------------------------------ pointwise
// Per (image, group) C[og, P] = W[og, cg] * X[cg, P]: A is the weight matrix
// as it is (no packing: on a 7x7 layer each weight is used 49 times, so a
// packed copy would cost as much as the products), B the input channels as
// they are. Tasks: (image, group, block of output channels, block of pixels).
// In a task, each NR-pixel strip of B (kc rows, in L1) meets every weight
// block in turn. A strip that runs past P goes through a zero-padded copy.
template <class T>
void pointwise(const T* input, const T* weight, const T* bias, T* out, const Conv2dShape& s,
               int num_threads) {
  const DirectKernels<T>& k = kernels<T>();
  const index_t L = k.lanes, G = s.groups, K = s.c / G, og = s.o / G, P = s.oh * s.ow;
  const Tiling tiling = choose_tiling(k, og, P, true);
  const direct::DirectFamily<T>& fam = k.family[tiling.family];
  const index_t MR = tiling.mr, NR = tiling.nr;
  const index_t ob_count = (og + MR - 1) / MR, strips = (P + NR - 1) / NR;
  const int threads = conv2d_threads(num_threads, 2 * s.n * s.o * K * P);
  // A task's B (kc x its pixels) stays in L2 while the weight blocks pass.
  const index_t kc_max = std::min(K, kPointwiseKC);
  const index_t strip_cap = std::clamp<index_t>(
      (256 * 1024) / (kc_max * NR * static_cast<index_t>(sizeof(T))), 4, 256);
  index_t ob_per = std::min<index_t>(ob_count, 32), strips_per = std::min<index_t>(strips, strip_cap);
  auto tasks_of = [&] {
    return s.n * G * ((ob_count + ob_per - 1) / ob_per) * ((strips + strips_per - 1) / strips_per);
  };
  while (tasks_of() < 4 * threads) {
    if (strips_per > 4) {
      strips_per = (strips_per + 1) / 2;
    } else if (ob_per > 1) {
      ob_per = (ob_per + 1) / 2;
    } else {
      break;
    }
  }
  const index_t o_chunks = (ob_count + ob_per - 1) / ob_per, p_chunks = (strips + strips_per - 1) / strips_per;
  Scratch<index_t> offsets(static_cast<std::size_t>(2 * kc_max));
  for (index_t kk = 0; kk < kc_max; ++kk) {
    offsets[kk] = kk * P;              // B in place
    offsets[kc_max + kk] = kk * NR;    // the padded copy of a last strip
  }
  parallel_for<8>(0, s.n * G * o_chunks * p_chunks, 1, threads, [&](index_t lo, index_t hi) {
    T* tail = scratch<T>(1, static_cast<std::size_t>(kc_max * NR));
    for (index_t t = lo; t < hi; ++t) {
      if (t > lo) checkpoint();
      const index_t oc = t % o_chunks, pc = (t / o_chunks) % p_chunks, bg = t / (o_chunks * p_chunks);
      const index_t b = bg / G, g = bg % G;
      const index_t ob0 = oc * ob_per, ob1 = std::min(ob_count, ob0 + ob_per);
      const index_t st0 = pc * strips_per, st1 = std::min(strips, st0 + strips_per);
      const T* x = input + (b * s.c + g * K) * P;
      for (index_t k0 = 0; k0 < K; k0 += kc_max) {
        const index_t kc = std::min(kc_max, K - k0);
        // The strip past P, if this task has it: through a zero-padded copy,
        // or for a few pixels a transposed one for the dot-product tile.
        const index_t tail_cols = P % NR;
        const bool dot = tail_cols > 0 && tail_cols <= direct::kDotColumns;
        if (st1 == strips && tail_cols > 0) {
          const T* src = x + k0 * P + (strips - 1) * NR;
          for (index_t kk = 0; kk < kc; ++kk) {
            if (dot) {
              for (index_t q = 0; q < tail_cols; ++q) tail[q * kc + kk] = src[kk * P + q];
            } else {
              std::memcpy(tail + kk * NR, src + kk * P, sizeof(T) * tail_cols);
              std::fill(tail + kk * NR + tail_cols, tail + (kk + 1) * NR, T(0));
            }
          }
        }
        auto run = [&](index_t st, index_t ob) {
          const index_t p0 = st * NR, o = g * og + ob * MR;
          const int cols = static_cast<int>(std::min(NR, P - p0));
          const int rows_here = static_cast<int>(std::min(MR, og - ob * MR));
          const T* init = bias ? bias + o : nullptr;
          T* c = out + (b * s.o + o) * P + p0;
          if (cols < NR && dot)
            return k.dot[cols - 1](kc, weight + o * K + k0, K, tail, c, P, rows_here, k0 > 0, init);
          const bool padded = cols < NR;
          fam.rows[(cols + L - 1) / L - 1](
              kc, weight + o * K + k0, K, padded ? tail : x + k0 * P + p0,
              offsets.data() + (padded ? kc_max : 0), c, P, rows_here, cols, k0 > 0, init, 0);
        };
        if (K <= kc_max) {
          // One reduction block: each output row is written in one sweep, the
          // task's B (kc x its pixels, L2-sized) read once per weight block.
          for (index_t ob = ob0; ob < ob1; ++ob)
            for (index_t st = st0; st < st1; ++st) run(st, ob);
        } else {
          // Several: a strip of B (in L1) meets every weight block in turn, and
          // the C tile is revisited once per block.
          for (index_t st = st0; st < st1; ++st)
            for (index_t ob = ob0; ob < ob1; ++ob) run(st, ob);
        }
      }
    }
  });
}

}  // namespace

template <class T>
void conv2d_direct(const T* input, const T* weight, const T* bias, T* out, const Conv2dShape& s,
                   int num_threads) {
  const index_t cg = s.c / s.groups;
  if (cg == 1) return depthwise(input, weight, bias, out, s, num_threads);
  if (s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0)
    return pointwise(input, weight, bias, out, s, num_threads);
  few_channels(input, weight, bias, out, s, num_threads);
}

template void conv2d_direct<float>(const float*, const float*, const float*, float*, const Conv2dShape&,
                                   int);
template void conv2d_direct<double>(const double*, const double*, const double*, double*,
                                    const Conv2dShape&, int);

}  // namespace deepret::conv
