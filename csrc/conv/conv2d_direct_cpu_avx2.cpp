// The AVX2+FMA copy of conv2d's direct tiles (this file alone is compiled
// with -mavx2 -mfma; conv2d_direct_cpu.cpp calls it only on CPUs with both).
#if defined(__AVX2__) && defined(__FMA__)

#define DEEPRET_SIMD_NS avx2
#define DEEPRET_VBYTES 32
#include "conv/conv2d_direct_simd.h"

namespace deepret::conv::avx2 {

template direct::DirectKernels<float> direct_kernels<float>();
template direct::DirectKernels<double> direct_kernels<double>();

}  // namespace deepret::conv::avx2

#endif
