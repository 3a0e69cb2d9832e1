"""Fixtures shared by the deepret test suite."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

# CI draws the same examples on every run (a failure there is reproducible and
# not a matter of luck); development runs explore new examples each time.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

import deepret
from deepret import _backend

# The paths the simd fixture pins ("avx512": the AVX-512F kernels where a
# family has them, AVX2+FMA elsewhere).
SIMD_PATHS = ("portable", "avx2+fma", "avx512")


@pytest.fixture(params=SIMD_PATHS)
def simd(request):
    """Run the test once per CPU SIMD path (same data on each), then restore
    the path of the environment (DEEPRET_SIMD, else detection)."""
    path = request.param
    if path == "avx2+fma" and not _backend._core.cpu_has_avx2_fma():
        pytest.skip("this CPU has no AVX2+FMA, only the portable path exists")
    if path == "avx512" and not _backend._core.cpu_has_avx512f():
        pytest.skip("this CPU (or build) has no AVX-512F path")
    _backend._core._force_simd_path("avx512f" if path == "avx512" else path)
    try:
        if path == "avx512":
            assert _backend._core.use_avx512f() and deepret.simd_path() == "avx512f"
        else:
            assert deepret.simd_path() == path
            assert not _backend._core.use_avx512f()
        yield path
    finally:
        _backend.pin_simd_from_environment()


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
