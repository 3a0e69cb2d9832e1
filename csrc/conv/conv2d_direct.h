// conv2d's direct paths (conv2d_direct_cpu.cpp), taken by conv2d() in
// conv2d_cpu.cpp for the layers where building an im2col panel costs more
// than the arithmetic it feeds:
//   - depthwise: one input channel per output channel (any stride, dilation,
//     padding, channel multiplier);
//   - few input channels per group (network stems: 3 -> 32, 3x3, stride 2);
//   - pointwise: 1x1, stride 1, no padding (many channels, few pixels).
#pragma once

#include "conv/conv2d.h"

namespace deepret::conv {

// Threads worth waking for `flops` of work: about 1 MFLOP (several
// microseconds) each, so that small layers do not pay for a wake-up, or for
// a busy second core, more than they gain. Shared by every conv2d path.
int conv2d_threads(int num_threads, index_t flops);

// Whether conv2d_direct() takes layer s (a valid, non-empty shape).
bool conv2d_direct_applies(const Conv2dShape& s);

template <class T>
void conv2d_direct(const T* input,   // [n, c, h, w]
                   const T* weight,  // [o, c / groups, kh, kw]
                   const T* bias,    // [o] or nullptr
                   T* out,           // [n, o, oh, ow]
                   const Conv2dShape& s, int num_threads);

}  // namespace deepret::conv
