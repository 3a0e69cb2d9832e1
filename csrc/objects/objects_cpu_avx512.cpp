// The AVX-512F copy of the object-saliency loops (this file alone is compiled
// with -mavx512f; objects_cpu.cpp calls it only where use_avx512f()).
#if defined(__AVX512F__)

#define DEEPRET_SIMD_NS avx512
#define DEEPRET_VBYTES 64
#include "objects/objects_simd.h"

namespace deepret::objects::avx512 {

#define DEEPRET_OBJECTS_DEFINE
#include "objects/objects_kernels.inc"
#undef DEEPRET_OBJECTS_DEFINE

}  // namespace deepret::objects::avx512

#endif
