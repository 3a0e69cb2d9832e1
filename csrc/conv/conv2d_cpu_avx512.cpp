// The AVX-512F copy of the conv2d micro-kernel (this file alone is compiled
// with -mavx512f; conv2d_cpu.cpp calls it only where use_avx512f()).
#if defined(__AVX512F__)

#define DEEPRET_SIMD_NS avx512
#define DEEPRET_VBYTES 64
#include "conv/conv2d_simd.h"

namespace deepret::conv::avx512 {

static_assert(kGemmMR == 8 && kGemmNV == 3, "conv2d_cpu.cpp's kAvx512MR and avx512_nr() must match");

template void gemm_tile<float>(index_t, const float*, const float*, float*, index_t, int, int, bool,
                               const float*);
template void gemm_tile<double>(index_t, const double*, const double*, double*, index_t, int, int,
                                bool, const double*);

}  // namespace deepret::conv::avx512

#endif
