"""Fixtures shared by the deepret test suite."""

from __future__ import annotations

import numpy as np
import pytest

import deepret
from deepret import _backend

SIMD_PATHS = ("portable", "avx2+fma")


def _cpu_has_avx2_fma() -> bool:
    _backend._core._force_simd_path("auto")
    return deepret.simd_path() == "avx2+fma"


@pytest.fixture(params=SIMD_PATHS)
def simd(request):
    """Run the test once per CPU SIMD path (same data on both), then restore
    automatic detection."""
    path = request.param
    if path == "avx2+fma" and not _cpu_has_avx2_fma():
        pytest.skip("this CPU has no AVX2+FMA, only the portable path exists")
    _backend._core._force_simd_path(path)
    try:
        assert deepret.simd_path() == path
        yield path
    finally:
        _backend._core._force_simd_path("auto")


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """The array module of a backend: numpy (CPU engine) or cupy (CUDA engine,
    skipped unless cupy imports and deepret has a CUDA engine and a GPU)."""
    if request.param == "numpy":
        return np
    cp = pytest.importorskip("cupy")
    if not deepret.has_cuda():
        pytest.skip("deepret has no CUDA engine or no GPU is visible")
    return cp



@pytest.fixture(scope="session")
def oxford5k_descriptors():
    """The real Oxford5k descriptors (5063, 128) float32, not normalized, as
    the package bundles them."""
    return deepret.datasets.load_oxford5k().descriptors
