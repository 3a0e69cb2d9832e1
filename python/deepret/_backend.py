"""Loads the native engines: ``_core`` (CPU, always built) and ``_core_cuda``
(CUDA, built when nvcc was found at install time, or with DEEPRET_CUDA=ON).

Importing deepret never needs a GPU: ``_core_cuda`` links the CUDA runtime
statically and only talks to the driver when a CUDA function is called.
"""

from __future__ import annotations

import os

from . import _core

try:
    from . import _core_cuda
except ImportError:  # built without CUDA
    _core_cuda = None


class CudaUnavailableError(RuntimeError):
    """A CuPy array reached deepret, but this build or machine cannot run CUDA."""


def cuda_built() -> bool:
    """True when this installation has the CUDA engine (``_core_cuda``)."""
    return _core_cuda is not None


def has_cuda() -> bool:
    """True when the CUDA engine is built and at least one GPU is visible."""
    return _core_cuda is not None and _core_cuda.device_count() > 0


def cuda_core(function: str):
    """The CUDA engine, or a clear error naming the function that needed it."""
    if _core_cuda is None:
        raise CudaUnavailableError(
            f"deepret.{function} got a CuPy array, but this deepret was built without CUDA "
            "(no nvcc at install time, or DEEPRET_CUDA=OFF); reinstall with nvcc on PATH "
            "and DEEPRET_CUDA=ON, or pass numpy arrays"
        )
    return _core_cuda


def simd_path() -> str:
    """The SIMD path the CPU kernels take: 'avx512f' (AVX-512F kernels in the
    families that have them, AVX2+FMA in the others), 'avx2+fma' or
    'portable'.

    Detected from the CPU unless the environment variable ``DEEPRET_SIMD``
    pinned a path when deepret was imported (as numpy's
    ``NPY_DISABLE_CPU_FEATURES`` or OpenBLAS's ``OPENBLAS_CORETYPE`` pin
    theirs), so that one machine can run and measure every path it has:

    - ``DEEPRET_SIMD=auto`` (or unset, or empty): detect;
    - ``portable``: the baseline x86-64 (SSE2) kernels, on any CPU;
    - ``avx2`` (or ``avx2+fma``): the AVX2+FMA kernels, also on an AVX-512 CPU;
    - ``avx512`` (or ``avx512f``): the AVX-512F kernels where a family has
      them, AVX2+FMA elsewhere.

    Case and surrounding spaces do not matter. An unknown value, or a path
    this CPU (or build) lacks, makes ``import deepret`` raise RuntimeError
    naming the value and the paths available, as numpy does for a CPU
    feature the machine lacks: a pin exists to measure or reproduce one
    path, and falling back silently would report another path's numbers
    under its name. Unset the variable (or use ``auto``) to run anywhere.
    """
    return _core.simd_path()


# DEEPRET_SIMD's values -> the engine's path names.
_SIMD_NAMES = {"auto": "auto", "portable": "portable", "avx2": "avx2+fma",
               "avx2+fma": "avx2+fma", "avx512": "avx512f", "avx512f": "avx512f"}


def supported_simd_paths() -> list[str]:
    """The DEEPRET_SIMD values that pin a path this CPU and build have, from
    the narrowest: 'portable', then 'avx2' and 'avx512' where present."""
    return (["portable"] + (["avx2"] if _core.cpu_has_avx2_fma() else [])
            + (["avx512"] if _core.cpu_has_avx512f() else []))


def pin_simd_from_environment(environ=os.environ) -> None:
    """Pin the path DEEPRET_SIMD names (see simd_path); RuntimeError for an
    unknown value or a path this CPU lacks. Called once at import."""
    raw = environ.get("DEEPRET_SIMD")
    value = (raw or "").strip().lower() or "auto"
    supported = ", ".join(["auto"] + supported_simd_paths())
    if value not in _SIMD_NAMES:
        raise RuntimeError(f"DEEPRET_SIMD={raw!r} is not a SIMD path deepret knows: use one of "
                           f"{supported} (the paths this CPU has), or unset it")
    try:
        _core._force_simd_path(_SIMD_NAMES[value])
    except ValueError:
        raise RuntimeError(f"DEEPRET_SIMD={raw!r} asks for a path this CPU (or build) lacks: it "
                           f"has {supported}; unset DEEPRET_SIMD (or use auto) to detect") from None


pin_simd_from_environment()


def threads_arg(num_threads) -> int:
    """The engine's thread count: 0 means its default (OMP_NUM_THREADS, else the
    CPUs this process may use)."""
    if num_threads is None:
        return 0
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
    return num_threads
