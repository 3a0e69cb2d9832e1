"""The package imports without a GPU and reports its engines."""

from __future__ import annotations

import pytest

import deepret
from deepret import _backend

SIMD_PATHS = ("avx512f", "avx2+fma", "portable")


def test_import_and_public_api():
    for name in ("convolve", "correlate", "simd_path", "cuda_built", "has_cuda",
                 "CudaUnavailableError"):
        assert name in deepret.__all__
        assert hasattr(deepret, name)
    assert isinstance(deepret.__version__, str)


def test_simd_path_is_a_known_name():
    assert deepret.simd_path() in SIMD_PATHS


def test_cuda_flags_are_bools():
    built, has = deepret.cuda_built(), deepret.has_cuda()
    assert isinstance(built, bool)
    assert isinstance(has, bool)
    if not built:
        assert has is False  # no engine, no CUDA; no GPU is allowed too


def test_cuda_engine_absent_matches_flag():
    assert (_backend._core_cuda is not None) == deepret.cuda_built()


@pytest.mark.parametrize("path", ["", "avx512", "AVX2+FMA", "Portable", "sse2", "avx2"])
def test_force_unknown_simd_path_raises(path):
    before = deepret.simd_path()
    try:
        with pytest.raises(ValueError, match="simd path"):
            _backend._core._force_simd_path(path)
        assert deepret.simd_path() == before
    finally:
        _backend._core._force_simd_path("auto")


def test_force_and_restore_simd_paths():
    _backend._core._force_simd_path("auto")
    detected = deepret.simd_path()
    try:
        _backend._core._force_simd_path("portable")
        assert deepret.simd_path() == "portable"
        if detected in ("avx2+fma", "avx512f"):
            _backend._core._force_simd_path("avx2+fma")
            assert deepret.simd_path() == "avx2+fma"
        else:  # a CPU without AVX2+FMA cannot be forced onto it
            with pytest.raises(ValueError):
                _backend._core._force_simd_path("avx2+fma")
    finally:
        _backend._core._force_simd_path("auto")
    assert deepret.simd_path() == detected


def test_threads_info():
    assert isinstance(_backend._core.max_threads(), int)
    assert _backend._core.max_threads() >= 1
