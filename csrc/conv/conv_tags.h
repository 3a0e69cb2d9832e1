// Operation tags shared by the SIMD copies of the correlation kernel (tags only:
// no code, so nothing here can be compiled with the wrong instruction set).
#pragma once

#include <type_traits>

namespace deepret::conv {

struct MulAddTag {};  // acc + x * y
struct AndOrTag {};   // acc | (x & y), numpy's boolean dot

}  // namespace deepret::conv
