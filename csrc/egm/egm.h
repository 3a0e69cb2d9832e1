// EGM: expanding Gaussian mixtures on non-negative 2-D maps (docs/egm.md).
//
// Numerics, shared by the CPU and CUDA engines and by tests/egm_reference.py:
// - pixel (y, x) is a sample at coordinates (y, x) (pixel centres at integers);
// - preprocess: s / max(s); values below `threshold` become 0; the rest are
//   raised to `power`; the samples are the pixels left > 0, in row-major order,
//   each weighted by its value;
// - start: one component per sample (mean = its pixel, variance sigma^2 on
//   both axes, weight proportional to its value);
// - E: log r_ik = log pi_k + log N(p_i | mu_k, diag(V_k + sigma^2)), normalized
//   per sample by its largest term (terms more than 700 below it count as 0);
// - M: saliency-weighted means and diagonal variances; the inner samples of k
//   are those whose largest term is k's (the first such k on ties); expansion
//   V = w V_in + (1 - w) V_out, w = (l_in / l)(1 - lam), an empty side taking
//   the other side's variance; then V is floored by sigma^2;
// - components with zero mass are dropped; purge visits components by
//   descending weight (lower index first on ties) and keeps the first, then
//   each one with |q|^2 / (|q|^2 + sum over kept <q, q_j>) >= tau; survivors'
//   weights are renormalized to sum 1 and keep that (descending) order;
// - stop after iteration t >= 2 when the count after t equals the counts after
//   t - 1 and t - 2, or after max_iter iterations;
// - boxes (y0, x0, y1, x1) = mean -/+ box_scale * sqrt(V), clipped to
//   [0, h - 1] x [0, w - 1].
// Each map is computed in a fixed order whatever the thread count, so results
// are deterministic and a map gives the same bits alone or in a batch.
//
// Cost: the first iteration has one component per sample, O(n^2) pairs for n
// samples. Where it is exact (lam = 0 and no E-step term can be cut, e.g.
// maps up to about 90x90 at sigma 2.5), the CPU engine runs that iteration as
// separable Gaussian smoothings of the grid, O(hw(h + w)); later iterations
// have a handful of components. The CUDA engine runs the plain E-step.
#pragma once

#include <cstdint>
#include <vector>

#include "common/array_view.h"
#include "common/device.h"

namespace deepret::egm {

struct Params {
  double sigma = 2.5;      // sample spread (pixels), > 0
  double lam = 0.0;        // expansion, in [0, 1)
  double tau = 0.55;       // purge threshold, in [0.5, 1]
  double threshold = 0.4;  // of the max-normalized map, in [0, 1]
  double power = 5.0;      // > 0
  int max_iter = 20;       // >= 1
  double box_scale = 2.0;  // >= 0
};

// Regions of all maps, concatenated in map order.
struct Result {
  std::vector<double> means;         // [K, 2] (y, x)
  std::vector<double> variances;     // [K, 2]
  std::vector<double> weights;       // [K], summing to 1 per map
  std::vector<double> boxes;         // [K, 4] (y0, x0, y1, x1)
  std::vector<std::int64_t> counts;  // [b]
};

// ValueError for bad parameters, NaN/Inf or negative values (checked before
// any work starts).
Result egm(const double* s,  // [b, h, w] contiguous
           index_t b, index_t h, index_t w, const Params& params, int num_threads);

}  // namespace deepret::egm

// ---------------------------------------------------------------- CUDA engine
// (egm_cuda.cu; built only with DEEPRET_CUDA). One thread block per map.
namespace deepret::egm::cuda {

// Writes, for each map i, its regions into rows [i * h * w, i * h * w + counts[i])
// of the padded outputs (a map has at most h * w regions). Device pointers.
void egm(const double* s,         // [b, h, w] on the device
         index_t b, index_t h, index_t w, const Params& params,
         double* means,           // [b * h * w, 2] on the device
         double* variances,       // [b * h * w, 2] on the device
         double* weights,         // [b * h * w] on the device
         double* boxes,           // [b * h * w, 4] on the device
         std::int64_t* counts,    // [b] on the device (-1: the map had NaN/Inf or a negative value)
         deepret::cuda::Scratch& scratch,  // device scratch (b * h * w slots)
         std::uintptr_t stream);

}  // namespace deepret::egm::cuda
