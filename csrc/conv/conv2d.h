// 2-D correlation (scipy.signal.correlate2d / convolve2d) and the CNN
// convolution layer (torch.nn.functional.conv2d, NCHW), CPU and CUDA engines.
//
// correlate2d: every mode and boundary of scipy reduces to one formula,
//     out[m][n] = sum_{j < kh} sum_{k < kw} ext(m - top + j, n - left + k) * w[j][k]
// for m < oh, n < ow, where ext extends the image past its edges by the
// boundary rule (fill value, circular wrap, or symmetric reflection, any
// number of periods away). The Python layer flips/conjugates w and computes
// (oh, ow, top, left) from scipy's mode; all arrays are contiguous.
//
// conv2d: out[b][o][y][x] = bias[o] + sum_{c < C/groups} sum_{j, k}
//     in[b][g * C/groups + c][y * sh - ph + j * dh][x * sw - pw + k * dw] * weight[o][c][j][k]
// with g = o / (O / groups) and zeros outside the input (ph, pw: the top and
// left padding; bottom and right follow from oh, ow).
#pragma once

#include <complex>
#include <cstdint>

#include "common/array_view.h"
#include "common/dtype.h"
#include "common/hostdevice.h"

namespace deepret::conv {

enum class Boundary : int { Fill = 0, Wrap = 1, Symm = 2 };

// scipy's index extensions: j anywhere, m > 0, result in [0, m).
DEEPRET_HD index_t wrap_index(index_t j, index_t m) { return j >= 0 ? j % m : ((j % m) + m) % m; }
DEEPRET_HD index_t symm_index(index_t j, index_t m) {
  const index_t k = j >= 0 ? j % (2 * m) : (-(j + 1)) % (2 * m);
  return k >= m ? 2 * m - k - 1 : k;
}

// T: float, double, long double or an unsigned integer (signed integers run
// as their unsigned twins; products and sums wrap as scipy's do).
template <class T>
void correlate2d(const T* image, index_t h, index_t w,    // [h, w]
                 const T* weights, index_t kh, index_t kw,  // [kh, kw]
                 T* out, index_t oh, index_t ow,            // [oh, ow]
                 index_t top, index_t left, Boundary boundary, T fill, int num_threads);

template <class T>
void correlate2d_complex(const std::complex<T>* image, index_t h, index_t w,    // [h, w]
                         const std::complex<T>* weights, index_t kh, index_t kw,  // [kh, kw]
                         std::complex<T>* out, index_t oh, index_t ow,            // [oh, ow]
                         index_t top, index_t left, Boundary boundary, std::complex<T> fill,
                         int num_threads);

struct Conv2dShape {
  index_t n, c, h, w;         // input [n, c, h, w]
  index_t o, kh, kw;          // weight [o, c / groups, kh, kw]
  index_t oh, ow;             // output [n, o, oh, ow]
  index_t sh, sw, ph, pw, dh, dw, groups;
};

// T: float or double; all arrays contiguous; bias may be null.
template <class T>
void conv2d(const T* input,   // [n, c, h, w]
            const T* weight,  // [o, c / groups, kh, kw]
            const T* bias,    // [o] or nullptr
            T* out,           // [n, o, oh, ow]
            const Conv2dShape& s, int num_threads);

// Checks of a Conv2dShape shared by both engines (ValueError on failure).
void check_conv2d_shape(const Conv2dShape& s);

}  // namespace deepret::conv

// ---------------------------------------------------------------- CUDA engine
// (conv2d_cuda.cu; built only with DEEPRET_CUDA). Device pointers, contiguous,
// queued on `stream` (a cudaStream_t as an integer).
namespace deepret::conv::cuda {

// fill points to one host value of the dtype.
void correlate2d(DType dtype, const void* image, index_t h, index_t w,  // [h, w]
                 const void* weights, index_t kh, index_t kw,         // [kh, kw]
                 void* out, index_t oh, index_t ow,                   // [oh, ow]
                 index_t top, index_t left, int boundary, const void* fill, std::uintptr_t stream);

// dtype: F32 or F64.
void conv2d(DType dtype, const void* input, const void* weight, const void* bias, void* out,
            const Conv2dShape& s, std::uintptr_t stream);

}  // namespace deepret::conv::cuda
