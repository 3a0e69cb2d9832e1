// CPU object saliency, weighted pooling, CroW weights, segment reductions and
// the same-image neighbour filter: plain loops, parallel over images (rows),
// double accumulation.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/parallel.h"
#include "common/value_checks.h"
#include "objects/objects.h"

namespace deepret::objects {

namespace {

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
                     bool box_cover, T* out, int num_threads) {
  const index_t hw = h * w;
  check_values(a, b * c * hw, "a", true, num_threads);
  check_values(fs, b * hw, "fs", true, num_threads);
  check_values(desc, k * c, "descriptors", false, num_threads);
  check_values(weight, k, "weights", false, num_threads);
  check_offsets(offsets, b, k);
  // One pass over the channels per map: each channel row (contiguous over
  // the h * w pixels) updates the squared norms and every region's dot
  // products at every pixel; boxes select the pixels afterwards.
  parallel_for(0, b, 1, num_threads, [&](index_t lo, index_t hi) {
    std::vector<double> sq(hw), dot, acc(hw), row(hw);
    for (index_t m = lo; m < hi; ++m) {
      checkpoint();  // Ctrl-C between images
      const T* img = a + m * c * hw;
      const index_t r0 = offsets[m], nr = offsets[m + 1] - offsets[m];
      dot.assign(static_cast<size_t>(nr * hw), 0.0);
      std::fill(sq.begin(), sq.end(), 0.0);
      for (index_t j = 0; j < c; ++j) {
        const T* ch = img + j * hw;
        for (index_t t = 0; t < hw; ++t) {
          row[t] = double(ch[t]);
          sq[t] += row[t] * row[t];
        }
        for (index_t r = 0; r < nr; ++r) {
          const double vj = desc[(r0 + r) * c + j];
          if (vj == 0.0) continue;
          double* d = dot.data() + r * hw;
          for (index_t t = 0; t < hw; ++t) d[t] += vj * row[t];
        }
      }
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

float half_value(std::uint16_t h) {
  const int sign = h >> 15, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  double v;
  if (exponent == 0)
    v = std::ldexp(double(mantissa), -24);  // zero and subnormals
  else if (exponent == 31)
    v = mantissa ? NAN : INFINITY;
  else
    v = std::ldexp(double(mantissa | 0x400), exponent - 25);
  return static_cast<float>(sign ? -v : v);
}

const std::vector<float>& half_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (int h = 0; h < 65536; ++h) t[h] = half_value(static_cast<std::uint16_t>(h));
    return t;
  }();
  return table;
}

}  // namespace

void half_to_float(const std::uint16_t* in, index_t n, float* out, int num_threads) {
  const float* table = half_table().data();
  parallel_for(0, n, 1 << 20, num_threads, [&](index_t lo, index_t hi) {
    for (index_t t = lo; t < hi; ++t) out[t] = table[in[t]];
  });
}

#define DEEPRET_INSTANTIATE(T)                                                                               \
  template void object_saliency<T>(const T*, const T*, index_t, index_t, index_t, index_t, const float*,     \
                                   const double*, const double*, const std::int64_t*, index_t, bool, T*, int); \
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
