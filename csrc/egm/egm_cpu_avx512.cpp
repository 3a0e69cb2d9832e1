// The AVX-512F copy of the EGM E-step and grid smoothing (this file alone is
// compiled with -mavx512f; egm_cpu.cpp calls it only where use_avx512f()).
// Same source as the other copies (egm_estep.h); the 32 vector registers
// hold the few-component E-step's ten running sums without spilling.
#if defined(__AVX512F__)

#define DEEPRET_SIMD_NS avx512
#include "egm/egm_estep.h"

namespace deepret::egm::avx512 {

#define DEEPRET_EGM_DEFINE 4  // smoothing rows per step
#include "egm/egm_kernels.inc"
#undef DEEPRET_EGM_DEFINE

}  // namespace deepret::egm::avx512

#endif
