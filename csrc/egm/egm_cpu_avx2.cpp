// The AVX2+FMA copy of the EGM E-step (this file alone is compiled with
// -mavx2 -mfma; egm_cpu.cpp calls it only on CPUs that have both).
#if defined(__AVX2__) && defined(__FMA__)

#define DEEPRET_SIMD_NS avx2
#include "egm/egm_estep.h"

namespace deepret::egm::avx2 {

#define DEEPRET_EGM_DEFINE 2  // smoothing rows per step
#include "egm/egm_kernels.inc"
#undef DEEPRET_EGM_DEFINE

}  // namespace deepret::egm::avx2

#endif
