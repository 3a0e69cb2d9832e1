"""Loads the native engines: ``_core`` (CPU, always built) and ``_core_cuda``
(CUDA, built when nvcc was found at install time, or with DEEPRET_CUDA=ON).

Importing deepret never needs a GPU: ``_core_cuda`` links the CUDA runtime
statically and only talks to the driver when a CUDA function is called.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Optional

from . import _arrays, _core

try:
    from . import _core_cuda
except ImportError:  # built without CUDA
    _core_cuda = None  # type: ignore[assignment]  # (an Optional module below)


class CudaUnavailableError(RuntimeError):
    """A CuPy array reached deepret, but this build or machine cannot run CUDA.

    A subclass of RuntimeError. Install with ``nvcc`` on ``PATH``
    (``DEEPRET_CUDA=ON``) for the CUDA engine, or pass numpy arrays.

    See Also
    --------
    cuda_built, has_cuda

    Examples
    --------
    >>> import deepret
    >>> issubclass(deepret.CudaUnavailableError, RuntimeError)
    True
    """


def cuda_built() -> bool:
    """True when this installation has the CUDA engine (``_core_cuda``).

    Built when ``nvcc`` was found at install time (or with
    ``DEEPRET_CUDA=ON``); it says nothing about a GPU being present.

    Returns
    -------
    bool

    See Also
    --------
    has_cuda : the engine and a visible GPU.
    torch.backends.cuda.is_built : the same question asked of torch.

    Examples
    --------
    >>> import deepret
    >>> deepret.cuda_built() in (True, False)
    True
    """
    return _core_cuda is not None


def has_cuda() -> bool:
    """True when the CUDA engine is built and at least one GPU is visible.

    Returns
    -------
    bool

    See Also
    --------
    cuda_built
    torch.cuda.is_available : the same question asked of torch.

    Examples
    --------
    >>> import deepret
    >>> deepret.has_cuda() <= deepret.cuda_built()     # a GPU is usable only with the engine
    True
    """
    return _core_cuda is not None and _core_cuda.device_count() > 0


def cuda_core(function: str) -> ModuleType:
    """The CUDA engine, or a clear error naming the function that needed it."""
    if _core_cuda is None:
        raise CudaUnavailableError(
            f"deepret.{function} got a CuPy array, but this deepret was built without CUDA "
            "(no nvcc at install time, or DEEPRET_CUDA=OFF); reinstall with nvcc on PATH "
            "and DEEPRET_CUDA=ON, or pass numpy arrays"
        )
    return _core_cuda


def array_module(function: str, *arrays: Any, engine: bool = True) -> Any:
    """The array module a call computes with: numpy for host inputs (numpy
    arrays, lists, scalars; torch CPU tensors arrive here as numpy, see
    _arrays.torch_interop), cupy when every input is a CuPy array. A mix is a
    TypeError (no silent copies); with `engine`, CuPy inputs on a build
    without the CUDA engine raise CudaUnavailableError naming `function`.
    ``None`` entries (absent optional arrays) are skipped."""
    present = [a for a in arrays if a is not None]
    if _arrays.device_of(function, *present) == "cpu":
        import numpy

        return numpy
    if engine:
        cuda_core(function)
    return _arrays.cupy_module()


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

    Returns
    -------
    str
        ``'avx512f'``, ``'avx2+fma'`` or ``'portable'``.

    See Also
    --------
    numpy.show_runtime : numpy's own SIMD report.

    Examples
    --------
    >>> import deepret
    >>> deepret.simd_path() in ("avx512f", "avx2+fma", "portable")
    True
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


def pin_simd_from_environment(environ: Mapping[str, str] = os.environ) -> None:
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


def threads_arg(num_threads: Optional[int]) -> int:
    """The engine's thread count: 0 means its default (OMP_NUM_THREADS, else the
    CPUs this process may use)."""
    if num_threads is None:
        return 0
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
    return num_threads


class _CudaCall:
    """What a call into the CUDA engine needs besides its arrays: the engine,
    the current stream of the arrays' device (a cudaStream_t as an int) and
    a scratch allocator on that device (``allocate(nbytes)`` -> a uint8
    device array from CuPy's memory pool, stream-ordered on that stream)."""

    def __init__(self, function: str, array: Any) -> None:
        self.core = cuda_core(function)
        self._cp = _arrays.cupy_module()
        self._device = self._cp.cuda.Device(array.device.id)
        self.stream = 0

    def allocate(self, nbytes: int) -> Any:
        return self._cp.empty(int(nbytes), dtype=self._cp.uint8)

    def __enter__(self) -> _CudaCall:
        self._device.__enter__()
        self.stream = self._cp.cuda.get_current_stream().ptr
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._device.__exit__(*exc)


def cuda_call(function: str, array: Any) -> _CudaCall:
    """``with cuda_call("knn", x) as call: call.core.knn_search(...,
    allocate=call.allocate, stream=call.stream)``: the engine on x's device
    (made current for the block, as CuPy's own functions expect), its
    current stream, and scratch from CuPy's pool. The binding checks every
    array again and makes their device current itself."""
    return _CudaCall(function, array)
