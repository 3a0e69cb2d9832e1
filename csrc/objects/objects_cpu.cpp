// CPU object saliency, weighted pooling, CroW weights, segment reductions,
// the same-image neighbour filter and the checked load of activations:
// parallel over images (rows); the OS maps' dot products and the load are
// the SIMD kernels of objects_simd.h (float32 sums of 64 rows, then double),
// the rest plain loops with double accumulation.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/parallel.h"
#include "common/simd.h"
#include "common/value_checks.h"
#include "objects/objects.h"

#define DEEPRET_SIMD_NS portable
#define DEEPRET_VBYTES 16
#include "objects/objects_simd.h"
#undef DEEPRET_SIMD_NS
#undef DEEPRET_VBYTES

namespace deepret::objects {

#if defined(DEEPRET_X86)
namespace avx2 {  // objects_cpu_avx2.cpp, compiled with -mavx2 -mfma -mf16c
#include "objects/objects_kernels.inc"
}  // namespace avx2
namespace avx512 {  // objects_cpu_avx512.cpp, compiled with -mavx512f
#include "objects/objects_kernels.inc"
}  // namespace avx512
#endif

namespace {

// dot[r, t] += <v_r, a[:, t]>, sq[t] += |a[:, t]|^2 for one map, on the
// instruction set in use (objects_simd.h); double maps take a plain loop.
void region_dots(const float* a, index_t c, index_t hw, const float* const* v, index_t nr, double* dot,
                 double* sq, float* block) {
#if defined(DEEPRET_X86)
  if (use_avx512f()) return avx512::run_region_dots(a, c, hw, v, nr, dot, sq, block);
  if (use_avx2_fma()) return avx2::run_region_dots(a, c, hw, v, nr, dot, sq, block);
#endif
  portable::region_dots(a, c, hw, v, nr, dot, sq, block);
}

void region_dots(const double* a, index_t c, index_t hw, const float* const* v, index_t nr, double* dot,
                 double* sq, float*) {
  for (index_t j = 0; j < c; ++j) {
    const double* row = a + j * hw;
    for (index_t t = 0; t < hw; ++t) sq[t] += row[t] * row[t];
    for (index_t r = 0; r < nr; ++r) {
      const double vj = v[r][j];
      double* d = dot + r * hw;
      for (index_t t = 0; t < hw; ++t) d[t] += vj * row[t];
    }
  }
}

constexpr double kNormEps = 1e-6;  // as pool/: v / (||v|| + 1e-6)

void check_offsets(const std::int64_t* offsets, index_t b, index_t k) {
  check(offsets[0] == 0 && offsets[b] == k, "offsets must run from 0 to the number of regions " +
                                                std::to_string(k));
  for (index_t m = 0; m < b; ++m)
    check(offsets[m] <= offsets[m + 1], "offsets must be non-decreasing (map " + std::to_string(m) + ")");
}

}  // namespace

template <class T>
void object_saliency(const T* a, const T* fs, index_t b, index_t c, index_t h, index_t w, const float* desc,
                     const double* boxes, const double* weight, const std::int64_t* offsets, index_t k,
                     bool box_cover, T* out, int num_threads, bool check_input) {
  const index_t hw = h * w;
  if (check_input) check_values(a, b * c * hw, "a", true, num_threads);
  check_values(fs, b * hw, "fs", true, num_threads);
  check_values(desc, k * c, "descriptors", false, num_threads);
  check_values(weight, k, "weights", false, num_threads);
  check_offsets(offsets, b, k);
  // One pass over the channels per map (region_dots) gives the squared
  // norms and every region's dot products at every pixel; boxes select the
  // pixels afterwards.
  parallel_for(0, b, 1, num_threads, [&](index_t lo, index_t hi) {
    std::vector<double> sq(hw), dot, acc(hw);
    std::vector<float> block;
    std::vector<const float*> v;
    for (index_t m = lo; m < hi; ++m) {
      checkpoint();  // Ctrl-C between images
      const T* img = a + m * c * hw;
      const index_t r0 = offsets[m], nr = offsets[m + 1] - offsets[m];
      dot.assign(static_cast<size_t>(nr * hw), 0.0);
      std::fill(sq.begin(), sq.end(), 0.0);
      v.resize(static_cast<size_t>(nr));
      for (index_t r = 0; r < nr; ++r) v[r] = desc + (r0 + r) * c;
      block.resize(static_cast<size_t>((nr + 1) * hw));
      region_dots(img, c, hw, v.data(), nr, dot.data(), sq.data(), block.data());
      std::fill(acc.begin(), acc.end(), 0.0);
      for (index_t r = 0; r < nr; ++r) {
        index_t y0 = 0, y1 = h - 1, x0 = 0, x1 = w - 1;
        if (box_cover) {
          const double* bx = boxes + 4 * (r0 + r);
          y0 = std::max<index_t>(0, static_cast<index_t>(std::ceil(bx[0])));
          x0 = std::max<index_t>(0, static_cast<index_t>(std::ceil(bx[1])));
          y1 = std::min<index_t>(h - 1, static_cast<index_t>(std::floor(bx[2])));
          x1 = std::min<index_t>(w - 1, static_cast<index_t>(std::floor(bx[3])));
        }
        const double wr = weight[r0 + r];
        const double* d = dot.data() + r * hw;
        for (index_t y = y0; y <= y1; ++y)
          for (index_t x = x0; x <= x1; ++x) {
            const index_t t = y * w + x;
            if (sq[t] > 0) acc[t] += wr * std::max(0.0, d[t] / std::sqrt(sq[t]));
          }
      }
      for (index_t t = 0; t < hw; ++t) out[m * hw + t] = static_cast<T>(double(fs[m * hw + t]) * acc[t]);
    }
  });
}

template <class T>
void weighted_pool(const T* a, const T* s, const T* cw, index_t b, index_t c, index_t hw, bool normalize,
                   T* out, int num_threads) {
  check_values(a, b * c * hw, "a", false, num_threads);
  check_values(s, b * hw, "weights", false, num_threads);
  if (cw) check_values(cw, b * c, "channel_weights", false, num_threads);
  parallel_for(0, b, 1, num_threads, [&](index_t lo, index_t hi) {
    std::vector<double> v(c);
    for (index_t m = lo; m < hi; ++m) {
      checkpoint();
      const T* img = a + m * c * hw;
      const T* sm = s + m * hw;
      double ss = 0.0;
      for (index_t j = 0; j < c; ++j) {
        double acc = 0.0;
        const T* ch = img + j * hw;
        for (index_t t = 0; t < hw; ++t) acc += double(sm[t]) * double(ch[t]);
        v[j] = cw ? acc * double(cw[m * c + j]) : acc;
        ss += v[j] * v[j];
      }
      const double scale = normalize ? 1.0 / (std::sqrt(ss) + kNormEps) : 1.0;
      for (index_t j = 0; j < c; ++j) out[m * c + j] = static_cast<T>(v[j] * scale);
    }
  });
}

template <class T>
void crow_weights(const T* a, index_t b, index_t c, index_t hw, double eps, T* spatial, T* channel,
                  int num_threads) {
  check_values(a, b * c * hw, "a", true, num_threads);
  parallel_for(0, b, 1, num_threads, [&](index_t lo, index_t hi) {
    std::vector<double> sum(hw), q(c);
    for (index_t m = lo; m < hi; ++m) {
      checkpoint();
      const T* img = a + m * c * hw;
      std::fill(sum.begin(), sum.end(), 0.0);
      double qsum = 0.0;
      for (index_t j = 0; j < c; ++j) {
        const T* ch = img + j * hw;
        index_t nz = 0;
        for (index_t t = 0; t < hw; ++t) {
          sum[t] += double(ch[t]);
          nz += ch[t] != T(0);
        }
        q[j] = hw > 0 ? double(nz) / double(hw) : 0.0;
        qsum += q[j] + eps;
      }
      double ss = 0.0;
      for (index_t t = 0; t < hw; ++t) ss += sum[t] * sum[t];
      const double norm = std::sqrt(ss);
      for (index_t t = 0; t < hw; ++t)
        spatial[m * hw + t] = static_cast<T>(norm > 0 ? std::sqrt(sum[t] / norm) : 0.0);
      for (index_t j = 0; j < c; ++j) channel[m * c + j] = static_cast<T>(std::log(qsum / (q[j] + eps)));
    }
  });
}

template <class T>
void segment_reduce(const T* x, const double* wt, const std::int64_t* offsets, index_t n, index_t d, index_t b,
                    Reduce op, bool normalize, T* out, int num_threads) {
  check_offsets(offsets, b, n);
  parallel_for(0, b, 4, num_threads, [&](index_t lo, index_t hi) {
    std::vector<double> v(d);
    for (index_t m = lo; m < hi; ++m) {
      checkpoint();
      std::fill(v.begin(), v.end(), op == Reduce::Sum ? 0.0 : -INFINITY);
      for (index_t r = offsets[m]; r < offsets[m + 1]; ++r) {
        const double wr = wt ? wt[r] : 1.0;
        const T* row = x + r * d;
        if (op == Reduce::Sum)
          for (index_t j = 0; j < d; ++j) v[j] += wr * double(row[j]);
        else
          for (index_t j = 0; j < d; ++j) v[j] = std::max(v[j], wr * double(row[j]));
      }
      double scale = 1.0;
      if (normalize && op == Reduce::Sum) {
        double ss = 0.0;
        for (index_t j = 0; j < d; ++j) ss += v[j] * v[j];
        scale = 1.0 / (std::sqrt(ss) + kNormEps);
      }
      for (index_t j = 0; j < d; ++j) out[m * d + j] = static_cast<T>(v[j] * scale);
    }
  });
}

template <class T>
void drop_same_group(const T* scores, const std::int64_t* ids, const std::int64_t* group, index_t n, index_t kk,
                     index_t k, T* out_scores, std::int64_t* out_ids, int num_threads) {
  for (index_t t = 0; t < n * kk; ++t)
    check(ids[t] >= -1 && ids[t] < n, "neighbour ids must lie in [-1, n), got " + std::to_string(ids[t]));
  parallel_for(0, n, 256, num_threads, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      index_t kept = 0;
      for (index_t t = 0; t < kk && kept < k; ++t) {
        const std::int64_t j = ids[i * kk + t];
        if (j < 0 || group[j] == group[i]) continue;
        out_scores[i * k + kept] = scores[i * kk + t];
        out_ids[i * k + kept] = j;
        ++kept;
      }
      for (; kept < k; ++kept) {
        out_scores[i * k + kept] = T(0);
        out_ids[i * k + kept] = -1;
      }
    }
  });
}

namespace {

// Runs body(b0, b1, &lo, &hi) over blocks of kWidenBlock values in parallel
// and combines the blocks' ranges (NaN wins) into *lo / *hi.
constexpr index_t kWidenBlock = index_t(1) << 16;

template <class Body>
void widen_blocks(index_t n, int num_threads, float* lo, float* hi, Body body) {
  const index_t blocks = (n + kWidenBlock - 1) / kWidenBlock;
  std::vector<float> los(static_cast<size_t>(blocks), INFINITY), his(static_cast<size_t>(blocks), -INFINITY);
  parallel_for(0, blocks, 1, num_threads, [&](index_t b0, index_t b1) {
    for (index_t blk = b0; blk < b1; ++blk)
      body(blk * kWidenBlock, std::min(n, (blk + 1) * kWidenBlock), &los[blk], &his[blk]);
  });
  float l = INFINITY, h = -INFINITY;
  bool nan = false;
  for (index_t blk = 0; blk < blocks; ++blk) {
    nan = nan || std::isnan(los[blk]) || std::isnan(his[blk]);
    l = std::min(l, los[blk]);
    h = std::max(h, his[blk]);
  }
  *lo = nan ? NAN : l;
  *hi = nan ? NAN : h;
}

}  // namespace

void half_to_float(const std::uint16_t* in, index_t n, float* out, float* lo, float* hi, int num_threads) {
  widen_blocks(n, num_threads, lo, hi, [&](index_t b0, index_t b1, float* l, float* h) {
#if defined(DEEPRET_X86)
    if (use_avx512f()) return avx512::run_half_range(in + b0, b1 - b0, out + b0, l, h);
    if (use_avx2_fma()) return avx2::run_half_range(in + b0, b1 - b0, out + b0, l, h);
#endif
    portable::half_range(in + b0, b1 - b0, out + b0, l, h);
  });
}

void copy_float(const float* in, index_t n, float* out, float* lo, float* hi, int num_threads) {
  widen_blocks(n, num_threads, lo, hi, [&](index_t b0, index_t b1, float* l, float* h) {
#if defined(DEEPRET_X86)
    if (use_avx512f()) return avx512::run_float_range(in + b0, b1 - b0, out + b0, l, h);
    if (use_avx2_fma()) return avx2::run_float_range(in + b0, b1 - b0, out + b0, l, h);
#endif
    portable::float_range(in + b0, b1 - b0, out + b0, l, h);
  });
}

#define DEEPRET_INSTANTIATE(T)                                                                               \
  template void object_saliency<T>(const T*, const T*, index_t, index_t, index_t, index_t, const float*,     \
                                   const double*, const double*, const std::int64_t*, index_t, bool, T*, int, \
                                   bool);                                                                    \
  template void weighted_pool<T>(const T*, const T*, const T*, index_t, index_t, index_t, bool, T*, int);    \
  template void crow_weights<T>(const T*, index_t, index_t, index_t, double, T*, T*, int);                   \
  template void segment_reduce<T>(const T*, const double*, const std::int64_t*, index_t, index_t, index_t,   \
                                  Reduce, bool, T*, int);                                                    \
  template void drop_same_group<T>(const T*, const std::int64_t*, const std::int64_t*, index_t, index_t,     \
                                   index_t, T*, std::int64_t*, int);
DEEPRET_INSTANTIATE(float)
DEEPRET_INSTANTIATE(double)
#undef DEEPRET_INSTANTIATE

}  // namespace deepret::objects
