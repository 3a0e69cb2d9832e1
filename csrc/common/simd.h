// Run-time SIMD dispatch: the default build targets baseline x86-64 (or the
// host's baseline elsewhere); kernels with an AVX2+FMA variant compile it in a
// separate *_avx2.cpp file and call it only where the CPU has both.
#pragma once

#include <string>

namespace deepret {

// True when the CPU has AVX2, FMA and F16C (every AVX2 CPU has F16C) and the
// build compiled the AVX2 kernels.
bool cpu_has_avx2_fma();

// Whether kernels should take the AVX2+FMA path now: the CPU's answer unless
// force_simd_path() chose otherwise.
bool use_avx2_fma();

// True when the CPU has AVX-512F (besides AVX2 and FMA) and the build
// compiled the AVX-512 kernels.
bool cpu_has_avx512f();

// True when kernels that also have an AVX-512F variant should take it: the
// CPU has AVX-512F and the path is detected ("auto") or pinned to "avx512f";
// pinning "avx2+fma" or "portable" keeps them off it.
bool use_avx512f();

// "avx512f", "avx2+fma" or "portable": the path kernels take now.
const char* simd_path();

// Pin a path ("portable", "avx2+fma", "avx512f") or go back to detection
// ("auto"), so that one machine can run (test, measure) every path it has;
// python/deepret/_backend.py pins DEEPRET_SIMD's choice at import.
// ValueError for an unknown name or a path this CPU (or build) lacks.
void force_simd_path(const std::string& path);

}  // namespace deepret
