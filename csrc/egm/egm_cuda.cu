// CUDA EGM: one thread block per map, the numerics of egm.h with the math of
// egm_math.h. The E-step runs in two deterministic passes (no atomics):
// threads over samples find each sample's largest term, its index and the
// normalizer; then threads over components add up their sums over the
// samples in sample order. Sorting is by rank (stable), the purge is serial
// (it is short: a handful of survivors). Per-map scratch lives in one
// stream-ordered allocation.
#include <cstdint>

#include "common/cuda_check.h"
#include "common/launch.h"
#include "egm/egm.h"
#include "egm/egm_math.h"

namespace deepret::egm::cuda {

namespace {

constexpr int kThreads = 128;

// Per-map scratch, in doubles, for a map of m = h * w pixels.
enum Slot : int {
  kPy = 0, kPx, kPs,                  // samples
  kMy, kMx, kVy, kVx, kPi,            // components
  kIvy, kIvx, kLogc,                  // E-step constants
  kTop, kZ, kArg,                     // per sample: largest term, normalizer, its component
  kNmy, kNmx, kNvy, kNvx, kMass,      // after the M-step
  kRank, kKept,                       // purge order, kept list
  kAcc,                               // kAccFields slots follow
  kSlots = kAcc + kAccFields
};

struct Args {
  const double* s;  // [b, h, w]
  index_t h, w;
  Params p;
  double* scratch;  // [b, kSlots, h * w]
  double* means;    // [b * h * w, 2]
  double* variances;
  double* weights;
  double* boxes;
  std::int64_t* counts;  // [b]
};

__device__ double block_max(double v, double* red) {
  red[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) red[threadIdx.x] = fmax(red[threadIdx.x], red[threadIdx.x + s]);
    __syncthreads();
  }
  const double out = red[0];
  __syncthreads();
  return out;
}

__global__ void egm_kernel(Args a) {
  __shared__ double red[kThreads];
  __shared__ int bad;
  __shared__ index_t n_s, k_s;
  __shared__ bool stop_s;
  const index_t map = blockIdx.x, m = a.h * a.w;
  const double* s = a.s + map * m;
  double* ws = a.scratch + map * kSlots * m;
  auto slot = [&](int f) { return ws + static_cast<index_t>(f) * m; };
  const Params& p = a.p;
  const double s2 = p.sigma * p.sigma;

  if (threadIdx.x == 0) bad = 0;
  __syncthreads();
  double top = 0.0;
  for (index_t t = threadIdx.x; t < m; t += blockDim.x) {
    const double v = s[t];
    if (!isfinite(v) || v < 0) bad = 1;
    top = fmax(top, v);
  }
  top = block_max(top, red);
  if (bad) {
    if (threadIdx.x == 0) a.counts[map] = -1;
    return;
  }
  // Samples in row-major order (serial: keeps the order; m is small).
  if (threadIdx.x == 0) {
    index_t n = 0;
    if (top > 0) {
      for (index_t t = 0; t < m; ++t) {
        double v = s[t] / top;
        if (v < p.threshold) continue;
        v = pow(v, p.power);
        if (!(v > 0)) continue;
        slot(kPy)[n] = double(t / a.w), slot(kPx)[n] = double(t % a.w), slot(kPs)[n] = v;
        ++n;
      }
    }
    double total = 0.0;
    for (index_t i = 0; i < n; ++i) total += slot(kPs)[i];
    for (index_t i = 0; i < n; ++i) {
      slot(kMy)[i] = slot(kPy)[i], slot(kMx)[i] = slot(kPx)[i];
      slot(kVy)[i] = s2, slot(kVx)[i] = s2, slot(kPi)[i] = slot(kPs)[i] / total;
    }
    n_s = n, k_s = n, stop_s = false;
  }
  __syncthreads();
  const index_t n = n_s;
  index_t before = -1;
  const double *py = slot(kPy), *px = slot(kPx), *ps = slot(kPs);
  for (int it = 0; it < p.max_iter && n > 0; ++it) {
    const index_t k = k_s;
    for (index_t j = threadIdx.x; j < k; j += blockDim.x) {
      const double vy = slot(kVy)[j] + s2, vx = slot(kVx)[j] + s2;
      slot(kIvy)[j] = 1.0 / vy, slot(kIvx)[j] = 1.0 / vx;
      slot(kLogc)[j] = log(slot(kPi)[j]) - kLog2Pi - 0.5 * (log(vy) + log(vx));
    }
    __syncthreads();
    const double *my = slot(kMy), *mx = slot(kMx), *ivy = slot(kIvy), *ivx = slot(kIvx), *logc = slot(kLogc);
    // Pass 1: per sample, the largest term, its (first) component, the normalizer.
    for (index_t i = threadIdx.x; i < n; i += blockDim.x) {
      double best = -1e300;
      index_t arg = 0;
      for (index_t j = 0; j < k; ++j) {
        const double dy = py[i] - my[j], dx = px[i] - mx[j];
        const double l = logc[j] - 0.5 * (dy * dy * ivy[j] + dx * dx * ivx[j]);
        if (l > best) best = l, arg = j;
      }
      double z = 0.0;
      for (index_t j = 0; j < k; ++j) {
        const double dy = py[i] - my[j], dx = px[i] - mx[j];
        z += exp_nonpos(logc[j] - 0.5 * (dy * dy * ivy[j] + dx * dx * ivx[j]) - best);
      }
      slot(kTop)[i] = best, slot(kZ)[i] = z, slot(kArg)[i] = double(arg);
    }
    __syncthreads();
    // Pass 2: per component, its sums over the samples in order; then the M-step.
    for (index_t j = threadIdx.x; j < k; j += blockDim.x) {
      double acc[kAccFields] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      for (index_t i = 0; i < n; ++i) {
        const double dy = py[i] - my[j], dx = px[i] - mx[j];
        const double l = logc[j] - 0.5 * (dy * dy * ivy[j] + dx * dx * ivx[j]);
        const bool inner = index_t(slot(kArg)[i]) == j;
        const double g = ps[i] / slot(kZ)[i];
        const double e = inner ? 1.0 : exp_nonpos(l - slot(kTop)[i]);
        const double gy = g * py[i], gx = g * px[i];
        const int o = inner ? kLi : kLo;
        acc[o] += e * g, acc[o + 1] += e * gy, acc[o + 2] += e * gx;
        acc[o + 3] += e * (gy * py[i]), acc[o + 4] += e * (gx * px[i]);
      }
      double ny, nx, vy, vx;
      const double l = m_step(acc, p.lam, s2, &ny, &nx, &vy, &vx);
      slot(kNmy)[j] = ny, slot(kNmx)[j] = nx, slot(kNvy)[j] = vy, slot(kNvx)[j] = vx;
      slot(kMass)[j] = l > 0 ? l : 0.0;
    }
    __syncthreads();
    // Weights of the live components (dead ones: mass 0, ranked last, never kept).
    if (threadIdx.x == 0) {
      double total = 0.0;
      for (index_t j = 0; j < k; ++j) total += slot(kMass)[j];
      red[0] = total;
    }
    __syncthreads();
    const double total = red[0];
    for (index_t j = threadIdx.x; j < k; j += blockDim.x) slot(kPi)[j] = slot(kMass)[j] / total;
    __syncthreads();
    // Stable rank by descending weight: rank_j = #{i: pi_i > pi_j or (pi_i == pi_j and i < j)}.
    for (index_t j = threadIdx.x; j < k; j += blockDim.x) {
      const double pj = slot(kPi)[j];
      index_t r = 0;
      for (index_t i = 0; i < k; ++i) {
        const double pi = slot(kPi)[i];
        r += (pi > pj) || (pi == pj && i < j);
      }
      slot(kRank)[r] = double(j);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      const double* pi = slot(kPi);
      const double *ny = slot(kNmy), *nx = slot(kNmx), *nvy = slot(kNvy), *nvx = slot(kNvx);
      index_t kept = 0;
      double kept_total = 0.0;
      for (index_t r = 0; r < k; ++r) {
        const index_t j = index_t(slot(kRank)[r]);
        if (!(slot(kMass)[j] > 0)) continue;
        const double pj = pi[j];
        bool keep = true;
        if (kept > 0) {
          const double self = pj * pj * self_overlap(nvy[j], nvx[j]);
          double cross = 0.0;
          for (index_t q = 0; q < kept && keep; ++q) {
            const index_t i = index_t(slot(kKept)[q]);
            cross += pj * pi[i] * overlap(ny[j], nx[j], nvy[j], nvx[j], ny[i], nx[i], nvy[i], nvx[i]);
            keep = self / (self + cross) >= p.tau;
          }
        }
        if (!keep) continue;
        slot(kKept)[kept++] = double(j);
        kept_total += pj;
      }
      for (index_t q = 0; q < kept; ++q) {
        const index_t j = index_t(slot(kKept)[q]);
        slot(kMy)[q] = ny[j], slot(kMx)[q] = nx[j], slot(kVy)[q] = nvy[j], slot(kVx)[q] = nvx[j];
      }
      // Weights after the moves above (pi is not overwritten: separate pass).
      for (index_t q = 0; q < kept; ++q) slot(kAcc)[q] = pi[index_t(slot(kKept)[q])] / kept_total;
      for (index_t q = 0; q < kept; ++q) slot(kPi)[q] = slot(kAcc)[q];
      stop_s = kept == k && k == before;
      k_s = kept;
    }
    __syncthreads();
    before = k;
    if (stop_s) break;
  }
  const index_t k = n > 0 ? k_s : 0;
  const index_t row0 = map * m;
  for (index_t j = threadIdx.x; j < k; j += blockDim.x) {
    const index_t r = row0 + j;
    const double my = slot(kMy)[j], mx = slot(kMx)[j], vy = slot(kVy)[j], vx = slot(kVx)[j];
    a.means[2 * r] = my, a.means[2 * r + 1] = mx;
    a.variances[2 * r] = vy, a.variances[2 * r + 1] = vx;
    a.weights[r] = slot(kPi)[j];
    box(my, mx, vy, vx, p.box_scale, double(a.h), double(a.w), a.boxes + 4 * r);
  }
  if (threadIdx.x == 0) a.counts[map] = k;
}

}  // namespace

void egm(const double* s, index_t b, index_t h, index_t w, const Params& params, double* means,
         double* variances, double* weights, double* boxes, std::int64_t* counts, deepret::cuda::Scratch& scratch_pool,
         std::uintptr_t stream) {
  if (b == 0) return;
  // One block per map, in grid x (limit 2^31 - 1).
  check(b <= launch::kMaxGridX, "egm: on the GPU at most 2^31 - 1 maps per call");
  const auto st = reinterpret_cast<cudaStream_t>(stream);
  if (h * w == 0) {
    cuda_check(cudaMemsetAsync(counts, 0, sizeof(std::int64_t) * b, st), "cudaMemsetAsync");
    return;
  }
  double* scratch = scratch_pool.array<double>(b * kSlots * h * w);
  Args a{s, h, w, params, scratch, means, variances, weights, boxes, counts};
  egm_kernel<<<static_cast<unsigned>(b), kThreads, 0, st>>>(a);
  cuda_check(cudaGetLastError(), "egm kernel launch");
}

}  // namespace deepret::egm::cuda
