// 1-D correlation/convolution engine (numpy.correlate / numpy.convolve).
//
// Every mode of numpy reduces to one formula: for o in [0, out_len)
//     out[o] = sum over taps j in [0, m) with 0 <= o - left + j < n of a[o - left + j] * v[j]
// where (out_len, left) are (n + m - 1, m - 1) for "full", (max(n, m), ...) for
// "same" and so on; the Python layer computes them. Convolution is correlation
// with v reversed. All arrays are contiguous.
#pragma once

#include <complex>
#include <cstdint>

#include "common/array_view.h"
#include "common/dtype.h"

namespace deepret::conv {

// T is float, double, long double, or an unsigned integer type (signed
// integers run as their unsigned twin: two's-complement wrap-around gives the
// same bits). Integer arithmetic wraps modulo 2^bits, as numpy's does.
template <class T>
void correlate1d(const T* a, index_t n,       // [n]
                 const T* v, index_t m,       // [m]
                 T* out, index_t out_len,     // [out_len]
                 index_t left, int num_threads);

// Boolean correlation as numpy computes it: out[o] = OR_j (a[..] AND v[j]).
// Values are bytes holding 0 or 1.
void correlate1d_bool(const std::uint8_t* a, index_t n,    // [n]
                      const std::uint8_t* v, index_t m,    // [m]
                      std::uint8_t* out, index_t out_len,  // [out_len]
                      index_t left, int num_threads);

// Complex correlation; with conjugate_v the taps are conj(v[j]) (numpy.correlate).
template <class T>
void correlate1d_complex(const std::complex<T>* a, index_t n,    // [n]
                         const std::complex<T>* v, index_t m,    // [m]
                         std::complex<T>* out, index_t out_len,  // [out_len]
                         index_t left, bool conjugate_v, int num_threads);

}  // namespace deepret::conv

// ---------------------------------------------------------------- CUDA engine
// (conv_cuda.cu; built only with DEEPRET_CUDA). Device pointers, contiguous;
// the dtype is passed at run time so that callers need no CUDA headers.
namespace deepret::conv::cuda {

// The same formula as correlate1d above, on the GPU, queued on `stream`
// (a cudaStream_t as an integer; 0 is the legacy default stream).
// dtype: bool, any integer, float32/64, complex64/128.
void correlate1d(DType dtype,
                 const void* a, index_t n,       // [n] on the device
                 const void* v, index_t m,       // [m] on the device
                 void* out, index_t out_len,     // [out_len] on the device
                 index_t left, bool conjugate_v, std::uintptr_t stream);


}  // namespace deepret::conv::cuda
