// The AVX2+FMA copy of the conv2d micro-kernel (this file alone is compiled
// with -mavx2 -mfma; conv2d_cpu.cpp calls it only on CPUs with both).
#if defined(__AVX2__) && defined(__FMA__)

#define DEEPRET_SIMD_NS avx2
#define DEEPRET_VBYTES 32
#include "conv/conv2d_simd.h"

namespace deepret::conv::avx2 {

template void gemm_tile<float>(index_t, const float*, const float*, float*, index_t, int, int, bool,
                               const float*);
template void gemm_tile<double>(index_t, const double*, const double*, double*, index_t, int, int,
                                bool, const double*);

}  // namespace deepret::conv::avx2

#endif
