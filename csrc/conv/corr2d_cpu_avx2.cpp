// The AVX2+FMA copy of the 2-D correlation tile kernel (this file alone is
// compiled with -mavx2 -mfma; corr2d_cpu.cpp calls it only on CPUs with both).
#if defined(__AVX2__) && defined(__FMA__)

#define DEEPRET_SIMD_NS avx2
#define DEEPRET_VBYTES 32
#include "conv/corr2d_simd.h"

namespace deepret::conv::avx2 {

#define DEEPRET_INSTANTIATE(T, P)                                                           \
  template void tile2d<T, P>(const T* const*, index_t, const T* const*, index_t, index_t, T*, \
                             index_t, index_t, index_t);
DEEPRET_INSTANTIATE(float, 1)
DEEPRET_INSTANTIATE(double, 1)
DEEPRET_INSTANTIATE(long double, 1)
DEEPRET_INSTANTIATE(std::uint8_t, 1)
DEEPRET_INSTANTIATE(std::uint16_t, 1)
DEEPRET_INSTANTIATE(std::uint32_t, 1)
DEEPRET_INSTANTIATE(std::uint64_t, 1)
DEEPRET_INSTANTIATE(float, 2)
DEEPRET_INSTANTIATE(double, 2)
DEEPRET_INSTANTIATE(long double, 2)
#undef DEEPRET_INSTANTIATE

}  // namespace deepret::conv::avx2

#endif
