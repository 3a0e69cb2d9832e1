// Operation tags shared by the SIMD copies of the correlation kernel (tags only:
// no code, so nothing here can be compiled with the wrong instruction set).
#pragma once

#include <type_traits>

namespace deepret::conv {

struct MulAddTag {};  // acc + x * y
struct AndOrTag {};   // acc | (x & y), numpy's boolean dot

// Widest SIMD vector in elements over all paths and types (uint8 on AVX2):
// the driver sizes the kernel's scratch with it.
constexpr int kMaxSimdLanes = 32;

}  // namespace deepret::conv
