"""1-D convolution and correlation: exact mirrors of numpy.convolve and
numpy.correlate, on the CPU engine for numpy input and on the CUDA engine for
CuPy input.

Every mode is one engine call: ``out[o] = sum_j a[o - left + j] * v[j]`` over
the taps that fall inside ``a``; this module only validates, picks the
dtypes, and computes ``len(out)`` and ``left`` as numpy defines the modes.
"""

from __future__ import annotations


import numpy as np

from . import _arrays, _backend
from ._typing import Array, ArrayInput

__all__ = ["convolve", "correlate"]

_MODES = {"valid": 0, "same": 1, "full": 2}
_VALID, _SAME, _FULL = 0, 1, 2


def _mode_code(mode) -> int:
    """numpy's convolve/correlate mode converter: the same accepted values,
    warnings, exceptions and messages as the installed numpy.

    The three names and three integers are decoded here; anything else is put
    to numpy's own correlate on a 3- and a 2-element probe, so that whatever
    this numpy version does with it (numpy 2.0 accepts 'FULL' and 'f' with a
    DeprecationWarning, later versions raise, each with its own message) is
    what deepret does: the length of the probe's result names the mode.
    """
    if isinstance(mode, str):
        if mode in _MODES:
            return _MODES[mode]
    elif type(mode) is int and mode in (_VALID, _SAME, _FULL):
        return mode
    probe = _NUMPY_CORRELATE(np.ones(3), np.ones(2), mode)
    return {2: _VALID, 3: _SAME, 4: _FULL}[len(probe)]


def _output_geometry(n: int, m: int, code: int) -> tuple[int, int]:
    """(len(out), left) of numpy's correlate of a[n] with v[m].

    numpy swaps the inputs when m > n and reverses the result; the engine's
    formula gives that same result directly with left' = len(out) - 1 - left.
    """
    long, short = max(n, m), min(n, m)
    if code == _VALID:
        length, left = long - short + 1, 0
    elif code == _SAME:
        length, left = long, short // 2
    else:
        length, left = long + short - 1, short - 1
    if m > n:
        left = length - 1 - left
    return length, left


def _numpy_verdict(reference, a, v, mode, out, xp, a1, v1):
    """Inputs numpy rejects (empty, 0-d or deeper than 1-D): numpy's own
    function decides, so that the exception and its message are this numpy
    version's (they changed between releases). Host inputs go to it as they
    are; CuPy inputs as host stand-ins of the same depth and emptiness (the
    error depends on nothing else), never copied."""
    if xp is not np:
        def stand_in(x):
            return np.zeros(tuple(min(size, 1) for size in x.shape))
        a, v = stand_in(a1), stand_in(v1)
    return _with_numpy(reference, a, v, mode, out)


def _check_out(out, shape, dtype, xp):
    if not isinstance(out, xp.ndarray):
        raise TypeError(f"out must be a {xp.__name__}.ndarray, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(
            f"out must have shape {shape} and dtype {dtype}, got shape {out.shape} and dtype {out.dtype}"
        )
    if not out.flags.c_contiguous or (xp is np and not out.flags.writeable):
        raise ValueError("out must be C-contiguous and writable")


def _array_module(function, a, v):
    """numpy, or cupy when both inputs are CuPy arrays (CUDA engine checked)."""
    return _backend.array_module(function, a, v)


def _result_dtype(a, v) -> np.dtype:
    """numpy's promotion of the two inputs, in native byte order."""
    return _arrays.native_byteorder(np.result_type(a.dtype, v.dtype))


# numpy's own functions, bound when deepret is imported: a program that installs
# deepret's in their place (np.convolve = deepret.convolve, as drop-in use and
# numpy's own test suite against deepret do) must not send the inputs deepret
# hands to numpy back to deepret.
_NUMPY_CONVOLVE = np.convolve
_NUMPY_CORRELATE = np.correlate


def _with_numpy(reference, a, v, mode, out):
    """Object, string and datetime inputs: numpy's own function, whose result
    or exception is by definition numpy's; `out` is honoured all the same."""
    result = reference(a, v, mode)
    if out is None:
        return result
    _check_out(out, result.shape, result.dtype, np)
    out[...] = result
    return out


# dtype kind -> item sizes the CUDA convolutions compute (the binding reads
# the dtype from each array itself).
_CUDA_DTYPES = {"b": {1}, "i": {1, 2, 4, 8}, "u": {1, 2, 4, 8}, "f": {4, 8}, "c": {8, 16}}


def _run(function, a, v, left, length, conjugate_v, result_dtype, out, threads):
    """Run the engine on 1-D a and v (taps already reversed for convolve): the
    CPU engine for numpy arrays, the CUDA engine for CuPy arrays."""
    on_gpu = _arrays.is_cupy_array(a)
    xp = _arrays.cupy_module() if on_gpu else np
    work = _arrays.compute_dtype(result_dtype)
    if on_gpu and work.itemsize not in _CUDA_DTYPES.get(work.kind, {}):
        raise TypeError(f"deepret.{function} on the GPU does not support dtype {result_dtype}")
    a = _arrays.aligned_contiguous(a, work, xp)
    v = _arrays.aligned_contiguous(v, work, xp)
    if out is not None:
        _check_out(out, (length,), result_dtype, xp)
    # Write straight into `out` unless the kernel runs in a wider dtype
    # (float16) or `out` overlaps an input (then computed aside and copied,
    # as numpy buffers overlapping operands).
    target = _arrays.output_target(out if work == result_dtype else None, a, v, xp=xp)
    if target is None:
        target = xp.empty(length, dtype=work)
    if on_gpu:
        with _backend.cuda_call(function, a) as call:
            call.core.correlate1d(a, v, target, left=left, conjugate_v=conjugate_v, stream=call.stream)
    else:
        _backend._core.correlate1d(a, v, target, left, conjugate_v, threads)
    if out is None:
        return target.astype(result_dtype, copy=False)
    if target is not out:
        out[...] = target
    return out


def _as_1d_input(x, xp):
    """numpy.convolve's ``array(x, copy=None, ndmin=1)``."""
    if xp is np:
        return np.array(x, copy=None, ndmin=1)
    return x if x.ndim >= 1 else x.reshape(1)


@_arrays.torch_interop
def convolve(a: ArrayInput, v: ArrayInput, mode: str | int = "full", *, out: Array | None = None,
             num_threads: int | None = None) -> Array:
    """Discrete linear convolution of two 1-D sequences, as numpy.convolve.

    Parameters
    ----------
    a : (N,) array_like
    v : (M,) array_like
    mode : {'full', 'valid', 'same'}, optional
        As numpy: 'full' gives N + M - 1 values, 'same' max(M, N), 'valid'
        max(M, N) - min(M, N) + 1.
    out : ndarray, optional, keyword-only
        C-contiguous array of the result's shape and dtype to write into
        (saves the page faults of a fresh large result). It may overlap
        ``a`` or ``v`` (e.g. ``out=a``): the result is then computed into a
        temporary and copied, as numpy does for overlapping operands.
    num_threads : int, optional, keyword-only
        Threads for the CPU kernel; default: ``OMP_NUM_THREADS``, else every CPU this process may use.

    Returns
    -------
    ndarray of numpy's result dtype (numpy's type promotion of a and v; bool
    gives numpy's logical or-of-ands; integers wrap around as numpy's do). A
    CuPy input gives a CuPy result computed on the GPU. Object, string and
    datetime inputs are handed to numpy.convolve unchanged.

    Raises
    ------
    ValueError, TypeError
        Exactly where numpy.convolve raises them, with numpy's messages.

    See Also
    --------
    numpy.convolve : the function this one mirrors.
    correlate : cross-correlation (``v`` not reversed, complex ``v`` conjugated).
    convolve2d : the 2-D case, as scipy.signal.convolve2d.

    Examples
    --------
    >>> import numpy as np, deepret
    >>> deepret.convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> deepret.convolve([1, 2, 3], [0, 1, 0.5], mode="same")
    array([1. , 2.5, 4. ])
    >>> signal = np.arange(8, dtype=np.float32)
    >>> out = np.empty(6, np.float32)
    >>> deepret.convolve(signal, np.ones(3, np.float32), "valid", out=out) is out
    True
    >>> out
    array([ 3.,  6.,  9., 12., 15., 18.], dtype=float32)
    """
    threads = _backend.threads_arg(num_threads)
    xp = _array_module("convolve", a, v)
    a1, v1 = _as_1d_input(a, xp), _as_1d_input(v, xp)
    if len(a1) == 0 or len(v1) == 0 or a1.ndim > 1 or v1.ndim > 1:
        return _numpy_verdict(_NUMPY_CONVOLVE, a, v, mode, out, xp, a1, v1)
    if len(v1) > len(a1):
        a1, v1 = v1, a1
    if not (_arrays.is_native(a1.dtype) and _arrays.is_native(v1.dtype)):
        return _with_numpy(_NUMPY_CONVOLVE, a, v, mode, out)
    code = _mode_code(mode)
    length, left = _output_geometry(len(a1), len(v1), code)
    return _run("convolve", a1, v1[::-1], left, length, False, _result_dtype(a1, v1), out, threads)


@_arrays.torch_interop
def correlate(a: ArrayInput, v: ArrayInput, mode: str | int = "valid", *, out: Array | None = None,
              num_threads: int | None = None) -> Array:
    """Cross-correlation of two 1-D sequences, as numpy.correlate:
    ``c[k] = sum_n a[n + k] * conj(v[n])``.

    Parameters
    ----------
    a : (N,) array_like
    v : (M,) array_like
    mode : {'valid', 'same', 'full'}, optional
        As numpy.convolve's; the default is 'valid'.
    out : ndarray, optional, keyword-only
        C-contiguous array of the result's shape and dtype to write into
        (may overlap the inputs, as in :func:`convolve`).
    num_threads : int, optional, keyword-only
        Threads for the CPU kernel; default: ``OMP_NUM_THREADS``, else every CPU this process may use.

    Returns
    -------
    ndarray of numpy's result dtype; complex ``v`` is conjugated as numpy
    does; when M > N the result is numpy's (computed with the inputs swapped
    and reversed). CuPy input gives a CuPy result computed on the GPU.

    Raises
    ------
    ValueError, TypeError
        Exactly where numpy.correlate raises them, with numpy's messages.

    See Also
    --------
    numpy.correlate : the function this one mirrors.
    convolve : convolution (``v`` reversed).
    correlate2d : the 2-D case, as scipy.signal.correlate2d.

    Examples
    --------
    >>> import numpy as np, deepret
    >>> deepret.correlate([1, 2, 3], [0, 1, 0.5])
    array([3.5])
    >>> deepret.correlate([1, 2, 3], [0, 1, 0.5], "full")
    array([0.5, 2. , 3.5, 3. , 0. ])
    >>> deepret.correlate([1, 2, 3], [0, 1j, 0.5], "same")  # v conjugated, as numpy
    array([1. -1.j, 1.5-2.j, 0. -3.j])
    """
    code = _mode_code(mode)
    threads = _backend.threads_arg(num_threads)
    xp = _array_module("correlate", a, v)
    a1, v1 = xp.asarray(a), xp.asarray(v)
    if not (_arrays.is_native(a1.dtype) and _arrays.is_native(v1.dtype)):
        return _with_numpy(_NUMPY_CORRELATE, a, v, mode, out)
    if a1.ndim != 1 or v1.ndim != 1 or len(a1) == 0 or len(v1) == 0:
        return _numpy_verdict(_NUMPY_CORRELATE, a, v, mode, out, xp, a1, v1)
    length, left = _output_geometry(len(a1), len(v1), code)
    result_dtype = _result_dtype(a1, v1)
    return _run("correlate", a1, v1, left, length, result_dtype.kind == "c", result_dtype, out, threads)
