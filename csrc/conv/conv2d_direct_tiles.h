// The table of register tiles each instruction set provides
// (conv2d_direct_simd.h), shared by conv2d_direct_cpu.cpp and the per-ISA
// copies. Types and constants only: nothing here is compiled code, so no
// function can be shared between copies built with different flags.
#pragma once

#include <cstdint>

namespace deepret::conv {

namespace direct {

template <class T>
using DirectTileFn = void (*)(std::int64_t kc, const T* a, std::int64_t lda, const T* b, const std::int64_t* offsets,
                              T* c, std::int64_t ldc, int rows, int cols, bool accumulate, const T* init,
                              std::int64_t room);
template <class T>
using DotTileFn = void (*)(std::int64_t kc, const T* a, std::int64_t lda, const T* xt, T* c,
                           std::int64_t ldc, int rows, bool accumulate, const T* init);
template <class T>
using CopyRowsFn = void (*)(const T* plane, std::int64_t h, std::int64_t w, std::int64_t readable,
                            std::int64_t top,
                            std::int64_t left, std::int64_t sw, std::int64_t phase_len,
                            std::int64_t first, std::int64_t count, T* dst);
template <class T>
using DepthwiseTileFn = void (*)(std::int64_t kc, const T* w, const T* b, std::int64_t row_step,
                                 const std::int64_t* offsets, T* c, std::int64_t ldc, int rows, int cols, T init,
                                 std::int64_t room);

// Depthwise tiles (output rows x vectors): wide planes take 2 rows of up to 4
// vectors; narrow ones (a row of at most 4 vectors) more rows of fewer
// vectors, so that a 7- or 14-pixel row does not waste most of a tile.
struct DwShape {
  int rows, nv;
};
constexpr int kDwShapes = 7;
constexpr DwShape kDwShape[kDwShapes] = {{8, 1}, {4, 2}, {3, 3}, {2, 4}, {2, 1}, {2, 2}, {2, 3}};
// Tap counts compiled as constants (3x3, 5x5); the last entry: any count.
constexpr int kDwTapCounts = 3;
constexpr int kDwTaps[kDwTapCounts] = {9, 25, 0};

// Pointwise strips of at most this many pixels (a 7x7 layer's last one)
// run as dot products along the reduction.
constexpr int kDotColumns = 4;

// Direct tiles come in families of one row count (output channels) and 1 to
// kMaxNV vectors of pixels: the widest for the body of a row of pixels, a
// narrower one for its rest. Two families per instruction set, so that the
// channel counts of a layer can be covered without idle rows (see
// conv2d_direct_cpu.cpp's choice).
constexpr int kMaxNV = 3;
constexpr int kFamilies = 2;

template <class T>
struct DirectFamily {
  int mr;      // output channels per tile
  int max_nv;  // widest tile, in vectors
  DirectTileFn<T> packed[kMaxNV];  // [nv - 1], A packed [kc, mr]
  DirectTileFn<T> rows[kMaxNV];    // [nv - 1], A as rows of stride lda
};

template <class T>
struct DirectKernels {
  int lanes;  // elements of T per vector
  DirectFamily<T> family[kFamilies];
  DepthwiseTileFn<T> depthwise[kDwShapes][kDwTapCounts];
  CopyRowsFn<T> copy_rows;  // the input part of a row copy
  DotTileFn<T> dot[kDotColumns];  // 1 to kDotColumns pixel columns as dot products
};

}  // namespace direct

}  // namespace deepret::conv
