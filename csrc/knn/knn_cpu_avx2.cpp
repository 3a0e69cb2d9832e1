// The AVX2+FMA copy of the kNN similarity kernel (this file alone is compiled
// with -mavx2 -mfma; knn_cpu.cpp calls it only on CPUs that have both).
#if defined(__AVX2__) && defined(__FMA__)

#define DEEPRET_SIMD_NS avx2
#define DEEPRET_VBYTES 32
#include "knn/knn_simd.h"

namespace deepret::knn::avx2 {

#define DEEPRET_KNN_INSTANTIATE
#include "knn/knn_kernels.inc"
#undef DEEPRET_KNN_INSTANTIATE

}  // namespace deepret::knn::avx2

#endif
