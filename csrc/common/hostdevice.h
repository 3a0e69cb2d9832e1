// Host/device qualifiers: math written once and shared by the CPU and CUDA engines.
#pragma once

#if defined(__CUDACC__)
#define DEEPRET_HD __host__ __device__ __forceinline__
#define DEEPRET_DEVICE __device__
#else
#define DEEPRET_HD inline
#define DEEPRET_DEVICE
#endif
