// The AVX2+FMA+F16C copy of the object-saliency loops (this file alone is compiled
// with -mavx2 -mfma -mf16c; objects_cpu.cpp calls it on CPUs that have all three).
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#define DEEPRET_SIMD_NS avx2
#define DEEPRET_VBYTES 32
#include "objects/objects_simd.h"

namespace deepret::objects::avx2 {

#define DEEPRET_OBJECTS_DEFINE
#include "objects/objects_kernels.inc"
#undef DEEPRET_OBJECTS_DEFINE

}  // namespace deepret::objects::avx2

#endif
