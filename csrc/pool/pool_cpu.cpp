// CPU feature saliency and pooling: plain loops, parallel over images (or
// groups of regions), double accumulation (feature saliency: float32 sums of
// 64 channels, then double).
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

// Non-zero values of x[0, n), counted in 32-bit lanes (a 64-bit count cost
// four more instructions per vector) over pieces of 2^31 values.
template <class T>
index_t count_nonzero(const T* x, index_t n) {
  index_t total = 0;
  for (index_t lo = 0; lo < n; lo += index_t(1) << 31) {
    const index_t hi = std::min(n, lo + (index_t(1) << 31));
    std::uint32_t nz = 0;
    for (index_t t = lo; t < hi; ++t) nz += x[t] != T(0);
    total += nz;
  }
  return total;
}

}  // namespace

template <class T>
void feature_saliency(const T* a, index_t b, index_t c, index_t hw, double eps, T* out, int num_threads,
                      bool check_input) {
  if (check_input) check_values(a, b * c * hw, "a", true, num_threads, " (activations after a ReLU)");
  // One pass over each map. With b_j = log(Q / (q_j + eps)), Q = sum_j
  // (q_j + eps), the weighted sum splits as sum_j b_j a_j = log(Q) S + U,
  // S = sum_j a_j and U = sum_j -log(q_j + eps) a_j: q_j is known once row j
  // has been read (it is still in L1), Q only at the end. Both terms are sums
  // of non-negative values but for q_j = 1 (-log(1 + eps) ~ -eps), so the
  // split cancels nothing. Rows add into T sums over blocks of kBlock
  // channels (they vectorize in float), the blocks into double.
  constexpr index_t kBlock = 64;
  parallel_for(0, b, 1, num_threads, [&](index_t lo, index_t hi) {
    Scratch<double> s(hw), u(hw);
    Scratch<T> sb(hw), ub(hw);
    for (index_t i = lo; i < hi; ++i) {
      const T* img = a + i * c * hw;
      double qsum = 0.0;
      std::fill(s.begin(), s.end(), 0.0);
      std::fill(u.begin(), u.end(), 0.0);
      for (index_t j0 = 0; j0 < c; j0 += kBlock) {
        std::fill(sb.begin(), sb.end(), T(0));
        std::fill(ub.begin(), ub.end(), T(0));
        T* __restrict ps = sb.data();
        T* __restrict pu = ub.data();
        for (index_t j = j0; j < std::min(c, j0 + kBlock); ++j) {
          const T* __restrict ch = img + j * hw;
          const double q = hw > 0 ? double(count_nonzero(ch, hw)) / double(hw) : 0.0;
          qsum += q + eps;
          const T l = static_cast<T>(-std::log(q + eps));
          for (index_t t = 0; t < hw; ++t) {
            ps[t] += ch[t];
            pu[t] += l * ch[t];
          }
        }
        for (index_t t = 0; t < hw; ++t) {
          s[t] += double(ps[t]);
          u[t] += double(pu[t]);
        }
      }
      const double log_q = std::log(qsum);
      double ss = 0.0;
      for (index_t t = 0; t < hw; ++t) {
        s[t] = log_q * s[t] + u[t];  // the weighted sum f
        ss += s[t] * s[t];
      }
      const double norm = std::sqrt(ss);
      for (index_t t = 0; t < hw; ++t)
        out[i * hw + t] = static_cast<T>(norm > 0 ? std::sqrt(std::max(s[t], 0.0) / norm) : 0.0);
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
                  const std::int64_t* image, index_t k, bool normalize, T* out, int num_threads,
                  bool check_input) {
  if (check_input) check_values(a, b * c * h * w, "a", false, num_threads);
  for (index_t r = 0; r < k; ++r) {
    check(image[r] >= 0 && image[r] < b, "box " + std::to_string(r) + " belongs to image " +
                                             std::to_string(image[r]) + ", outside [0, " + std::to_string(b) + ")");
    index_t y0, y1, x0, x1;
    pixel_range(boxes[4 * r], boxes[4 * r + 2], h, &y0, &y1);
    pixel_range(boxes[4 * r + 1], boxes[4 * r + 3], w, &x0, &x1);
    check(y0 <= y1 && x0 <= x1, "boxes[" + std::to_string(r) + "] holds no pixel centre of the " +
                                    std::to_string(h) + "x" + std::to_string(w) + " map");
  }
  // Work items are groups of up to kGroup boxes of one image: each item
  // reads its image's channel planes once, in order, and takes every box's
  // maximum from the plane while it is in L1 (per box, one box at a time
  // over all channels read the map in short strided row pieces, 3x slower
  // at 3 boxes of a 1280 x 16 x 24 map). Boxes are grouped by a stable
  // counting sort on their image; a lone map with many boxes still splits.
  constexpr index_t kGroup = 8;
  std::vector<index_t> start(static_cast<size_t>(b + 1), 0), order(static_cast<size_t>(k));
  for (index_t r = 0; r < k; ++r) ++start[image[r] + 1];
  for (index_t m = 0; m < b; ++m) start[m + 1] += start[m];
  {
    std::vector<index_t> next(start.begin(), start.end() - 1);
    for (index_t r = 0; r < k; ++r) order[next[image[r]]++] = r;
  }
  std::vector<index_t> items;  // first position in `order` of each group
  for (index_t m = 0; m < b; ++m)
    for (index_t g = start[m]; g < start[m + 1]; g += kGroup) items.push_back(g);
  const index_t hw = h * w;
  parallel_for(0, index_t(items.size()), 1, num_threads, [&](index_t lo, index_t hi) {
    Scratch<double> v(kGroup * c);
    Scratch<T> col(w);
    index_t range[kGroup][4];
    for (index_t it = lo; it < hi; ++it) {
      checkpoint();
      const index_t g0 = items[it], m = image[order[g0]];
      const index_t g1 = std::min(g0 + kGroup, start[m + 1]), ng = g1 - g0;
      for (index_t q = 0; q < ng; ++q) {
        const index_t r = order[g0 + q];
        pixel_range(boxes[4 * r], boxes[4 * r + 2], h, &range[q][0], &range[q][1]);
        pixel_range(boxes[4 * r + 1], boxes[4 * r + 3], w, &range[q][2], &range[q][3]);
      }
      const T* img = a + m * c * hw;
      // The maximum in T, not double: the same value (a maximum rounds
      // nothing, and the values were checked finite), and no conversion per
      // value in the loop that reads most of the map. Rows of a box fold
      // into `col` element-wise (a vectorized max), then col folds.
      for (index_t j = 0; j < c; ++j) {
        const T* plane = img + j * hw;
        for (index_t q = 0; q < ng; ++q) {
          const index_t y0 = range[q][0], y1 = range[q][1], x0 = range[q][2], bw = range[q][3] - x0 + 1;
          T* __restrict cm = col.data();
          const T* first = plane + y0 * w + x0;
          for (index_t x = 0; x < bw; ++x) cm[x] = first[x];
          for (index_t y = y0 + 1; y <= y1; ++y) {
            const T* __restrict row = plane + y * w + x0;
            for (index_t x = 0; x < bw; ++x) cm[x] = row[x] > cm[x] ? row[x] : cm[x];
          }
          T mx = cm[0];
          for (index_t x = 1; x < bw; ++x) mx = cm[x] > mx ? cm[x] : mx;
          v[q * c + j] = double(mx);
        }
      }
      for (index_t q = 0; q < ng; ++q) {
        const index_t r = order[g0 + q];
        if (normalize) {
          l2_normalize(v.data() + q * c, c, out + r * c);
        } else {
          for (index_t j = 0; j < c; ++j) out[r * c + j] = static_cast<T>(v[q * c + j]);
        }
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
  template void feature_saliency<T>(const T*, index_t, index_t, index_t, double, T*, int, bool);    \
  template void global_pool<T>(const T*, index_t, index_t, index_t, Global, double, double, bool,   \
                               T*, int);                                                            \
  template void regional_max<T>(const T*, index_t, index_t, index_t, index_t, const double*,        \
                                const std::int64_t*, index_t, bool, T*, int, bool);                 \
  template void rmac<T>(const T*, index_t, index_t, index_t, index_t, const std::int64_t*, index_t, \
                        T*, int);
DEEPRET_INSTANTIATE(float)
DEEPRET_INSTANTIATE(double)
#undef DEEPRET_INSTANTIATE

}  // namespace deepret::pool
