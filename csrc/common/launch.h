// Launch geometry of the CUDA kernels, computed on the host by plain
// functions (no CUDA headers: _core exposes them to the tests, which check
// every size up to 2^31 rows on machines without a GPU). No grid dimension
// ever exceeds its hardware limit: a kernel launched with these grids loops
// (grid-stride) over whatever one grid does not cover.
#pragma once

#include <algorithm>
#include <cstdint>

namespace deepret::launch {

using count_t = std::int64_t;

// CUDA's limits: gridDim.x < 2^31, gridDim.y and gridDim.z <= 65535.
constexpr count_t kMaxGridX = 2147483647;
constexpr count_t kMaxGridYZ = 65535;
// A grid-stride loop needs no more blocks than a GPU holds at once; 2^16
// blocks of 256 threads is more than any current GPU keeps resident.
constexpr count_t kMaxStrideBlocks = count_t(1) << 16;

inline count_t ceil_div(count_t a, count_t b) { return (a + b - 1) / b; }

// Blocks for a grid-stride loop over `count` items, `threads` per block (at
// least 1 block, so count = 0 still launches validly).
inline unsigned blocks_1d(count_t count, int threads) {
  return static_cast<unsigned>(std::clamp<count_t>(ceil_div(count, threads), 1, kMaxStrideBlocks));
}

// Blocks of a kernel with one block per item (a row, a map, an image),
// looping over items with stride gridDim.x.
inline unsigned blocks_per_item(count_t items) {
  return static_cast<unsigned>(std::clamp<count_t>(items, 1, kMaxStrideBlocks));
}

struct Grid3 {
  unsigned x = 1, y = 1, z = 1;
};

// A grid over (nx, ny, nz) tiles, each dimension capped at its limit; the
// kernel visits tile (tx, ty, tz) for tx = blockIdx.x, blockIdx.x +
// gridDim.x, ... below nx, and likewise in y and z.
inline Grid3 tiles(count_t nx, count_t ny, count_t nz) {
  Grid3 g;
  g.x = static_cast<unsigned>(std::clamp<count_t>(nx, 1, kMaxGridX));
  g.y = static_cast<unsigned>(std::clamp<count_t>(ny, 1, kMaxGridYZ));
  g.z = static_cast<unsigned>(std::clamp<count_t>(nz, 1, kMaxGridYZ));
  return g;
}

// Batched CG on row-major [n, m] vectors (cg_cuda.cu): a block of
// columns x rows threads (columns = min(m, 32), 256 threads in all) owns a
// fixed set of rows, row chunks b, b + grid.x, ... of `rows` rows each, and
// one tile of columns per grid.y index (looping in y over the tiles above
// the limit). Per-column dot products are summed per block in a fixed order
// and then over the grid.x blocks in block order: the same bits on every
// run. grid.x is capped (kCgMaxRowBlocks) so that the final sum over blocks
// stays short.
constexpr count_t kCgMaxRowBlocks = 1024;
constexpr int kCgThreads = 256;
constexpr int kCgMaxColumns = 32;

struct CgGeometry {
  int columns = 1, rows = 1;  // threads per block: columns x rows
  Grid3 grid;                 // x: row blocks, y: column tiles
  count_t column_tiles = 1;   // ceil(m / columns): tiles visited in y
};

inline CgGeometry cg_geometry(count_t n, count_t m) {
  CgGeometry g;
  g.columns = static_cast<int>(std::clamp<count_t>(m, 1, kCgMaxColumns));
  g.rows = kCgThreads / g.columns;
  g.column_tiles = ceil_div(std::max<count_t>(m, 1), g.columns);
  g.grid.x = static_cast<unsigned>(std::clamp<count_t>(ceil_div(n, g.rows), 1, kCgMaxRowBlocks));
  g.grid.y = static_cast<unsigned>(std::min(g.column_tiles, kMaxGridYZ));
  g.grid.z = 1;
  return g;
}

}  // namespace deepret::launch
