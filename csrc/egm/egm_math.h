// Math of EGM written once for the CPU and CUDA engines (DEEPRET_HD).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/hostdevice.h"

// Host copies have internal linkage: the baseline and AVX2 translation units
// each keep their own, so the linker can never mix them up.
#if defined(__CUDACC__)
#define DEEPRET_EGM_FN DEEPRET_HD
#else
#define DEEPRET_EGM_FN static inline
#endif

namespace deepret::egm {

constexpr double kLogCut = -700.0;  // E-step terms this far below the max are 0
// Up to this many components the CPU E-step runs vectorized over samples: a
// loop over a few dozen components is mostly remainder, and the maps' usual
// counts after the first iterations (10 to 30) are in that range.
constexpr long kFewComponents = 64;
constexpr double kLog2Pi = 1.8378770664093453;  // log(2 pi)
constexpr double kTwoPi = 6.283185307179586;

// exp(x) for x <= 0 to about 1 ulp, 0 below kLogCut; branch-free and made of
// plain arithmetic and bit moves, so that a loop of it vectorizes.
DEEPRET_EGM_FN double exp_nonpos(double x) {
  const double shift = 6755399441055744.0;  // 1.5 * 2^52: rounds to an integer
  const double xc = x < kLogCut ? kLogCut : x;
  const double t = xc * 1.4426950408889634 + shift;
  const double n = t - shift;
  const double r = (xc - n * 0.6931471803691238) - n * 1.9082149292705877e-10;  // |r| <= ln2/2
  double p = 1.0 / 479001600.0;  // 1/12!
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  std::int64_t tb, sb;
  const double shift_copy = shift;
  std::memcpy(&tb, &t, sizeof tb);
  std::memcpy(&sb, &shift_copy, sizeof sb);
  const std::int64_t bits = (tb - sb + 1023) << 52;  // 2^n, n >= -1010: a normal number
  double scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < kLogCut ? 0.0 : p * scale;
}

// <N(a, A), N(b, B)> = N(a | b, A + B) for diagonal variances.
DEEPRET_EGM_FN double overlap(double ay, double ax, double avy, double avx, double by, double bx,
                          double bvy, double bvx) {
  const double vy = avy + bvy, vx = avx + bvx;
  const double dy = ay - by, dx = ax - bx;
  return exp(-0.5 * (dy * dy / vy + dx * dx / vx)) / (kTwoPi * sqrt(vy * vx));
}

// Accumulators of one component after the E-step: the outer (o) and inner (i)
// sums of g, g*y, g*x, g*y^2, g*x^2 where g = S_i gamma_ik.
enum Acc : int { kLo = 0, kSyo, kSxo, kSyyo, kSxxo, kLi, kSyi, kSxi, kSyyi, kSxxi, kAccFields };

// M-step and expansion of one component from its accumulators: mass (0 when
// the component is dead), mean and floored, expanded variance.
DEEPRET_EGM_FN double m_step(const double* a,  // [kAccFields]
                         double lam, double sigma2, double* my, double* mx, double* vy, double* vx) {
  const double lo = a[kLo], li = a[kLi], l = lo + li;
  if (!(l > 0)) return 0.0;
  const double mu_y = (a[kSyo] + a[kSyi]) / l, mu_x = (a[kSxo] + a[kSxi]) / l;
  // Second moments about the mean, per side.
  double in_y = a[kSyyi] - 2.0 * mu_y * a[kSyi] + mu_y * mu_y * li;
  double in_x = a[kSxxi] - 2.0 * mu_x * a[kSxi] + mu_x * mu_x * li;
  double out_y = a[kSyyo] - 2.0 * mu_y * a[kSyo] + mu_y * mu_y * lo;
  double out_x = a[kSxxo] - 2.0 * mu_x * a[kSxo] + mu_x * mu_x * lo;
  in_y = in_y > 0 ? in_y : 0.0;
  in_x = in_x > 0 ? in_x : 0.0;
  out_y = out_y > 0 ? out_y : 0.0;
  out_x = out_x > 0 ? out_x : 0.0;
  double var_y, var_x;
  if (lam == 0.0) {  // plain EM: the whole weighted variance
    var_y = (in_y + out_y) / l;
    var_x = (in_x + out_x) / l;
  } else {
    double viy = li > 0 ? in_y / li : 0.0, vix = li > 0 ? in_x / li : 0.0;
    double voy = lo > 0 ? out_y / lo : viy, vox = lo > 0 ? out_x / lo : vix;
    if (!(li > 0)) viy = voy, vix = vox;
    const double w = (li / l) * (1.0 - lam);
    var_y = w * viy + (1.0 - w) * voy;
    var_x = w * vix + (1.0 - w) * vox;
  }
  *my = mu_y;
  *mx = mu_x;
  *vy = var_y > sigma2 ? var_y : sigma2;
  *vx = var_x > sigma2 ? var_x : sigma2;
  return l;
}

// <N(a, A), N(a, A)> = overlap(a, A, a, A) without its exp(-0) = 1 (same bits).
DEEPRET_EGM_FN double self_overlap(double avy, double avx) {
  const double vy = avy + avy, vx = avx + avx;
  return 1.0 / (kTwoPi * sqrt(vy * vx));
}

DEEPRET_EGM_FN double clip(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Box (y0, x0, y1, x1) of a component, clipped to the map.
DEEPRET_EGM_FN void box(double my, double mx, double vy, double vx, double c, double h, double w,
                    double* out) {  // out: [4]
  const double ry = c * sqrt(vy), rx = c * sqrt(vx);
  out[0] = clip(my - ry, 0.0, h - 1.0);
  out[1] = clip(mx - rx, 0.0, w - 1.0);
  out[2] = clip(my + ry, 0.0, h - 1.0);
  out[3] = clip(mx + rx, 0.0, w - 1.0);
}

}  // namespace deepret::egm
