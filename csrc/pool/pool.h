// Feature saliency and pooling of CNN activations into descriptors
// (the formulas, for users: docs/algorithms/saliency_pooling.md).
//
// Activations are contiguous [b, c, h, w] (channel-major, as a CNN gives
// them). Sums run in double whatever T is (float or double). L2
// normalization is v / (||v||_2 + eps) with eps = 1e-6, as in the reference
// (cirtorch) code.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/array_view.h"
#include "common/device.h"
#include "common/dtype.h"
#include "common/hostdevice.h"

namespace deepret::pool {

constexpr double kNormEps = 1e-6;

// CroW-style feature saliency: q_j = fraction of the h*w positions where
// channel j is non-zero, b_j = log(sum_i (q_i + eps) / (q_j + eps)),
// F = sum_j b_j a_j, out = sqrt(F / ||F||_2) (all zeros when F is 0).
// ValueError for negative or non-finite activations, unless !check_input
// (the caller has checked them: the results for such values are then
// meaningless, but nothing reads out of bounds).
template <class T>
void feature_saliency(const T* a,  // [b, c, h * w]
                      index_t b, index_t c, index_t hw, double eps,
                      T* out,      // [b, h * w]
                      int num_threads, bool check_input = true);

enum class Global : int { Mac = 0, Spoc = 1, Gem = 2 };

// Global pooling per image and channel: Mac = max, Spoc = sum,
// Gem = (mean of max(x, eps)^p)^(1/p); then L2-normalized when `normalize`.
template <class T>
void global_pool(const T* a,  // [b, c, h * w]
                 index_t b, index_t c, index_t hw, Global kind, double p, double eps,
                 bool normalize, T* out,  // [b, c]
                 int num_threads);

// Max over the pixels whose centres (integer y, x) lie in box r: rows
// ceil(y0)..floor(y1), columns ceil(x0)..floor(x1), of image image[r].
// ValueError for a box holding no pixel, an image index out of range, or
// non-finite activations (unless !check_input, as feature_saliency).
template <class T>
void regional_max(const T* a,  // [b, c, h, w]
                  index_t b, index_t c, index_t h, index_t w,
                  const double* boxes,        // [k, 4] (y0, x0, y1, x1)
                  const std::int64_t* image,  // [k]
                  index_t k, bool normalize,
                  T* out,                     // [k, c]
                  int num_threads, bool check_input = true);

// R-MAC: out[i] = L2N(sum over regions r of L2N(max of a[i] over region r)),
// regions given as inclusive integer pixel ranges (the same for every image).
template <class T>
void rmac(const T* a,  // [b, c, h, w]
          index_t b, index_t c, index_t h, index_t w,
          const std::int64_t* regions,  // [r, 4] (y0, x0, y1, x1), inclusive
          index_t r,
          T* out,                       // [b, c]
          int num_threads);

// The inclusive pixel range [*lo, *hi] of the centres inside [x0, x1],
// clipped to [0, n) (empty when *lo > *hi). The rounded coordinates are
// clamped while still doubles: converting a double outside index_t's range
// (a box at 1e19) to an integer is undefined behaviour.
DEEPRET_HD void pixel_range(double x0, double x1, index_t n, index_t* lo, index_t* hi) {
  const double first = ceil(x0), last = floor(x1);
  *lo = first >= double(n) ? n : (first > 0.0 ? static_cast<index_t>(first) : 0);
  *hi = last >= double(n - 1) ? n - 1 : (last >= 0.0 ? static_cast<index_t>(last) : -1);
}

}  // namespace deepret::pool

// ---------------------------------------------------------------- CUDA engine
// (pool_cuda.cu; built only with DEEPRET_CUDA): the same functions on device
// pointers, float32 or float64 (is_double), queued on `stream`. Bad input
// (negative or non-finite activations for feature_saliency, non-finite ones
// for pooling, a box holding no pixel) sets *status (a device int the caller
// zeroed) to 1; the caller turns that into ValueError.
namespace deepret::pool::cuda {

void feature_saliency(DType dtype, const void* a,  // [b, c, hw] on the device
                      index_t b, index_t c, index_t hw, double eps,
                      void* out,                      // [b, hw] on the device
                      int* status, deepret::cuda::Scratch& scratch, std::uintptr_t stream);
void global_pool(DType dtype, const void* a,  // [b, c, hw] on the device
                 index_t b, index_t c, index_t hw, Global kind, double p, double eps, bool normalize,
                 void* out,                      // [b, c] on the device
                 int* status, std::uintptr_t stream);
void regional_max(DType dtype, const void* a,    // [b, c, h, w] on the device
                  index_t b, index_t c, index_t h, index_t w,
                  const double* boxes,              // [k, 4] on the device
                  const std::int64_t* image,        // [k] on the device
                  index_t k, bool normalize,
                  void* out,                        // [k, c] on the device
                  int* status, std::uintptr_t stream);
// R-MAC over r shared boxes (whole map first), given as (y0, x0, y1, x1) doubles.
void rmac(DType dtype, const void* a,  // [b, c, h, w] on the device
          index_t b, index_t c, index_t h, index_t w,
          const double* boxes,            // [r, 4] on the device
          index_t r,
          void* out,                      // [b, c] on the device
          int* status, deepret::cuda::Scratch& scratch, std::uintptr_t stream);


}  // namespace deepret::pool::cuda
