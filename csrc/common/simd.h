// Run-time SIMD dispatch: the default build targets baseline x86-64 (or the
// host's baseline elsewhere); kernels with an AVX2+FMA variant compile it in a
// separate *_avx2.cpp file and call it only where the CPU has both.
#pragma once

#include <string>

namespace deepret {

// True when the CPU has AVX2 and FMA and the build compiled the AVX2 kernels.
bool cpu_has_avx2_fma();

// Whether kernels should take the AVX2+FMA path now: the CPU's answer unless
// force_simd_path() chose otherwise.
bool use_avx2_fma();

// True when kernels that also have an AVX-512F variant (the 2-D ones) should
// take it: the CPU has AVX-512F (with AVX2 and FMA) and no path was forced, so
// forcing "avx2+fma" or "portable" still reaches those paths in tests.
// simd_path() keeps naming the AVX2/portable choice.
bool use_avx512f();

// "avx2+fma" or "portable": the path kernels take now.
const char* simd_path();

// Force a path ("portable", "avx2+fma") or go back to detection ("auto"), so
// tests can check both paths on one machine. ValueError for an unknown name or
// an AVX2 request on a CPU without it.
void force_simd_path(const std::string& path);

}  // namespace deepret
