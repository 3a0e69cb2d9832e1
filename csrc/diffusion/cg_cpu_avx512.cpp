// The AVX-512F copy of the batched CG's row passes (this file alone is
// compiled with -mavx512f; cg_cpu.cpp calls it only where use_avx512f()).
#if defined(__AVX512F__)

#define DEEPRET_SIMD_NS avx512
#include "diffusion/cg_simd.h"
#include "diffusion/cg_simd_instances.inc"

#endif
