#include "common/simd.h"

#include <atomic>

#include "common/errors.h"

namespace deepret {

namespace {
// 0: auto, 1: portable, 2: avx2+fma, 3: avx512f
std::atomic<int> forced_path{0};
}  // namespace

bool cpu_has_avx2_fma() {
#if defined(DEEPRET_X86) && (defined(__GNUC__) || defined(__clang__))
  // F16C too (objects/ converts halves with it): every AVX2 CPU has it.
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          __builtin_cpu_supports("f16c");
  return has;
#else
  return false;
#endif
}

bool cpu_has_avx512f() {
#if defined(DEEPRET_X86) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f");
  return has;
#else
  return false;
#endif
}

bool use_avx2_fma() {
  const int forced = forced_path.load(std::memory_order_relaxed);
  if (forced == 1) return false;
  return cpu_has_avx2_fma();
}

bool use_avx512f() {
#if defined(DEEPRET_X86) && (defined(__GNUC__) || defined(__clang__))
  const int forced = forced_path.load(std::memory_order_relaxed);
  return cpu_has_avx512f() && (forced == 0 || forced == 3);
#else
  return false;
#endif
}

// "avx512f": auto detection on a CPU with AVX-512F; the families that have an
// AVX-512 copy (2-D convolution, kNN, diffusion panels, EGM) take it, the
// others their AVX2+FMA one.
const char* simd_path() {
  if (use_avx512f()) return "avx512f";
  return use_avx2_fma() ? "avx2+fma" : "portable";
}

void force_simd_path(const std::string& path) {
  if (path == "auto") {
    forced_path = 0;
  } else if (path == "portable") {
    forced_path = 1;
  } else if (path == "avx2+fma") {
    check(cpu_has_avx2_fma(), "this CPU (or build) has no AVX2+FMA path");
    forced_path = 2;
  } else if (path == "avx512f") {
    check(cpu_has_avx512f(), "this CPU (or build) has no AVX-512F path");
    forced_path = 3;
  } else {
    throw ValueError("simd path must be 'auto', 'portable', 'avx2+fma' or 'avx512f', got '" + path +
                     "'");
  }
}

}  // namespace deepret
