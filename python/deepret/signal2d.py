"""2-D convolution and correlation: exact mirrors of scipy.signal.convolve2d
and scipy.signal.correlate2d, on the CPU engine for numpy input and on the
CUDA engine for CuPy input.

Every mode and boundary is one engine call,
``out[m, n] = sum_{j,k} ext(m - top + j, n - left + k) * w[j, k]``, where
``ext`` extends the image by the boundary rule; this module only validates
(in scipy's order, with scipy's messages), picks the dtype, flips or
conjugates the kernel, and computes the output shape and ``(top, left)`` as
scipy defines the modes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _arrays, _backend
from .conv import _CUDA_DTYPES, _check_out
from ._typing import Array, ArrayInput

__all__ = ["convolve2d", "correlate2d"]

_MODEDICT = {"valid": 0, "same": 1, "full": 2}
_VALID, _SAME, _FULL = 0, 1, 2
# scipy's table: 'reflect' is a known name that its C core then rejects.
_BOUNDARYDICT = {"fill": 0, "pad": 0, "wrap": 2, "circular": 2, "symm": 1, "symmetric": 1, "reflect": 4}
# scipy's boundary codes -> the engine's (0 fill, 1 wrap, 2 symm).
_ENGINE_BOUNDARY = {0: 0, 2: 1, 1: 2}


def _valfrommode(mode) -> int:
    try:
        return _MODEDICT[mode]
    except KeyError as e:
        raise ValueError("Acceptable mode flags are 'valid', 'same', or 'full'.") from e


def _bvalfromboundary(boundary) -> int:
    try:
        return _BOUNDARYDICT[boundary]
    except KeyError as e:
        raise ValueError("Acceptable boundary flags are 'fill', 'circular' "
                         "(or 'wrap'), and 'symmetric' (or 'symm').") from e


def _inputs_swap_needed(mode, shape1, shape2) -> bool:
    """scipy's valid-mode rule: the larger input goes first; neither being
    at least as large as the other in every dimension is an error."""
    if mode != "valid":
        return False
    if not shape1:
        return False
    ok1 = all(a >= b for a, b in zip(shape1, shape2))
    ok2 = all(b >= a for a, b in zip(shape1, shape2))
    if not (ok1 or ok2):
        raise ValueError("For 'valid' mode, one must be at least as large as the other in every dimension")
    return not ok1


def _from_object(value, dtype):
    """numpy's PyArray_FromObject(value, dtype, 0, 0), as scipy's C core calls
    it: Python objects and numpy scalars are assigned value by value, arrays
    must cast safely."""
    if isinstance(value, np.ndarray):
        return np.asarray(value).astype(dtype, casting="safe", copy=False)
    return np.array(value, dtype=dtype)


def _fill_array(fillvalue, dtype) -> np.ndarray:
    """scipy's conversion of ``fillvalue`` to the result dtype, with its
    fallback through complex and its errors; a 1-element array."""
    try:
        fill = _from_object(fillvalue, dtype)
    except Exception:
        # scipy retries through complex128 for backwards compatibility and
        # then refuses the result, whatever it was (casting may warn).
        tmp = _from_object(fillvalue, np.complex128)
        tmp.astype(dtype)
        raise ValueError("could not cast `fillvalue` directly to the output type "
                         "(it was first converted to complex).") from None
    if fill.size != 1:
        if fill.size == 0:
            raise ValueError("`fillvalue` cannot be an empty array.")
        raise ValueError("`fillvalue` must be scalar or an array with one element.")
    return np.ascontiguousarray(fill.reshape(1))


def _geometry(shape1, shape2, val, flip):
    """(oh, ow, top, left) of scipy's _convolve2d(in1, in2, flip, mode)."""
    (h, w), (kh, kw) = shape1, shape2
    if val == _FULL:
        return h + kh - 1, w + kw - 1, kh - 1, kw - 1
    if val == _SAME:
        if flip:
            return h, w, kh // 2, kw // 2
        return h, w, (kh - 1) // 2, (kw - 1) // 2
    return h - kh + 1, w - kw + 1, 0, 0


def _native_dtype(a, b):
    """The result dtype when the engines compute it, else None (scipy's own
    function then decides: bool, float16, object, strings, datetimes)."""
    try:
        dtype = np.result_type(a.dtype, b.dtype)
    except TypeError:
        return None
    if dtype.kind not in "iufc" or dtype == np.float16:
        return None
    return _arrays.native_byteorder(dtype)


def _scipy_original(function: str):
    """scipy.signal's own convolve2d/correlate2d from the module that defines
    them: a program that installs deepret's functions as scipy.signal's public
    names (drop-in use, scipy's test suite run against deepret) must not get
    its inputs back. scipy.signal is imported here, on first use, because its
    import costs seconds."""
    try:
        from scipy.signal import _signaltools as defining_module
    except ImportError:  # a scipy whose private layout moved: the public name
        import scipy.signal as defining_module
    original = getattr(defining_module, function)
    if getattr(original, "__module__", "").startswith("deepret"):
        raise RuntimeError(f"scipy.signal.{function} has been replaced by deepret's; "
                           "scipy's original cannot be found")
    return original


def _with_scipy(function, in1, in2, mode, boundary, fillvalue, out):
    result = _scipy_original(function)(in1, in2, mode, boundary, fillvalue)
    if out is None:
        return result
    _check_out(out, result.shape, result.dtype, np)
    out[...] = result
    return out


def _run(function, image, weights, geometry, boundary, fill, dtype, out, threads, xp):
    oh, ow, top, left = geometry
    image = _arrays.aligned_contiguous(image, dtype, xp)
    weights = _arrays.aligned_contiguous(weights, dtype, xp)
    target = _arrays.output_target(out, image, weights, xp=xp)  # None: out overlaps an input
    if target is None:
        target = xp.empty((oh, ow), dtype=dtype)
    engine_boundary = _ENGINE_BOUNDARY[boundary]
    if xp is np:
        _backend._core.correlate2d(image, weights, target, top, left, engine_boundary, fill, threads)
        return _copied_out(target, out)
    if dtype.itemsize not in _CUDA_DTYPES.get(dtype.kind, {}) or dtype.kind == "b":
        raise TypeError(f"deepret.{function} on the GPU does not support dtype {dtype}")
    with _backend.cuda_call(function, image) as call:
        call.core.correlate2d(image, weights, target, top=top, left=left, boundary=engine_boundary,
                              fill=fill, stream=call.stream)
    return _copied_out(target, out)


def _copied_out(target, out):
    """The result in `out` when one was given (copied there when it had to be
    computed aside because `out` overlapped an input)."""
    if out is None or target is out:
        return target
    out[...] = target
    return out


def _correlate(function, in1, in2, mode, boundary, fillvalue, out, num_threads, flip):
    threads = _backend.threads_arg(num_threads)
    xp = _backend.array_module(function, in1, in2)
    on_gpu = xp is not np
    a, b = xp.asarray(in1), xp.asarray(in2)
    if not a.ndim == b.ndim == 2:
        raise ValueError(f"{function} inputs must both be 2-D arrays")
    dtype = _native_dtype(a, b)
    if dtype is None:
        if on_gpu:
            raise TypeError(f"deepret.{function} on the GPU does not support dtypes {a.dtype}, {b.dtype}")
        return _with_scipy(function, in1, in2, mode, boundary, fillvalue, out)
    swapped = _inputs_swap_needed(mode, a.shape, b.shape)
    if swapped:
        a, b = b, a
    val = _valfrommode(mode)
    bval = _bvalfromboundary(boundary)
    if bval not in _ENGINE_BOUNDARY:
        raise ValueError("Incorrect boundary value.")
    fill = _fill_array(fillvalue if bval == 0 else 0, dtype)
    geometry = _geometry(a.shape, b.shape, val, flip)
    weights = b[::-1, ::-1] if flip else (b.conj() if b.dtype.kind == "c" else b)
    reverse = swapped and not flip  # scipy returns correlate2d's swapped result reversed
    shape = geometry[:2]
    if out is not None:
        _check_out(out, shape, dtype, xp)
    target = out if out is not None and not reverse else None
    result = _run(function, a, weights, geometry, bval, fill, dtype, target, threads, xp)
    if not reverse:
        return result
    if out is None:
        return result[::-1, ::-1]
    out[...] = result[::-1, ::-1]
    return out


@_arrays.torch_interop
def convolve2d(in1: ArrayInput, in2: ArrayInput, mode: str = "full", boundary: str = "fill", fillvalue: Any = 0, *,
               out: Array | None = None, num_threads: int | None = None) -> Array:
    """Convolve two 2-D arrays, as scipy.signal.convolve2d.

    Parameters
    ----------
    in1, in2 : array_like, 2-D
    mode : {'full', 'valid', 'same'}, optional
        As scipy: in 'valid' mode the larger input (at least as large in
        every dimension) is the image, whichever argument it is.
    boundary : {'fill', 'wrap', 'symm'} or scipy's aliases 'pad',
        'circular', 'symmetric', optional
    fillvalue : scalar, optional
        Value outside the image for boundary 'fill', converted to the result
        dtype as scipy converts it (with scipy's errors).
    out : ndarray, optional, keyword-only
        C-contiguous array of the result's shape and dtype to write into;
        it may overlap the inputs (``out=in1``): the result is then computed
        into a temporary and copied, as numpy does for overlapping operands.
    num_threads : int, optional, keyword-only
        Threads for the CPU kernel; default: ``OMP_NUM_THREADS``, else every CPU this process may use.

    Returns
    -------
    ndarray of scipy's result dtype (numpy's promotion of the inputs;
    integers wrap around as scipy's do). CuPy input gives a CuPy result
    computed on the GPU. Dtypes scipy rejects (bool, float16, object, ...)
    go to scipy.signal.convolve2d, whose exception is by definition scipy's.
    Unlike scipy, an empty image with boundary 'wrap' or 'symm' raises
    ValueError instead of crashing the interpreter.

    Raises
    ------
    ValueError
        Where scipy.signal.convolve2d raises it, with scipy's messages:
        inputs not 2-D, an unknown mode or boundary, a 'valid' mode where
        neither input is at least as large as the other in every
        dimension, a ``fillvalue`` that does not convert; also ``out`` of the
        wrong shape or dtype.
    TypeError
        ``out`` not an array; CuPy and host inputs mixed; a dtype the GPU
        engine does not compute.

    See Also
    --------
    scipy.signal.convolve2d : the function this one mirrors.
    correlate2d : cross-correlation (kernel not flipped).
    conv2d : the multi-channel CNN layer, as torch.nn.functional.conv2d.
    convolve : the 1-D case, as numpy.convolve.

    Examples
    --------
    >>> import numpy as np, deepret
    >>> image = np.arange(16.0).reshape(4, 4)
    >>> kernel = np.array([[1.0, 0.0, -1.0]])          # a horizontal gradient
    >>> deepret.convolve2d(image, kernel, mode="same")
    array([[  1.,   2.,   2.,  -2.],
           [  5.,   2.,   2.,  -6.],
           [  9.,   2.,   2., -10.],
           [ 13.,   2.,   2., -14.]])
    >>> deepret.convolve2d(image, kernel, mode="same", boundary="symm")
    array([[1., 2., 2., 1.],
           [1., 2., 2., 1.],
           [1., 2., 2., 1.],
           [1., 2., 2., 1.]])
    """
    return _correlate("convolve2d", in1, in2, mode, boundary, fillvalue, out, num_threads, True)


@_arrays.torch_interop
def correlate2d(in1: ArrayInput, in2: ArrayInput, mode: str = "full", boundary: str = "fill", fillvalue: Any = 0, *,
                out: Array | None = None, num_threads: int | None = None) -> Array:
    """Cross-correlate two 2-D arrays, as scipy.signal.correlate2d.

    ``out[m, n] = sum_{j,k} in1[m + j - top, n + k - left] * conj(in2[j, k])``
    with the image extended by the boundary rule; in 'valid' mode with
    swapped inputs the result is reversed, as scipy returns it.

    Parameters
    ----------
    in1, in2 : array_like, 2-D
    mode : {'full', 'valid', 'same'}, optional
    boundary : {'fill', 'wrap', 'symm'} or scipy's aliases, optional
    fillvalue : scalar, optional
    out : ndarray, optional, keyword-only
    num_threads : int, optional, keyword-only
        As in :func:`convolve2d`.

    Returns
    -------
    ndarray
        scipy's result dtype and shape (CuPy for CuPy input).

    Raises
    ------
    ValueError, TypeError
        As :func:`convolve2d`.

    See Also
    --------
    scipy.signal.correlate2d : the function this one mirrors.
    convolve2d : convolution (kernel flipped).

    Examples
    --------
    >>> import numpy as np, deepret
    >>> image = np.zeros((3, 3)); image[1, 1] = 1.0
    >>> template = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> deepret.correlate2d(image, template)               # the template, flipped, at (1, 1)
    array([[0., 0., 0., 0.],
           [0., 4., 3., 0.],
           [0., 2., 1., 0.],
           [0., 0., 0., 0.]])
    """
    return _correlate("correlate2d", in1, in2, mode, boundary, fillvalue, out, num_threads, False)
