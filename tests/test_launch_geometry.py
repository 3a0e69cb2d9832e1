"""The CUDA kernels' launch geometry (csrc/common/launch.h), computed by
plain host functions that the CPU module exposes: no grid dimension above
its hardware limit for any size, and every item covered by the grid-stride
loops the kernels run. Runs without a GPU or the CUDA engine."""

import pytest

from deepret import _backend

core = _backend._core
MAX_X, MAX_Y, MAX_Z = core._GRID_LIMITS

# Up to 2^31 rows (and beyond), as the issue asks; edge sizes around each power of two.
COUNTS = sorted({0, 1, 2, 31, 32, 33, 255, 256, 257, 65535, 65536, 65537, 524_280, 524_288,
                 10**6, 2**24 + 1, 2**31 - 1, 2**31, 2**31 + 1, 2**33, 10**12})


def test_limits_are_cudas():
    assert (MAX_X, MAX_Y, MAX_Z) == (2**31 - 1, 65535, 65535)


@pytest.mark.parametrize("threads", [128, 256, 1024])
@pytest.mark.parametrize("count", COUNTS)
def test_blocks_1d(count, threads):
    # A grid-stride loop covers [0, count) with any grid of at least one
    # block; the grid must stay within gridDim.x's limit and have no block
    # without work.
    blocks = core._launch_blocks_1d(count, threads)
    assert 1 <= blocks <= MAX_X
    assert blocks == 1 or (blocks - 1) * threads < count
    # Enough blocks for one item per thread up to 2^16 blocks (a full GPU).
    assert blocks >= min(-(-count // threads), 2**16)


@pytest.mark.parametrize("count", COUNTS)
def test_blocks_per_item(count):
    blocks = core._launch_blocks_per_item(count)
    assert 1 <= blocks <= MAX_X
    assert blocks <= max(count, 1)


# conv2d: (pixel tiles, output-channel tiles, batch x groups); correlate2d:
# (column tiles, row tiles, 1). batch x groups up to 10^6 and beyond.
TILES = [(1, 1, 1), (1, 2048, 1), (4, 8, 65535), (4, 8, 65536), (4, 8, 10**6), (7, 3, 4 * 10**6),
         (2**31, 1, 1), (2**31 - 1, 65536, 65536), (1, 2**31 // 32 + 1, 1), (0, 0, 0)]


@pytest.mark.parametrize(("nx", "ny", "nz"), TILES)
def test_tiles_cover_every_tile_within_the_limits(nx, ny, nz):
    gx, gy, gz = core._launch_tiles(nx, ny, nz)
    assert 1 <= gx <= MAX_X and 1 <= gy <= MAX_Y and 1 <= gz <= MAX_Z
    # The kernels visit tile t = blockIdx, blockIdx + gridDim, ... in each
    # dimension: one block per tile up to the limit, then loops.
    assert (gx, gy, gz) == (min(max(nx, 1), MAX_X), min(max(ny, 1), MAX_Y), min(max(nz, 1), MAX_Z))


@pytest.mark.parametrize("m", [1, 2, 3, 31, 32, 33, 256, 1000, 4096, 65535 * 32 + 1])
@pytest.mark.parametrize("n", [1, 7, 255, 256, 524_280, 524_288, 10**6, 2**31 - 1, 2**31])
def test_cg_geometry(n, m):
    g = core._launch_cg(n, m)
    columns, rows = g["threads"]
    gx, gy, gz = g["grid"]
    assert columns * rows <= 1024 and columns == min(m, 32) and rows >= 1
    assert 1 <= gx <= min(MAX_X, 1024) and 1 <= gy <= MAX_Y and gz == 1
    # Row chunks b, b + gx, ... of `rows` rows: every row is some block's.
    assert gx <= -(-n // rows)
    # Column tiles y, y + gy, ...: every column is some tile's.
    assert g["column_tiles"] == -(-m // columns)
    assert gy == min(g["column_tiles"], MAX_Y)


def test_cg_geometry_of_the_failing_case_in_the_issue():
    # 256 queries over 524,281 rows put ceil(n / 8) = 65,536 blocks in grid y before.
    g = core._launch_cg(524_281, 256)
    assert g["grid"][1] <= MAX_Y and g["grid"][0] <= 1024
