// The E-step of EGM over one block of samples: the hot (samples x components)
// loop, plus the grid smoothing and the purge pass. Written once as plain
// loops that the compiler vectorizes, and compiled three times: in egm_cpu.cpp
// (baseline ISA), egm_cpu_avx2.cpp (-mavx2 -mfma) and egm_cpu_avx512.cpp
// (-mavx512f), each copy in its own namespace (DEEPRET_SIMD_NS).
//
// For each sample i (in order) and component k:
//   l_k = logc[k] - 0.5 * ((y_i - my[k])^2 * ivy[k] + (x_i - mx[k])^2 * ivx[k])
//   e_k = exp(l_k - max_k l_k) (0 when more than 700 below), g_k = s_i e_k / sum_k e_k
// and g_k, g_k y, g_k x, g_k y^2, g_k x^2 are added to component k's inner
// sums when k is the first maximum, to its outer sums otherwise.
#ifndef DEEPRET_SIMD_NS
#error "define DEEPRET_SIMD_NS before including egm_estep.h"
#endif

#include <cstdint>

#include "egm/egm_math.h"

namespace deepret::egm::DEEPRET_SIMD_NS {

using index_t = std::int64_t;

inline void estep(const double* py, const double* px, const double* ps, index_t n,  // samples [n]
                  const double* my, const double* mx, const double* ivy, const double* ivx,
                  const double* logc, index_t k,  // components [k]
                  double* acc,                    // [kAccFields, k], added to
                  double* e) {                    // scratch [k]
  double* __restrict lo = acc + kLo * k;
  double* __restrict syo = acc + kSyo * k;
  double* __restrict sxo = acc + kSxo * k;
  double* __restrict syyo = acc + kSyyo * k;
  double* __restrict sxxo = acc + kSxxo * k;
  double* __restrict el = e;
  for (index_t i = 0; i < n; ++i) {
    const double y = py[i], x = px[i];
    double top = -1e300;
#pragma omp simd reduction(max : top)
    for (index_t j = 0; j < k; ++j) {
      const double dy = y - my[j], dx = x - mx[j];
      const double l = logc[j] - 0.5 * (dy * dy * ivy[j] + dx * dx * ivx[j]);
      el[j] = l;
      top = l > top ? l : top;
    }
    index_t arg = 0;
    while (el[arg] != top) ++arg;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (index_t j = 0; j < k; ++j) {
      const double v = exp_nonpos(el[j] - top);
      el[j] = v;
      sum += v;
    }
    const double g = ps[i] / sum;
    el[arg] = 0.0;  // the inner component's share goes to its inner sums below
    const double gy = g * y, gx = g * x, gyy = gy * y, gxx = gx * x;
#pragma omp simd
    for (index_t j = 0; j < k; ++j) {
      const double v = el[j];
      lo[j] += v * g;
      syo[j] += v * gy;
      sxo[j] += v * gx;
      syyo[j] += v * gyy;
      sxxo[j] += v * gxx;
    }
    acc[kLi * k + arg] += g;
    acc[kSyi * k + arg] += gy;
    acc[kSxi * k + arg] += gx;
    acc[kSyyi * k + arg] += gyy;
    acc[kSxxi * k + arg] += gxx;
  }
}

// The same E-step for few components (k <= kFewComponents), vectorized over
// the samples instead: with k of a handful a loop over components is all
// remainder. Sums over the block's samples are reductions (their order is
// fixed by n and k alone). scratch: [(k + 3) * n].
inline void estep_few(const double* py, const double* px, const double* ps, index_t n,  // samples [n]
                      const double* my, const double* mx, const double* ivy, const double* ivx,
                      const double* logc, index_t k,  // components [k]
                      double* acc,                    // [kAccFields, k], added to
                      double* scratch) {              // [(k + 3) * n]
  double* __restrict el = scratch;              // [k, n]: log terms, then exp
  double* __restrict top = scratch + k * n;     // [n]
  double* __restrict inv = top + n;             // [n]: s_i / sum_k e_ik
  double* __restrict arg = inv + n;             // [n]: the first largest component
  for (index_t i = 0; i < n; ++i) top[i] = -1e300, arg[i] = 0.0, inv[i] = 0.0;
  for (index_t j = 0; j < k; ++j) {
    const double cy = my[j], cx = mx[j], iy = ivy[j], ix = ivx[j], lc = logc[j];
    double* __restrict row = el + j * n;
#pragma omp simd
    for (index_t i = 0; i < n; ++i) {
      const double dy = py[i] - cy, dx = px[i] - cx;
      const double l = lc - 0.5 * (dy * dy * iy + dx * dx * ix);
      row[i] = l;
      const double t = top[i], a = arg[i];
      const bool more = l > t;
      arg[i] = more ? double(j) : a;
      top[i] = more ? l : t;
    }
  }
  for (index_t j = 0; j < k; ++j) {
    double* __restrict row = el + j * n;
#pragma omp simd
    for (index_t i = 0; i < n; ++i) {
      const double v = exp_nonpos(row[i] - top[i]);
      row[i] = v;
      inv[i] += v;
    }
  }
#pragma omp simd
  for (index_t i = 0; i < n; ++i) inv[i] = ps[i] / inv[i];
  for (index_t j = 0; j < k; ++j) {
    const double* __restrict row = el + j * n;
    const double dj = double(j);
    double lo = 0, syo = 0, sxo = 0, syyo = 0, sxxo = 0, li = 0, syi = 0, sxi = 0, syyi = 0, sxxi = 0;
#pragma omp simd reduction(+ : lo, syo, sxo, syyo, sxxo, li, syi, sxi, syyi, sxxi)
    for (index_t i = 0; i < n; ++i) {
      const double g = inv[i], gy = g * py[i], gx = g * px[i], gyy = gy * py[i], gxx = gx * px[i];
      const bool inner = arg[i] == dj;
      const double vo = inner ? 0.0 : row[i], vi = inner ? 1.0 : 0.0;
      lo += vo * g, syo += vo * gy, sxo += vo * gx, syyo += vo * gyy, sxxo += vo * gxx;
      li += vi * g, syi += vi * gy, sxi += vi * gx, syyi += vi * gyy, sxxi += vi * gxx;
    }
    acc[kLo * k + j] += lo, acc[kSyo * k + j] += syo, acc[kSxo * k + j] += sxo;
    acc[kSyyo * k + j] += syyo, acc[kSxxo * k + j] += sxxo;
    acc[kLi * k + j] += li, acc[kSyi * k + j] += syi, acc[kSxi * k + j] += sxi;
    acc[kSyyi * k + j] += syyi, acc[kSxxi * k + j] += sxxi;
  }
}

// Separable Gaussian smoothing on a grid, for the first E-step (see
// egm_cpu.cpp): out[c] = G_h a[c] G_w for c < nc, where G_n is the n x n matrix
// g[|i - j|]. Register-blocked: each pass accumulates R rows x kSmoothBlock
// outputs in registers, so that R * kSmoothBlock / lanes independent sums hide
// the FMA latency (one row alone is latency-bound). Every output is the same
// ordered sum whatever R: the skipped zero terms would add +0 to a sum >= +0.
// gw is padded with zero columns to wp, a multiple of kSmoothBlock; t is scratch.
constexpr index_t kSmoothBlock = 16;

// t[r][:] = a[r][:] G_w for the R rows at a (row stride w), t row stride wp.
template <int R>
inline void smooth_rows_w(const double* a, index_t w, const double* gw, index_t wp, double* t) {
  constexpr index_t B = kSmoothBlock;
  for (index_t x0 = 0; x0 < wp; x0 += B) {
    double acc[R][B] = {};
    for (index_t x2 = 0; x2 < w; ++x2) {
      double v[R];
      bool any = false;
      for (int r = 0; r < R; ++r) v[r] = a[r * w + x2], any |= v[r] != 0.0;
      if (!any) continue;  // sparse grids: most rows of a channel are empty
      const double* g = gw + x2 * wp + x0;
      for (int r = 0; r < R; ++r) {
#pragma omp simd
        for (index_t xx = 0; xx < B; ++xx) acc[r][xx] += v[r] * g[xx];
      }
    }
    for (int r = 0; r < R; ++r)
      for (index_t xx = 0; xx < B; ++xx) t[r * wp + x0 + xx] = acc[r][xx];
  }
}

// out[r][:] = sum_y2 gh[r][y2] t[y2][:] for the R rows at gh (row stride h).
template <int R>
inline void smooth_rows_h(const double* gh, index_t h, const double* t, index_t w, index_t wp,
                          double* out) {
  constexpr index_t B = kSmoothBlock;
  for (index_t x0 = 0; x0 < wp; x0 += B) {
    double acc[R][B] = {};
    for (index_t y2 = 0; y2 < h; ++y2) {
      const double* row = t + y2 * wp + x0;
      for (int r = 0; r < R; ++r) {
        const double g = gh[r * h + y2];
#pragma omp simd
        for (index_t xx = 0; xx < B; ++xx) acc[r][xx] += g * row[xx];
      }
    }
    const index_t m = w - x0 < B ? w - x0 : B;
    for (int r = 0; r < R; ++r)
      for (index_t xx = 0; xx < m; ++xx) out[r * w + x0 + xx] = acc[r][xx];
  }
}

template <int R>
inline void smooth(const double* a,  // [nc, h, w]
                   index_t nc, index_t h, index_t w,
                   const double* gh,  // [h, h]
                   const double* gw,  // [w, wp]
                   index_t wp,
                   double* t,         // [h, wp] scratch
                   double* out) {     // [nc, h, w]
  for (index_t c = 0; c < nc; ++c) {
    const double* ac = a + c * h * w;
    double* oc = out + c * h * w;
    index_t y = 0;
    for (; y + R <= h; y += R) smooth_rows_w<R>(ac + y * w, w, gw, wp, t + y * wp);
    for (; y < h; ++y) smooth_rows_w<1>(ac + y * w, w, gw, wp, t + y * wp);
    y = 0;
    for (; y + R <= h; y += R) smooth_rows_h<R>(gh + y * h, h, t, w, wp, oc + y * w);
    for (; y < h; ++y) smooth_rows_h<1>(gh + y * h, h, t, w, wp, oc + y * w);
  }
}

// One pass of the purge (egm_cpu.cpp): component c = (cy, cx, cvy, cvx, cp)
// has just been kept; every candidate s still alive adds its cross term
// p_s cp <N_s, N_c> and stays alive while self_s / (self_s + cross_s) >= tau.
// Candidates are visited in the purge's order and each adds the kept
// components' terms in the order they were kept: the sums and the tests are
// those of the one-candidate-at-a-time loop, vectorized over candidates.
// Returns how many candidates are alive after it.
inline index_t purge_pass(const double* y, const double* x, const double* vy, const double* vx,
                       const double* p, const double* self,  // candidates [count]
                       index_t count, double cy, double cx, double cvy, double cvx, double cp,
                       double tau,
                       double* cross,    // [count], added to
                       double* alive) {  // [count], 1 or 0
  double* __restrict cr = cross;
  double* __restrict al = alive;
  double live_count = 0.0;  // exact: a count below 2^53
#pragma omp simd reduction(+ : live_count)
  for (index_t s = 0; s < count; ++s) {
    const double sy = vy[s] + cvy, sx = vx[s] + cvx;
    const double dy = y[s] - cy, dx = x[s] - cx;
    const double o = exp_nonpos(-0.5 * (dy * dy / sy + dx * dx / sx)) / (kTwoPi * std::sqrt(sy * sx));
    const double c = cr[s] + p[s] * cp * o;
    const bool live = al[s] != 0.0;
    cr[s] = live ? c : cr[s];
    const double now = live && self[s] / (self[s] + c) >= tau ? 1.0 : 0.0;
    al[s] = now;
    live_count += now;
  }
  return static_cast<index_t>(live_count);
}

}  // namespace deepret::egm::DEEPRET_SIMD_NS
