"""The package imports without a GPU and reports its engines."""

from __future__ import annotations

import os
import subprocess
import sys

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
    # The engine takes its own names only; DEEPRET_SIMD's aliases are mapped
    # in _backend.
    before = deepret.simd_path()
    try:
        with pytest.raises(ValueError, match="simd path"):
            _backend._core._force_simd_path(path)
        assert deepret.simd_path() == before
    finally:
        _backend.pin_simd_from_environment()


def _import_with(value):
    """(returncode, stdout, stderr) of a fresh interpreter importing deepret
    with DEEPRET_SIMD=value (None: unset) and printing simd_path()."""
    env = {k: v for k, v in os.environ.items() if k != "DEEPRET_SIMD"}
    if value is not None:
        env["DEEPRET_SIMD"] = value
    code = "import deepret; print(deepret.simd_path())"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    return done.returncode, done.stdout.strip(), done.stderr


def _detected():
    return ("avx512f" if _backend._core.cpu_has_avx512f()
            else "avx2+fma" if _backend._core.cpu_has_avx2_fma() else "portable")


@pytest.mark.parametrize("value, expected", [
    (None, "detected"), ("", "detected"), ("auto", "detected"), (" AUTO ", "detected"),
    ("portable", "portable"), ("Portable", "portable"),
    ("avx2", "avx2+fma"), ("avx2+fma", "avx2+fma"), ("AVX2", "avx2+fma"),
    ("avx512", "avx512f"), ("avx512f", "avx512f"),
])
def test_deepret_simd_pins_the_path_at_import(value, expected):
    expected = _detected() if expected == "detected" else expected
    available = {"portable": True, "avx2+fma": _backend._core.cpu_has_avx2_fma(),
                 "avx512f": _backend._core.cpu_has_avx512f()}
    code, out, err = _import_with(value)
    if available[expected]:
        assert code == 0, err
        assert out == expected
    else:  # a pin this CPU cannot honour fails the import, naming what it has
        assert code != 0
        assert "RuntimeError" in err and "DEEPRET_SIMD" in err and "lacks" in err
        assert "portable" in err


@pytest.mark.parametrize("value", ["sse2", "avx", "neon", "avx-512", "1"])
def test_unknown_deepret_simd_fails_the_import(value):
    code, out, err = _import_with(value)
    assert code != 0 and out == ""
    assert "RuntimeError" in err and f"DEEPRET_SIMD={value!r}" in err
    assert "auto, portable" in err  # names the values that would work


def test_pinned_path_reaches_the_kernels():
    """A pinned path is the one the kernels take: same results as pinning it
    in-process, and avx512 pins the AVX-512F kernels on (others off)."""
    for path in _backend.supported_simd_paths():
        code = ("import deepret, numpy as np; from deepret import _backend; "
                "print(deepret.simd_path(), _backend._core.use_avx512f(), "
                "deepret.convolve(np.arange(5.0), np.ones(3)).tolist())")
        env = dict(os.environ, DEEPRET_SIMD=path)
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        name, avx512, values = done.stdout.split(" ", 2)
        assert name == {"portable": "portable", "avx2": "avx2+fma", "avx512": "avx512f"}[path]
        assert avx512 == str(path == "avx512")
        assert values.strip() == str([0.0, 1.0, 3.0, 6.0, 9.0, 7.0, 4.0])


def test_pin_from_environment_in_process():
    try:
        _backend.pin_simd_from_environment({"DEEPRET_SIMD": "portable"})
        assert deepret.simd_path() == "portable"
        with pytest.raises(RuntimeError, match="not a SIMD path"):
            _backend.pin_simd_from_environment({"DEEPRET_SIMD": "sse9"})
        assert deepret.simd_path() == "portable"  # a bad value changes nothing
    finally:
        _backend.pin_simd_from_environment()


def test_force_and_restore_simd_paths():
    _backend._core._force_simd_path("auto")
    detected = deepret.simd_path()
    if not _backend._core.cpu_has_avx512f():
        with pytest.raises(ValueError, match="AVX-512F"):
            _backend._core._force_simd_path("avx512f")
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
    _backend.pin_simd_from_environment()


def test_threads_info():
    assert isinstance(_backend._core.max_threads(), int)
    assert _backend._core.max_threads() >= 1
