// CPU driver of conv2d (NCHW, torch.nn.functional.conv2d semantics).
//
// General path: per (image, group) the layer is C[Og, P] = A[Og, K] * B[K, P]
// with K = C/groups * kh * kw and P = oh * ow pixels, B the implicit im2col
// matrix. A (the weights) is packed once into MR-row panels; B is never built
// whole: each task packs a KC x NC tile of it (a few hundred kB, L2-resident)
// straight from the input, with padding, stride and dilation applied, and runs
// the MR x NR register-tiled micro-kernel of conv2d_simd.h over it. Tasks are
// (image, group, pixel tile, output-channel chunk), so one image keeps every
// core busy.
// Depthwise, few-input-channel and pointwise 1x1 layers take the direct
// paths of conv2d_direct_cpu.cpp instead.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/buffer.h"
#include "common/errors.h"
#include "common/parallel.h"
#include "common/simd.h"
#include "conv/conv2d.h"
#include "conv/conv2d_direct.h"

#define DEEPRET_SIMD_NS portable
#define DEEPRET_VBYTES 16
#include "conv/conv2d_simd.h"
#undef DEEPRET_SIMD_NS
#undef DEEPRET_VBYTES

namespace deepret::conv {

#if defined(DEEPRET_X86)
namespace avx2 {
// Instantiated in conv2d_cpu_avx2.cpp, compiled with -mavx2 -mfma.
template <class T>
void gemm_tile(index_t kc, const T* a, const T* b, T* c, index_t ldc, int rows, int cols,
               bool accumulate, const T* init);
}  // namespace avx2
namespace avx512 {
// Instantiated in conv2d_cpu_avx512.cpp, compiled with -mavx512f.
template <class T>
void gemm_tile(index_t kc, const T* a, const T* b, T* c, index_t ldc, int rows, int cols,
               bool accumulate, const T* init);
}  // namespace avx512
// The AVX-512 register tile (conv2d_simd.h with 64-byte vectors): 8 x 3 vectors.
constexpr int kAvx512MR = 8;
template <class T>
constexpr int avx512_nr() {
  return 3 * int(64 / sizeof(T));
}
#endif

void check_conv2d_shape(const Conv2dShape& s) {
  check(s.n >= 0 && s.c >= 0 && s.h >= 0 && s.w >= 0 && s.o >= 0 && s.kh >= 0 && s.kw >= 0 &&
            s.oh >= 0 && s.ow >= 0,
        "conv2d: shapes must be non-negative");
  check(s.sh >= 1 && s.sw >= 1, "conv2d: stride must be positive");
  check(s.dh >= 1 && s.dw >= 1, "conv2d: dilation must be positive");
  check(s.ph >= 0 && s.pw >= 0, "conv2d: padding must be non-negative");
  check(s.groups >= 1 && s.c % s.groups == 0 && s.o % s.groups == 0,
        "conv2d: groups must divide the input and output channels");
}

namespace {

constexpr index_t kKC = 128;     // reduction steps per packed tile
constexpr index_t kStrips = 12;  // most NR-wide pixel strips per tile
constexpr index_t kTileBytes = 256 * 1024;  // C tile (og x tile pixels) kept in L2

// Per-thread scratch kept between calls: a fresh multi-MB buffer costs about
// 1 ms per MB in first-touch page faults here, more than a small layer itself.
// Slot 0: packed weights (calling thread), slot 1: B tiles (every worker,
// at most kKC x kStrips x NR values). Packed weights above kKeptWeightBytes
// are freed when their call ends: a layer that large computes for far longer
// than its pages take to fault in, and its memory should not stay pinned to
// every Python thread that ever called.
constexpr std::size_t kKeptWeightBytes = std::size_t(32) << 20;

template <class T>
Scratch<T>& scratch_buffer(int slot) {
  thread_local Scratch<T> buffers[2];
  return buffers[slot];
}

template <class T>
T* scratch(int slot, std::size_t count) {
  Scratch<T>& buffer = scratch_buffer<T>(slot);
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

template <class T>
using TileFn = void (*)(index_t, const T*, const T*, T*, index_t, int, int, bool, const T*);

// Pack B[k0 : k0 + kc, p0 : p0 + strips * nr] of one (image, group) as
// [strip][kc][nr]; pixels >= P and taps outside the input are zero. `taps`
// is scratch for kc entries (the reduction index decoded once per tile).
struct Tap {
  index_t plane, oy, ox;  // offset of the channel plane; tap offsets in the padded frame
};

template <class T>
void pack_b(const T* planes,  // [c / groups, h, w]: the group's input channels
            const Conv2dShape& s, index_t p0, index_t strips, int nr, index_t k0, index_t kc,
            Tap* taps,        // [kc] scratch
            T* panel) {       // [strips, kc, nr]
  const index_t hw = s.h * s.w, P = s.oh * s.ow, khw = s.kh * s.kw;
  for (index_t kk = 0; kk < kc; ++kk) {
    const index_t k = k0 + kk, c = k / khw, j = (k / s.kw) % s.kh, jk = k % s.kw;
    taps[kk] = Tap{c * hw, j * s.dh - s.ph, jk * s.dw - s.pw};
  }
  // Range of the tap offsets in this k range.
  index_t lo_oy = taps[0].oy, hi_oy = taps[0].oy, lo_ox = taps[0].ox, hi_ox = taps[0].ox;
  for (index_t kk = 1; kk < kc; ++kk) {
    lo_oy = std::min(lo_oy, taps[kk].oy);
    hi_oy = std::max(hi_oy, taps[kk].oy);
    lo_ox = std::min(lo_ox, taps[kk].ox);
    hi_ox = std::max(hi_ox, taps[kk].ox);
  }
  // A strip's nr pixels as runs along output rows: (first lane, lanes, y, x).
  struct Run {
    int q0, len;
    index_t y, x;
  };
  Run runs[64];
  index_t y = p0 / s.ow, x = p0 % s.ow;
  for (index_t st = 0; st < strips; ++st) {
    const index_t pa = p0 + st * nr;
    const int valid = static_cast<int>(std::clamp<index_t>(P - pa, 0, nr));
    int count = 0;
    for (int q = 0; q < valid;) {
      const int len = static_cast<int>(std::min<index_t>(valid - q, s.ow - x));
      runs[count++] = Run{q, len, y, x};
      q += len;
      x += len;
      if (x == s.ow) {
        x = 0;
        ++y;
      }
    }
    T* dst = panel + st * kc * nr;
    // Runs whose every tap of this k range lies inside the input (most of
    // them) copy without per-tap bounds tests.
    bool inside[64];
    int inside_count = 0;
    for (int r = 0; r < count; ++r) {
      const Run run = runs[r];
      const index_t iy = run.y * s.sh, ix = run.x * s.sw, last = (run.len - 1) * s.sw;
      inside[r] = iy + lo_oy >= 0 && iy + hi_oy < s.h && ix + lo_ox >= 0 && ix + last + hi_ox < s.w;
      inside_count += inside[r];
    }
    for (int r = 0; r < count && inside_count > 0; ++r) {
      if (!inside[r]) continue;
      const Run run = runs[r];
      const T* base = planes + run.y * s.sh * s.w + run.x * s.sw;
      T* d = dst + run.q0;
      for (index_t kk = 0; kk < kc; ++kk, d += nr) {
        const T* src = base + taps[kk].plane + taps[kk].oy * s.w + taps[kk].ox;
        if (s.sw == 1) {
          for (int q = 0; q < run.len; ++q) d[q] = src[q];
        } else {
          for (int q = 0; q < run.len; ++q) d[q] = src[q * s.sw];
        }
      }
    }
    for (index_t kk = 0; kk < kc; ++kk, dst += nr) {
      const Tap t = taps[kk];
      for (int r = 0; r < count; ++r) {
        if (inside[r]) continue;
        const Run run = runs[r];
        T* d = dst + run.q0;
        const index_t iy = run.y * s.sh + t.oy;
        if (iy < 0 || iy >= s.h) {
          std::fill(d, d + run.len, T(0));
          continue;
        }
        const index_t ix0 = run.x * s.sw + t.ox;
        const T* src = planes + t.plane + iy * s.w;
        if (ix0 >= 0 && ix0 + (run.len - 1) * s.sw < s.w) {
          if (s.sw == 1) {
            std::memcpy(d, src + ix0, sizeof(T) * run.len);
          } else {
            for (int q = 0; q < run.len; ++q) d[q] = src[ix0 + q * s.sw];
          }
          continue;
        }
        for (int q = 0; q < run.len; ++q) {
          const index_t ix = ix0 + q * s.sw;
          d[q] = ix >= 0 && ix < s.w ? src[ix] : T(0);
        }
      }
      std::fill(dst + valid, dst + nr, T(0));
    }
  }
}

template <class T>
void conv2d_gemm(const T* input, const T* weight, const T* bias, T* out, const Conv2dShape& s,
                 int num_threads) {
  TileFn<T> tile = &portable::gemm_tile<T>;
  int nr = portable::gemm_nr<T>(), MR = portable::kGemmMR;
#if defined(DEEPRET_X86)
  if (use_avx512f()) {
    tile = &avx512::gemm_tile<T>;
    nr = avx512_nr<T>();
    MR = kAvx512MR;
  } else if (use_avx2_fma()) {
    tile = &avx2::gemm_tile<T>;
    nr = 2 * int(32 / sizeof(T));
  }
#endif
  const index_t G = s.groups, cg = s.c / G, og = s.o / G;
  const index_t K = cg * s.kh * s.kw, P = s.oh * s.ow;
  const index_t ob_count = (og + MR - 1) / MR;
  const int threads = conv2d_threads(num_threads, 2 * s.n * s.o * K * P);
  // Weights as [group][o block][K][MR], zero rows past og.
  struct Trim {  // also when the call fails or is interrupted
    ~Trim() { release_if_larger(scratch_buffer<T>(0), kKeptWeightBytes); }
  } trim;
  T* a_pack = scratch<T>(0, static_cast<std::size_t>(G * ob_count * K * MR));
  parallel_for<8>(0, G * ob_count, 1, threads, [&](index_t lo, index_t hi) {
    for (index_t gb = lo; gb < hi; ++gb) {
      const index_t g = gb / ob_count, ob = gb % ob_count;
      T* dst = a_pack + gb * K * MR;
      for (int i = 0; i < MR; ++i) {
        const index_t o = ob * MR + i;
        const T* src = o < og ? weight + (g * og + o) * K : nullptr;
        for (index_t k = 0; k < K; ++k) dst[k * MR + i] = src ? src[k] : T(0);
      }
    }
  });
  // Tasks for every thread: narrower pixel tiles first (the packing work stays
  // the same), then output-channel chunks (which pack the same tile twice).
  // The C tile of a task (og x tile pixels) is revisited once per reduction
  // block: keep it in L2 with the packed B and the weights' k slice.
  index_t strips_per_tile = std::clamp<index_t>(
      kTileBytes / std::max<index_t>(1, og * nr * static_cast<index_t>(sizeof(T))), 2, kStrips);
  const index_t all_strips = (P + nr - 1) / nr;
  while (strips_per_tile > 2 &&
         s.n * G * ((all_strips + strips_per_tile - 1) / strips_per_tile) < 4 * threads)
    --strips_per_tile;
  const index_t nc = nr * strips_per_tile;
  const index_t p_tiles = (P + nc - 1) / nc;
  const index_t base_tasks = s.n * G * p_tiles;
  const index_t o_chunks =
      std::clamp<index_t>((4 * threads + base_tasks - 1) / base_tasks, 1, ob_count);
  const index_t tasks = base_tasks * o_chunks;
  parallel_for<8>(0, tasks, 1, threads, [&](index_t lo, index_t hi) {
    const index_t used_strips = std::min(nc, P + nr - 1) / nr;
    T* panel = scratch<T>(1, static_cast<std::size_t>(std::min(kKC, K) * used_strips * nr));
    thread_local std::vector<Tap> taps(static_cast<std::size_t>(kKC));
    for (index_t t = lo; t < hi; ++t) {
      if (t > lo) checkpoint();  // a chunk of a large layer holds many tasks
      const index_t oc = t % o_chunks, pt = (t / o_chunks) % p_tiles, bg = t / (o_chunks * p_tiles);
      const index_t b = bg / G, g = bg % G;
      const index_t ob0 = ob_count * oc / o_chunks, ob1 = ob_count * (oc + 1) / o_chunks;
      const index_t p0 = pt * nc, width = std::min(nc, P - p0);
      const index_t strips = (width + nr - 1) / nr;
      const T* planes = input + (b * s.c + g * cg) * s.h * s.w;
      for (index_t k0 = 0; k0 < K; k0 += kKC) {
        const index_t kc = std::min(kKC, K - k0);
        pack_b(planes, s, p0, strips, nr, k0, kc, taps.data(), panel);
        // A strip of B (kc x nr) stays in L1 while the weight panels stream by.
        for (index_t st = 0; st < strips; ++st) {
          const int cols = static_cast<int>(std::min<index_t>(nr, width - st * nr));
          for (index_t ob = ob0; ob < ob1; ++ob) {
            const int rows = static_cast<int>(std::min<index_t>(MR, og - ob * MR));
            const T* a = a_pack + ((g * ob_count + ob) * K + k0) * MR;
            const index_t o = g * og + ob * MR;
            const T* init = bias ? bias + o : nullptr;
            T* c = out + (b * s.o + o) * P + p0 + st * nr;
            tile(kc, a, panel + st * kc * nr, c, P, rows, cols, k0 > 0, init);
          }
        }
      }
    }
  });
}

}  // namespace

template <class T>
void conv2d(const T* input, const T* weight, const T* bias, T* out, const Conv2dShape& s,
            int num_threads) {
  check_conv2d_shape(s);
  const index_t total = s.n * s.o * s.oh * s.ow;
  if (total == 0) return;
  const index_t K = (s.c / s.groups) * s.kh * s.kw;
  if (K == 0) {  // empty sums: the bias alone
    for (index_t i = 0; i < total; ++i) out[i] = bias ? bias[(i / (s.oh * s.ow)) % s.o] : T(0);
    return;
  }
  if (conv2d_direct_applies(s)) return conv2d_direct(input, weight, bias, out, s, num_threads);
  conv2d_gemm(input, weight, bias, out, s, num_threads);
}

template void conv2d<float>(const float*, const float*, const float*, float*, const Conv2dShape&, int);
template void conv2d<double>(const double*, const double*, const double*, double*, const Conv2dShape&,
                             int);

}  // namespace deepret::conv
