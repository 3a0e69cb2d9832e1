// The AVX2+FMA copy of the batched CG's row passes (this file alone is
// compiled with -mavx2 -mfma; cg_cpu.cpp calls it only where use_avx2_fma()).
#if defined(__AVX2__) && defined(__FMA__)

#define DEEPRET_SIMD_NS avx2
#include "diffusion/cg_simd.h"
#include "diffusion/cg_simd_instances.inc"

#endif
