// CPU feature saliency and pooling: plain loops, parallel over images (or
// regions), double accumulation.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common/buffer.h"
#include "common/errors.h"
#include "common/parallel.h"
#include "common/value_checks.h"
#include "pool/pool.h"

namespace deepret::pool {

namespace {

template <class T>
void l2_normalize(double* v, index_t c, T* out) {
  double ss = 0.0;
  for (index_t j = 0; j < c; ++j) ss += v[j] * v[j];
  const double scale = 1.0 / (std::sqrt(ss) + kNormEps);
  for (index_t j = 0; j < c; ++j) out[j] = static_cast<T>(v[j] * scale);
}

}  // namespace

template <class T>
void feature_saliency(const T* a, index_t b, index_t c, index_t hw, double eps, T* out, int num_threads) {
  check_values(a, b * c * hw, "a", true, num_threads, " (activations after a ReLU)");
  parallel_for(0, b, 1, num_threads, [&](index_t lo, index_t hi) {
    Scratch<double> q(c), f(hw);
    for (index_t i = lo; i < hi; ++i) {
      const T* img = a + i * c * hw;
      double qsum = 0.0;
      for (index_t j = 0; j < c; ++j) {
        index_t nz = 0;
        for (index_t t = 0; t < hw; ++t) nz += img[j * hw + t] != T(0);
        q[j] = hw > 0 ? double(nz) / double(hw) : 0.0;
        qsum += q[j] + eps;
      }
      std::fill(f.begin(), f.end(), 0.0);
      for (index_t j = 0; j < c; ++j) {
        const double bj = std::log(qsum / (q[j] + eps));
        const T* ch = img + j * hw;
        for (index_t t = 0; t < hw; ++t) f[t] += bj * double(ch[t]);
      }
      double ss = 0.0;
      for (index_t t = 0; t < hw; ++t) ss += f[t] * f[t];
      const double norm = std::sqrt(ss);
      for (index_t t = 0; t < hw; ++t)
        out[i * hw + t] = static_cast<T>(norm > 0 ? std::sqrt(f[t] / norm) : 0.0);
    }
  });
}

template <class T>
void global_pool(const T* a, index_t b, index_t c, index_t hw, Global kind, double p, double eps,
                 bool normalize, T* out, int num_threads) {
  check_values(a, b * c * hw, "a", false, num_threads);
  parallel_for(0, b * c, 64, num_threads, [&](index_t lo, index_t hi) {
    for (index_t r = lo; r < hi; ++r) {
      const T* ch = a + r * hw;
      double v;
      if (kind == Global::Mac) {
        v = -INFINITY;
        for (index_t t = 0; t < hw; ++t) v = std::max(v, double(ch[t]));
      } else if (kind == Global::Spoc) {
        v = 0.0;
        for (index_t t = 0; t < hw; ++t) v += double(ch[t]);
      } else {
        // GeM as m (mean of (x/m)^p)^(1/p), m the channel's largest clamped
        // value: the same number, but x^p cannot overflow for a large p
        // (3^647 would be inf in double), and every term lies in (0, 1].
        double m = eps;
        for (index_t t = 0; t < hw; ++t) m = std::max(m, double(ch[t]));
        v = 0.0;
        for (index_t t = 0; t < hw; ++t) v += std::pow(std::max(double(ch[t]), eps) / m, p);
        v = m * std::pow(v / double(hw), 1.0 / p);
      }
      out[r] = static_cast<T>(v);
    }
  });
  if (!normalize) return;
  parallel_for(0, b, 16, num_threads, [&](index_t lo, index_t hi) {
    Scratch<double> v(c);
    for (index_t i = lo; i < hi; ++i) {
      for (index_t j = 0; j < c; ++j) v[j] = double(out[i * c + j]);
      l2_normalize(v.data(), c, out + i * c);
    }
  });
}

template <class T>
void regional_max(const T* a, index_t b, index_t c, index_t h, index_t w, const double* boxes,
                  const std::int64_t* image, index_t k, bool normalize, T* out, int num_threads) {
  check_values(a, b * c * h * w, "a", false, num_threads);
  for (index_t r = 0; r < k; ++r) {
    check(image[r] >= 0 && image[r] < b, "box " + std::to_string(r) + " belongs to image " +
                                             std::to_string(image[r]) + ", outside [0, " + std::to_string(b) + ")");
    index_t y0, y1, x0, x1;
    pixel_range(boxes[4 * r], boxes[4 * r + 2], h, &y0, &y1);
    pixel_range(boxes[4 * r + 1], boxes[4 * r + 3], w, &x0, &x1);
    check(y0 <= y1 && x0 <= x1, "boxes[" + std::to_string(r) + "] holds no pixel centre of the " +
                                    std::to_string(h) + "x" + std::to_string(w) + " map");
  }
  parallel_for(0, k, 4, num_threads, [&](index_t lo, index_t hi) {
    Scratch<double> v(c);
    for (index_t r = lo; r < hi; ++r) {
      index_t y0, y1, x0, x1;
      pixel_range(boxes[4 * r], boxes[4 * r + 2], h, &y0, &y1);
      pixel_range(boxes[4 * r + 1], boxes[4 * r + 3], w, &x0, &x1);
      const T* img = a + image[r] * c * h * w;
      // The maximum in T, not double: the same value (a maximum rounds
      // nothing, and the values were checked finite), and no conversion per
      // value in the loop that reads most of the map.
      for (index_t j = 0; j < c; ++j) {
        T m = -std::numeric_limits<T>::infinity();
        for (index_t y = y0; y <= y1; ++y) {
          const T* row = img + (j * h + y) * w;
          for (index_t x = x0; x <= x1; ++x) m = row[x] > m ? row[x] : m;
        }
        v[j] = double(m);
      }
      if (normalize) {
        l2_normalize(v.data(), c, out + r * c);
      } else {
        for (index_t j = 0; j < c; ++j) out[r * c + j] = static_cast<T>(v[j]);
      }
    }
  });
}

template <class T>
void rmac(const T* a, index_t b, index_t c, index_t h, index_t w, const std::int64_t* regions, index_t r,
          T* out, int num_threads) {
  check_values(a, b * c * h * w, "a", false, num_threads);
  for (index_t q = 0; q < r; ++q) {
    const std::int64_t* g = regions + 4 * q;
    check(0 <= g[0] && g[0] <= g[2] && g[2] < h && 0 <= g[1] && g[1] <= g[3] && g[3] < w,
          "rmac: region " + std::to_string(q) + " is empty or outside the map");
  }
  parallel_for(0, b, 1, num_threads, [&](index_t lo, index_t hi) {
    Scratch<double> v(c), sum(c);
    for (index_t i = lo; i < hi; ++i) {
      const T* img = a + i * c * h * w;
      std::fill(sum.begin(), sum.end(), 0.0);
      for (index_t q = 0; q < r; ++q) {
        const std::int64_t* g = regions + 4 * q;
        double ss = 0.0;
        for (index_t j = 0; j < c; ++j) {
          double m = -INFINITY;
          for (index_t y = g[0]; y <= g[2]; ++y)
            for (index_t x = g[1]; x <= g[3]; ++x) m = std::max(m, double(img[(j * h + y) * w + x]));
          v[j] = m;
          ss += m * m;
        }
        const double scale = 1.0 / (std::sqrt(ss) + kNormEps);
        for (index_t j = 0; j < c; ++j) sum[j] += v[j] * scale;
      }
      l2_normalize(sum.data(), c, out + i * c);
    }
  });
}

#define DEEPRET_INSTANTIATE(T)                                                                      \
  template void feature_saliency<T>(const T*, index_t, index_t, index_t, double, T*, int);          \
  template void global_pool<T>(const T*, index_t, index_t, index_t, Global, double, double, bool,   \
                               T*, int);                                                            \
  template void regional_max<T>(const T*, index_t, index_t, index_t, index_t, const double*,        \
                                const std::int64_t*, index_t, bool, T*, int);                       \
  template void rmac<T>(const T*, index_t, index_t, index_t, index_t, const std::int64_t*, index_t, \
                        T*, int);
DEEPRET_INSTANTIATE(float)
DEEPRET_INSTANTIATE(double)
#undef DEEPRET_INSTANTIATE

}  // namespace deepret::pool
