// The AVX-512F copy of the kNN similarity kernel (this file alone is compiled
// with -mavx512f; knn_cpu.cpp calls it only where use_avx512f()).
#if defined(__AVX512F__)

#define DEEPRET_SIMD_NS avx512
#define DEEPRET_VBYTES 64
#include "knn/knn_simd.h"

namespace deepret::knn::avx512 {

#define DEEPRET_KNN_INSTANTIATE
#include "knn/knn_kernels.inc"
#undef DEEPRET_KNN_INSTANTIATE

}  // namespace deepret::knn::avx512

#endif
