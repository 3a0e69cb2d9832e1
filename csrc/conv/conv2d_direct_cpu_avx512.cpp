// The AVX-512F copy of conv2d's direct tiles (this file alone is compiled
// with -mavx512f; conv2d_direct_cpu.cpp calls it only where use_avx512f()).
// The same source as the portable and AVX2 copies, with 64-byte vectors.
#if defined(__AVX512F__)

#define DEEPRET_SIMD_NS avx512
#define DEEPRET_VBYTES 64
#include "conv/conv2d_direct_simd.h"

namespace deepret::conv::avx512 {

template direct::DirectKernels<float> direct_kernels<float>();
template direct::DirectKernels<double> direct_kernels<double>();

}  // namespace deepret::conv::avx512

#endif
