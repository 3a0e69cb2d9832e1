"""Loads the native engines: ``_core`` (CPU, always built) and ``_core_cuda``
(CUDA, built when nvcc was found at install time, or with DEEPRET_CUDA=ON).

Importing deepret never needs a GPU: ``_core_cuda`` links the CUDA runtime
statically and only talks to the driver when a CUDA function is called.
"""

from __future__ import annotations

from . import _arrays, _core

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


def array_module(function: str, *arrays, engine: bool = True):
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
    """The SIMD path the CPU kernels take on this machine: 'avx512f' (AVX-512F
    kernels in the families that have them, AVX2+FMA in the others),
    'avx2+fma' or 'portable'."""
    return _core.simd_path()


def threads_arg(num_threads) -> int:
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

    def __init__(self, function: str, array):
        self.core = cuda_core(function)
        self._cp = _arrays.cupy_module()
        self._device = self._cp.cuda.Device(array.device.id)
        self.stream = 0

    def allocate(self, nbytes: int):
        return self._cp.empty(int(nbytes), dtype=self._cp.uint8)

    def __enter__(self):
        self._device.__enter__()
        self.stream = self._cp.cuda.get_current_stream().ptr
        return self

    def __exit__(self, *exc):
        return self._device.__exit__(*exc)


def cuda_call(function: str, array) -> _CudaCall:
    """``with cuda_call("knn", x) as call: call.core.knn_search(...,
    allocate=call.allocate, stream=call.stream)``: the engine on x's device
    (made current for the block, as CuPy's own functions expect), its
    current stream, and scratch from CuPy's pool. The binding checks every
    array again and makes their device current itself."""
    return _CudaCall(function, array)
