// The AVX2+FMA copy of the correlation kernel (this file alone is compiled with
// -mavx2 -mfma; conv_cpu.cpp calls it only on CPUs that have both).
#if defined(__AVX2__) && defined(__FMA__)

#include "conv/conv_tags.h"

#define DEEPRET_SIMD_NS avx2
#define DEEPRET_VBYTES 32
#include "conv/conv_simd.h"

namespace deepret::conv::avx2 {

#define DEEPRET_INSTANTIATE(T, Tag, P) \
  template void interior<T, Tag, P>(const T* const*, const T* const*, index_t, T*, index_t, T*);
DEEPRET_INSTANTIATE(float, MulAddTag, 1)
DEEPRET_INSTANTIATE(double, MulAddTag, 1)
DEEPRET_INSTANTIATE(long double, MulAddTag, 1)
DEEPRET_INSTANTIATE(std::uint8_t, MulAddTag, 1)
DEEPRET_INSTANTIATE(std::uint16_t, MulAddTag, 1)
DEEPRET_INSTANTIATE(std::uint32_t, MulAddTag, 1)
DEEPRET_INSTANTIATE(std::uint64_t, MulAddTag, 1)
DEEPRET_INSTANTIATE(std::uint8_t, AndOrTag, 1)
DEEPRET_INSTANTIATE(float, MulAddTag, 2)
DEEPRET_INSTANTIATE(double, MulAddTag, 2)
DEEPRET_INSTANTIATE(long double, MulAddTag, 2)
#undef DEEPRET_INSTANTIATE

}  // namespace deepret::conv::avx2

#endif
