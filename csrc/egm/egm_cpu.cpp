// CPU driver of EGM: validation, preprocessing, the iteration (E-step kernel of
// egm_estep.h, M-step and expansion of egm_math.h, purge), boxes; maps of a
// batch run in parallel, and a lone map splits its E-step over sample blocks.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "common/buffer.h"
#include "common/errors.h"
#include "common/parallel.h"
#include "common/simd.h"
#include "egm/egm.h"
#include "egm/egm_math.h"

#define DEEPRET_SIMD_NS portable
#include "egm/egm_estep.h"
#undef DEEPRET_SIMD_NS

namespace deepret::egm {

#if defined(DEEPRET_X86)
namespace avx2 {  // egm_cpu_avx2.cpp, compiled with -mavx2 -mfma
#include "egm/egm_kernels.inc"
}  // namespace avx2
namespace avx512 {  // egm_cpu_avx512.cpp, compiled with -mavx512f
#include "egm/egm_kernels.inc"
}  // namespace avx512
#endif

namespace {

struct Workspace {
  Scratch<double> py, px, ps;                  // samples [n]
  Scratch<double> my, mx, vy, vx, pi;          // components [k]
  Scratch<double> ivy, ivx, logc;              // E-step constants [k]
  Scratch<double> acc;                         // [blocks, kAccFields, k]
  Scratch<double> e;                           // [blocks, k]
  Scratch<double> nmy, nmx, nvy, nvx, mass;    // after the M-step
  Scratch<index_t> kept;                       // ranks of the kept components
  Scratch<std::uint64_t> keys, sort_tmp;       // purge order (radix sort)
  Scratch<index_t> order, order_tmp;
  Scratch<double> cand;                        // [kCandFields, k] purge candidates
  Scratch<double> gh, gw, grid, chan, conv, tmp;  // the first E-step on the grid

  // Frees every array above max_bytes: the workspace is per thread and kept
  // between calls, so one huge map must not pin its memory on every thread.
  void trim(std::size_t max_bytes) {
    for (auto* v : {&py, &px, &ps, &my, &mx, &vy, &vx, &pi, &ivy, &ivx, &logc, &acc, &e, &nmy, &nmx,
                    &nvy, &nvx, &mass, &cand, &gh, &gw, &grid, &chan, &conv, &tmp})
      release_if_larger(*v, max_bytes);
    for (auto* v : {&kept, &order, &order_tmp}) release_if_larger(*v, max_bytes);
    for (auto* v : {&keys, &sort_tmp}) release_if_larger(*v, max_bytes);
  }
};

// Workspace arrays kept per thread between maps (a 1,000 x 1,000 map's
// samples are 8 MB each).
constexpr std::size_t kKeptWorkspaceBytes = std::size_t(1) << 20;

struct MapOut {
  Scratch<double> means, variances, weights, boxes;
};

void estep(const double* py, const double* px, const double* ps, index_t n, const Workspace& ws,
           index_t k, double* acc, double* e) {
  if (k <= kFewComponents) {
#if defined(DEEPRET_X86)
    if (use_avx512f())
      return avx512::run_estep_few(py, px, ps, n, ws.my.data(), ws.mx.data(), ws.ivy.data(), ws.ivx.data(),
                                      ws.logc.data(), k, acc, e);
    if (use_avx2_fma())
      return avx2::run_estep_few(py, px, ps, n, ws.my.data(), ws.mx.data(), ws.ivy.data(), ws.ivx.data(),
                                  ws.logc.data(), k, acc, e);
#endif
    return portable::estep_few(py, px, ps, n, ws.my.data(), ws.mx.data(), ws.ivy.data(), ws.ivx.data(),
                               ws.logc.data(), k, acc, e);
  }
#if defined(DEEPRET_X86)
  if (use_avx512f())
    return avx512::run_estep(py, px, ps, n, ws.my.data(), ws.mx.data(), ws.ivy.data(), ws.ivx.data(),
                                ws.logc.data(), k, acc, e);
  if (use_avx2_fma())
    return avx2::run_estep(py, px, ps, n, ws.my.data(), ws.mx.data(), ws.ivy.data(), ws.ivx.data(),
                            ws.logc.data(), k, acc, e);
#endif
  portable::estep(py, px, ps, n, ws.my.data(), ws.mx.data(), ws.ivy.data(), ws.ivx.data(),
                  ws.logc.data(), k, acc, e);
}

index_t purge_pass(const double* y, const double* x, const double* vy, const double* vx, const double* p,
                const double* self, index_t count, double cy, double cx, double cvy, double cvx, double cp,
                double tau, double* cross, double* alive) {
#if defined(DEEPRET_X86)
  if (use_avx512f())
    return avx512::run_purge_pass(y, x, vy, vx, p, self, count, cy, cx, cvy, cvx, cp, tau, cross, alive);
  if (use_avx2_fma())
    return avx2::run_purge_pass(y, x, vy, vx, p, self, count, cy, cx, cvy, cvx, cp, tau, cross, alive);
#endif
  return portable::purge_pass(y, x, vy, vx, p, self, count, cy, cx, cvy, cvx, cp, tau, cross, alive);
}

// Fixed blocks of samples (their size depends on n alone): partial sums per
// block, added in block order, so the result never depends on the threads.
index_t block_size(index_t n) { return std::max<index_t>(256, (n + 15) / 16); }

void smooth(const double* a, index_t nc, index_t h, index_t w, const double* gh, const double* gw, index_t wp,
            double* t, double* out) {
#if defined(DEEPRET_X86)
  if (use_avx512f()) return avx512::run_smooth(a, nc, h, w, gh, gw, wp, t, out);
  if (use_avx2_fma()) return avx2::run_smooth(a, nc, h, w, gh, gw, wp, t, out);
#endif
  portable::smooth<2>(a, nc, h, w, gh, gw, wp, t, out);
}

// The first E-step, when every component still sits on its own sample's pixel
// with variance sigma^2: then r_ik = pi_k g(y_i - y_k) g(x_i - x_k) (the
// Gaussian's constant cancels), so the normalizers Z_i and every sum of the
// M-step are separable Gaussian smoothings of grids, O(hw(h + w)) instead of
// O(n^2) exponentials. Exact up to rounding, hence used only where the E-step
// cuts no term (every log-ratio above -690) and where lam = 0 (all sums go to
// the outer side: the inner/outer split only matters for the expansion).
// Returns false (nothing done) where it does not apply or would not pay.
bool first_estep_on_grid(Workspace& ws, index_t n, const Params& p) {
  if (p.lam != 0.0) return false;
  double y0 = ws.py[0], y1 = y0, x0 = ws.px[0], x1 = x0, pmin = ws.pi[0], pmax = pmin;
  for (index_t i = 1; i < n; ++i) {
    y0 = std::min(y0, ws.py[i]), y1 = std::max(y1, ws.py[i]);
    x0 = std::min(x0, ws.px[i]), x1 = std::max(x1, ws.px[i]);
    pmin = std::min(pmin, ws.pi[i]), pmax = std::max(pmax, ws.pi[i]);
  }
  const index_t h = static_cast<index_t>(y1 - y0) + 1, w = static_cast<index_t>(x1 - x0) + 1;
  const double v = 2.0 * p.sigma * p.sigma;
  const double worst = std::log(pmax / pmin) + ((h - 1.0) * (h - 1.0) + (w - 1.0) * (w - 1.0)) / (2.0 * v);
  if (!(worst < 690.0)) return false;
  if (6.0 * double(h) * double(w) * double(h + w) >= 8.0 * double(n) * double(n)) return false;
  ws.tmp.resize(std::max(h, w));  // g[d] = exp(-d^2 / (2v)), then the Toeplitz matrices g[|i - j|]
  for (index_t d = 0; d < std::max(h, w); ++d) ws.tmp[d] = std::exp(-double(d * d) / (2.0 * v));
  // gh [h, h]; gw [w, wp], zero-padded to a multiple of the smoothing block.
  const index_t wp = (w + portable::kSmoothBlock - 1) / portable::kSmoothBlock * portable::kSmoothBlock;
  auto gauss = [&](Scratch<double>& g, index_t m, index_t stride) {
    g.assign(m * stride, 0.0);
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < m; ++j) g[i * stride + j] = ws.tmp[i > j ? i - j : j - i];
  };
  gauss(ws.gh, h, h);
  gauss(ws.gw, w, wp);
  const index_t hw = h * w;
  ws.grid.assign(hw, 0.0), ws.tmp.resize(h * wp), ws.conv.resize(5 * hw);
  auto cell = [&](index_t i) { return static_cast<index_t>(ws.py[i] - y0) * w + static_cast<index_t>(ws.px[i] - x0); };
  for (index_t i = 0; i < n; ++i) ws.grid[cell(i)] = ws.pi[i];
  smooth(ws.grid.data(), 1, h, w, ws.gh.data(), ws.gw.data(), wp, ws.tmp.data(), ws.conv.data());  // Z
  ws.chan.assign(5 * hw, 0.0);
  for (index_t i = 0; i < n; ++i) {
    const index_t c = cell(i);
    const double r = ws.ps[i] / ws.conv[c], y = ws.py[i], x = ws.px[i];
    ws.chan[c] = r, ws.chan[hw + c] = r * y, ws.chan[2 * hw + c] = r * x;
    ws.chan[3 * hw + c] = r * y * y, ws.chan[4 * hw + c] = r * x * x;
  }
  smooth(ws.chan.data(), 5, h, w, ws.gh.data(), ws.gw.data(), wp, ws.tmp.data(), ws.conv.data());
  ws.acc.assign(static_cast<std::size_t>(kAccFields * n), 0.0);
  for (index_t k = 0; k < n; ++k) {
    const index_t c = cell(k);
    for (int f = 0; f < 5; ++f) ws.acc[(kLo + f) * n + k] = ws.pi[k] * ws.conv[f * hw + c];
  }
  return true;
}

void e_and_m(Workspace& ws, index_t n, index_t k, const Params& p, int threads, bool first) {
  const double s2 = p.sigma * p.sigma;
  if (!(first && first_estep_on_grid(ws, n, p))) {
    ws.ivy.resize(k), ws.ivx.resize(k), ws.logc.resize(k);
    for (index_t j = 0; j < k; ++j) {
      const double vy = ws.vy[j] + s2, vx = ws.vx[j] + s2;
      ws.ivy[j] = 1.0 / vy;
      ws.ivx[j] = 1.0 / vx;
      ws.logc[j] = std::log(ws.pi[j]) - kLog2Pi - 0.5 * (std::log(vy) + std::log(vx));
    }
    const index_t bs = block_size(n), blocks = (n + bs - 1) / bs;
    const index_t stride = kAccFields * k;
    ws.acc.assign(static_cast<std::size_t>(blocks * stride), 0.0);
    // The few-component E-step keeps (k + 3) values per sample: it runs over
    // a block in pieces of at most kFewPiece samples, so that its scratch
    // stays small (and in cache) on large maps.
    constexpr index_t kFewPiece = 1024;
    const bool few = k <= kFewComponents;
    const index_t piece = few ? std::min(bs, kFewPiece) : bs;
    const index_t scratch = few ? (k + 3) * piece : k;  // per block
    ws.e.resize(static_cast<std::size_t>(blocks * scratch));
    // Threads only where the work pays for waking them (the sums do not depend on it).
    const int team = double(n) * double(k) >= 65536.0 ? threads : 1;
    parallel_for(0, blocks, 1, team, [&](index_t lo, index_t hi) {
      for (index_t blk = lo; blk < hi; ++blk) {
        const index_t end = std::min(n, (blk + 1) * bs);
        for (index_t i0 = blk * bs; i0 < end; i0 += piece)
          estep(ws.py.data() + i0, ws.px.data() + i0, ws.ps.data() + i0, std::min(piece, end - i0), ws, k,
                ws.acc.data() + blk * stride, ws.e.data() + blk * scratch);
      }
    });
    for (index_t blk = 1; blk < blocks; ++blk)
      for (index_t t = 0; t < stride; ++t) ws.acc[t] += ws.acc[blk * stride + t];
  }
  // M-step and expansion; dead components (zero mass) are dropped.
  ws.nmy.clear(), ws.nmx.clear(), ws.nvy.clear(), ws.nvx.clear(), ws.mass.clear();
  double a[kAccFields];
  for (index_t j = 0; j < k; ++j) {
    for (int f = 0; f < kAccFields; ++f) a[f] = ws.acc[f * k + j];
    double my, mx, vy, vx;
    const double l = m_step(a, p.lam, s2, &my, &mx, &vy, &vx);
    if (!(l > 0)) continue;
    ws.nmy.push_back(my), ws.nmx.push_back(mx), ws.nvy.push_back(vy), ws.nvx.push_back(vx);
    ws.mass.push_back(l);
  }
}

// order[r] = the component of rank r by descending pi, lower index first on
// ties (pi >= 0, so its bits order like the number). A stable LSD radix sort
// on the complemented bits, one byte per pass: the bytes that every key
// shares (most of the exponent) cost no pass.
void descending_order(const Scratch<double>& pi, Workspace& ws) {
  const index_t k = static_cast<index_t>(pi.size());
  ws.keys.resize(k), ws.sort_tmp.resize(k), ws.order.resize(k), ws.order_tmp.resize(k);
  std::uint64_t all_or = 0, all_and = ~std::uint64_t(0);
  for (index_t j = 0; j < k; ++j) {
    std::uint64_t bits;
    std::memcpy(&bits, &pi[j], sizeof bits);
    ws.keys[j] = ~bits, ws.order[j] = j;
    all_or |= ws.keys[j], all_and &= ws.keys[j];
  }
  for (int shift = 0; shift < 64; shift += 8) {
    if ((((all_or ^ all_and) >> shift) & 0xff) == 0) continue;  // one value of this byte
    index_t start[257] = {};
    for (index_t j = 0; j < k; ++j) ++start[((ws.keys[j] >> shift) & 0xff) + 1];
    for (int b = 0; b < 256; ++b) start[b + 1] += start[b];
    for (index_t j = 0; j < k; ++j) {
      const index_t at = start[(ws.keys[j] >> shift) & 0xff]++;
      ws.sort_tmp[at] = ws.keys[j], ws.order_tmp[at] = ws.order[j];
    }
    ws.keys.swap(ws.sort_tmp), ws.order.swap(ws.order_tmp);
  }
}

// Fields of the purge's candidates, in rank order.
enum Cand : int { kCy = 0, kCx, kCvy, kCvx, kCp, kCself, kCcross, kCalive, kCandFields };

// Purge: keeps components in descending weight order; returns the new count.
// A component is kept when self / (self + cross) >= tau, cross adding its
// overlaps with the components kept before it, in their order, and failing
// as soon as a partial sum fails (the terms are >= 0, so the whole sum would
// fail too, in floating point as well). Each kept component adds its term to
// every later candidate still alive in one vector pass (purge_pass).
index_t purge(Workspace& ws, double tau) {
  const index_t k = static_cast<index_t>(ws.mass.size());
  double total = 0.0;
  for (index_t j = 0; j < k; ++j) total += ws.mass[j];
  ws.pi.resize(k);
  for (index_t j = 0; j < k; ++j) ws.pi[j] = ws.mass[j] / total;
  ws.kept.clear();
  if (k == 0) return 0;
  descending_order(ws.pi, ws);
  ws.cand.resize(static_cast<std::size_t>(kCandFields * k));
  double* f[kCandFields];
  for (int t = 0; t < kCandFields; ++t) f[t] = ws.cand.data() + t * k;
  for (index_t r = 0; r < k; ++r) {
    const index_t j = ws.order[r];
    const double pj = ws.pi[j];
    f[kCy][r] = ws.nmy[j], f[kCx][r] = ws.nmx[j], f[kCvy][r] = ws.nvy[j], f[kCvx][r] = ws.nvx[j];
    f[kCp][r] = pj, f[kCself][r] = pj * pj * self_overlap(ws.nvy[j], ws.nvx[j]);
    f[kCcross][r] = 0.0, f[kCalive][r] = 1.0;
  }
  // Candidates [0, len): the dead ones are dropped from the tail whenever
  // they are the majority, so that the passes cost about what the early
  // exits of the one-at-a-time loop would (kept ones never move).
  index_t len = k;
  for (index_t r = 0; r < len; ++r) {
    if (f[kCalive][r] == 0.0) continue;
    ws.kept.push_back(r);
    const index_t s = r + 1;  // the candidates after it
    const index_t live =
        purge_pass(f[kCy] + s, f[kCx] + s, f[kCvy] + s, f[kCvx] + s, f[kCp] + s, f[kCself] + s, len - s,
                   f[kCy][r], f[kCx][r], f[kCvy][r], f[kCvx][r], f[kCp][r], tau, f[kCcross] + s,
                   f[kCalive] + s);
    if (2 * live >= len - s) continue;
    index_t to = s;
    for (index_t from = s; from < len; ++from) {
      if (f[kCalive][from] == 0.0) continue;
      for (int t = 0; t < kCandFields; ++t) f[t][to] = f[t][from];
      ++to;
    }
    len = to;
  }
  const index_t kk = static_cast<index_t>(ws.kept.size());
  Scratch<double> pi(kk);
  double kept_total = 0.0;
  for (index_t t = 0; t < kk; ++t) kept_total += f[kCp][ws.kept[t]];
  ws.my.resize(kk), ws.mx.resize(kk), ws.vy.resize(kk), ws.vx.resize(kk);
  for (index_t t = 0; t < kk; ++t) {
    const index_t r = ws.kept[t];
    ws.my[t] = f[kCy][r], ws.mx[t] = f[kCx][r], ws.vy[t] = f[kCvy][r], ws.vx[t] = f[kCvx][r];
    pi[t] = f[kCp][r] / kept_total;
  }
  ws.pi.swap(pi);
  return kk;
}

void egm_map(const double* s, index_t h, index_t w, const Params& p, int threads, Workspace& ws,
             MapOut& out) {
  const index_t hw = h * w;
  double top = 0.0;
  for (index_t t = 0; t < hw; ++t) top = std::max(top, s[t]);
  if (!(top > 0)) return;
  ws.py.clear(), ws.px.clear(), ws.ps.clear();
  for (index_t t = 0; t < hw; ++t) {
    double v = s[t] / top;
    if (v < p.threshold) continue;
    v = std::pow(v, p.power);
    if (!(v > 0)) continue;
    ws.py.push_back(static_cast<double>(t / w));
    ws.px.push_back(static_cast<double>(t % w));
    ws.ps.push_back(v);
  }
  const index_t n = static_cast<index_t>(ws.ps.size());
  if (n == 0) return;
  const double s2 = p.sigma * p.sigma;
  double total = 0.0;
  for (index_t i = 0; i < n; ++i) total += ws.ps[i];
  ws.my = ws.py, ws.mx = ws.px;
  ws.vy.assign(n, s2), ws.vx.assign(n, s2), ws.pi.resize(n);
  for (index_t i = 0; i < n; ++i) ws.pi[i] = ws.ps[i] / total;
  index_t k = n, before = -1;  // the counts after the last two iterations (n at the start)
  for (int it = 0; it < p.max_iter; ++it) {
    if (it > 0) checkpoint();
    e_and_m(ws, n, k, p, threads, it == 0);
    const index_t kk = purge(ws, p.tau);
    const bool stable = kk == k && k == before;
    before = k, k = kk;
    if (stable) break;
  }
  out.means.resize(2 * k), out.variances.resize(2 * k), out.weights.resize(k), out.boxes.resize(4 * k);
  for (index_t j = 0; j < k; ++j) {
    out.means[2 * j] = ws.my[j], out.means[2 * j + 1] = ws.mx[j];
    out.variances[2 * j] = ws.vy[j], out.variances[2 * j + 1] = ws.vx[j];
    out.weights[j] = ws.pi[j];
    box(ws.my[j], ws.mx[j], ws.vy[j], ws.vx[j], p.box_scale, double(h), double(w), &out.boxes[4 * j]);
  }
}

}  // namespace

void check_params(const Params& p) {
  check(std::isfinite(p.sigma) && p.sigma > 0, "sigma must be a positive finite number");
  check(p.lam >= 0 && p.lam < 1, "lam must be in [0, 1)");
  check(p.tau >= 0.5 && p.tau <= 1, "tau must be in [0.5, 1]");
  check(p.threshold >= 0 && p.threshold <= 1, "threshold must be in [0, 1]");
  check(std::isfinite(p.power) && p.power > 0, "power must be a positive finite number");
  check(p.max_iter >= 1, "max_iter must be >= 1");
  check(std::isfinite(p.box_scale) && p.box_scale >= 0, "box_scale must be a non-negative finite number");
}

Result egm(const double* s, index_t b, index_t h, index_t w, const Params& params, int num_threads) {
  check_params(params);
  check(b >= 0 && h >= 0 && w >= 0, "egm: negative shape");
  const index_t total = b * h * w;
  for (index_t t = 0; t < total; ++t) {
    if (!std::isfinite(s[t]))
      throw ValueError("s must be finite, got " + std::to_string(s[t]) + " at flat index " + std::to_string(t));
    if (s[t] < 0)
      throw ValueError("s must be non-negative, got " + std::to_string(s[t]) + " at flat index " +
                       std::to_string(t));
  }
  Scratch<MapOut> outs(static_cast<std::size_t>(b));
  const int threads = resolve_threads(num_threads);
  if (b <= 1 || threads <= 1) {
    static thread_local Workspace ws;
    try {
      for (index_t i = 0; i < b; ++i) {
        if (i > 0) checkpoint();
        egm_map(s + i * h * w, h, w, params, threads, ws, outs[i]);
      }
    } catch (...) {
      ws.trim(kKeptWorkspaceBytes);
      throw;
    }
    ws.trim(kKeptWorkspaceBytes);
  } else {
    parallel_for(0, b, 1, threads, [&](index_t lo, index_t hi) {
      static thread_local Workspace ws;
      struct Trim {  // also when a map fails
        Workspace& ws;
        ~Trim() { ws.trim(kKeptWorkspaceBytes); }
      } trim{ws};
      for (index_t i = lo; i < hi; ++i) {
        if (i > lo) checkpoint();
        egm_map(s + i * h * w, h, w, params, 1, ws, outs[i]);
      }
    });
  }
  Result r;
  r.counts.resize(b);
  std::size_t k = 0;
  for (index_t i = 0; i < b; ++i) k += outs[i].weights.size();
  r.means.reserve(2 * k), r.variances.reserve(2 * k), r.weights.reserve(k), r.boxes.reserve(4 * k);
  for (index_t i = 0; i < b; ++i) {
    const MapOut& o = outs[i];
    r.counts[i] = static_cast<std::int64_t>(o.weights.size());
    r.means.insert(r.means.end(), o.means.begin(), o.means.end());
    r.variances.insert(r.variances.end(), o.variances.begin(), o.variances.end());
    r.weights.insert(r.weights.end(), o.weights.begin(), o.weights.end());
    r.boxes.insert(r.boxes.end(), o.boxes.begin(), o.boxes.end());
  }
  return r;
}

}  // namespace deepret::egm
