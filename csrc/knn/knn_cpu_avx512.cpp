// The AVX-512F copy of the kNN similarity kernel (this file alone is compiled
// with -mavx512f; knn_cpu.cpp calls it only where use_avx512f()).
#if defined(__AVX512F__)

#define DEEPRET_SIMD_NS avx512
#define DEEPRET_VBYTES 64
#include "knn/knn_simd.h"

namespace deepret::knn::avx512 {

template void score_block<float, 16>(const float*, index_t, index_t, const float*, index_t,
                                     const float*, float*, float*, bool);
template void score_block<double, 8>(const double*, index_t, index_t, const double*, index_t,
                                     const double*, double*, double*, bool);
template index_t candidates<float>(const float*, const float*, float, const float*, float, index_t,
                                   std::int32_t*);
template index_t candidates<double>(const double*, const double*, double, const double*, double,
                                    index_t, std::int32_t*);

}  // namespace deepret::knn::avx512

#endif
