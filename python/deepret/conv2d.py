"""The CNN convolution layer: torch.nn.functional.conv2d's semantics and
output shape (NCHW input, OIHW weight), on the CPU engine for numpy input and
on the CUDA engine for CuPy input.

This module validates (torch's rules, as ValueError/TypeError with torch's
wording), resolves stride/padding/dilation to pairs and the output size,
and hands contiguous arrays to the engine.
"""

from __future__ import annotations

import operator

import numpy as np

from . import _arrays, _backend
from .conv import _check_out
from ._typing import Array, ArrayInput

__all__ = ["conv2d"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _pair(value, name: str) -> tuple[int, int]:
    """An int or a sequence of two ints (torch's _pair)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    try:
        v = operator.index(value)
        return v, v
    except TypeError:
        pass
    try:
        items = tuple(operator.index(v) for v in value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if len(items) == 1:
        return items[0], items[0]
    if len(items) != 2:
        raise ValueError(f"expected {name} to be a single integer value or a list of 2 values to "
                         f"match the convolution dimensions, but got {name}={list(items)}")
    return items


def _padding(padding, kernel, dilation, stride):
    """(top, bottom, left, right) for an int, a pair, 'valid' or 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            return tuple(pads)
        raise ValueError(f"Invalid padding string {padding!r}, should be one of ('valid', 'same')")
    ph, pw = _pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"negative padding is not supported, got padding={padding!r}")
    return ph, ph, pw, pw


def _array_module(function, *arrays):
    return _backend.array_module(function, *arrays)


@_arrays.torch_interop
def conv2d(input: ArrayInput, weight: ArrayInput, bias: ArrayInput | None = None,
           stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
           dilation: int | tuple[int, int] = 1, groups: int = 1, *, out: Array | None = None,
           num_threads: int | None = None) -> Array:
    """2-D convolution layer, as torch.nn.functional.conv2d.

    Parameters
    ----------
    input : (N, C, H, W) or (C, H, W) array, float32 or float64
    weight : (O, C / groups, kH, kW) array of the same dtype
    bias : (O,) array or None
    stride, dilation : int or pair of ints
    padding : int, pair of ints, 'valid' or 'same' (zero padding; 'same'
        pads as torch does, the odd pixel at the bottom/right, stride 1 only)
    groups : int dividing C and O (C = O = groups: depthwise)
    out : ndarray, optional, keyword-only
        C-contiguous array of the result's shape and dtype to write into;
        it may overlap the inputs (``out=input`` with padding="same"): the
        result is then computed into a temporary and copied.
    num_threads : int, optional, keyword-only
        Threads for the CPU kernel; default: ``OMP_NUM_THREADS``, else every CPU this process may use.

    Returns
    -------
    (N, O, H_out, W_out) array (or (O, H_out, W_out) for 3-D input),
    ``H_out = (H + pad_top + pad_bottom - dilation * (kH - 1) - 1) // stride + 1``.
    CuPy input gives a CuPy result computed on the GPU.

    Raises
    ------
    ValueError for shapes and options torch rejects (wrong ndim, channels
    that do not match, groups that do not divide, a kernel larger than the
    padded input, an empty (0 x k) kernel, fewer output channels than
    groups, non-positive stride or dilation, negative padding);
    TypeError for other dtypes or dtypes that differ.

    See Also
    --------
    torch.nn.functional.conv2d : the function this one mirrors (same shapes,
        options and errors).
    convolve2d : single-channel 2-D convolution, as scipy.signal.convolve2d.

    Examples
    --------
    >>> import numpy as np, deepret
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)    # N, C, H, W
    >>> w = np.ones((2, 1, 3, 3), np.float32)                       # O, C, kH, kW
    >>> w[1] *= -1
    >>> y = deepret.conv2d(x, w, bias=np.array([0, 1], np.float32))
    >>> y.shape
    (1, 2, 2, 2)
    >>> y[0]
    array([[[ 45.,  54.],
            [ 81.,  90.]],
    <BLANKLINE>
           [[-44., -53.],
            [-80., -89.]]], dtype=float32)
    >>> deepret.conv2d(x, w, padding="same", stride=1).shape
    (1, 2, 4, 4)
    """
    threads = _backend.threads_arg(num_threads)
    arrays = (input, weight) if bias is None else (input, weight, bias)
    xp = _array_module("conv2d", *arrays)
    x, w = xp.asarray(input), xp.asarray(weight)
    b = None if bias is None else xp.asarray(bias)
    if x.ndim not in (3, 4):
        raise ValueError("Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input "
                         f"of size: {list(x.shape)}")
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    if w.ndim != 4:
        raise ValueError(f"weight must be 4-D (O, C / groups, kH, kW), got shape {tuple(w.shape)}")
    for name, arr in (("input", x), ("weight", w), ("bias", b)):
        if arr is not None and arr.dtype not in _DTYPES:
            raise TypeError(f"conv2d: {name} must be float32 or float64, got {arr.dtype}")
    if w.dtype != x.dtype or (b is not None and b.dtype != x.dtype):
        raise TypeError(f"conv2d: input, weight and bias must have the same dtype, got "
                        f"{x.dtype}, {w.dtype}" + ("" if b is None else f", {b.dtype}"))
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    if isinstance(groups, (bool, np.bool_)):
        raise TypeError(f"groups must be an int, got {groups!r}")
    groups = operator.index(groups)
    if min(stride) <= 0:
        raise ValueError(f"non-positive stride is not supported, got stride={stride}")
    if min(dilation) <= 0:
        raise ValueError(f"dilation should be greater than zero, got dilation={dilation}")
    if groups <= 0:
        raise ValueError(f"non-positive groups is not supported, got groups={groups}")
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if o < groups:
        raise ValueError(f"Given groups={groups}, expected weight to be at least {groups} at dimension 0, "
                         f"but got weight of size {list(w.shape)} instead")
    if kh == 0 or kw == 0:
        raise ValueError(f"conv2d: weight of size {list(w.shape)} has an empty kernel; the kernel "
                         "size must be at least 1 x 1")
    if o % groups != 0:
        raise ValueError(f"Given groups={groups}, expected weight to be divisible by {groups} at "
                         f"dimension 0, but got weight of size {list(w.shape)} instead")
    if cg * groups != c:
        raise ValueError(f"Given groups={groups}, weight of size {list(w.shape)}, expected "
                         f"input{list(x.shape)} to have {cg * groups} channels, but got {c} "
                         "channels instead")
    if b is not None and (b.ndim != 1 or b.shape[0] != o):
        raise ValueError(f"Given weight of size {list(w.shape)}, expected bias to be 1-dimensional "
                         f"with {o} elements, but got bias of size {list(b.shape)} instead")
    top, bottom, left, right = _padding(padding, (kh, kw), dilation, stride)
    ih, iw = h + top + bottom, wd + left + right
    eh, ew = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    if ih < eh or iw < ew:
        raise ValueError(f"Calculated padded input size per channel: ({ih} x {iw}). Kernel size: "
                         f"({eh} x {ew}). Kernel size can't be greater than actual input size")
    oh, ow = (ih - eh) // stride[0] + 1, (iw - ew) // stride[1] + 1
    shape = (n, o, oh, ow)
    result_shape = shape[1:] if unbatched else shape
    if out is not None:
        _check_out(out, result_shape, x.dtype, xp)
    x = xp.ascontiguousarray(x)
    w = xp.ascontiguousarray(w)
    b = None if b is None else xp.ascontiguousarray(b)
    # `out` overlapping input, weight or bias: computed aside, then copied.
    target = _arrays.output_target(out, x, w, b, xp=xp)
    target = xp.empty(shape, dtype=x.dtype) if target is None else target.reshape(shape)
    if xp is np:
        _backend._core.conv2d(x, w, b, target, stride, (top, left), dilation, groups, threads)
    else:
        with _backend.cuda_call("conv2d", x) as call:
            call.core.conv2d(x, w, b, target, stride=stride, padding=(top, left), dilation=dilation,
                             groups=groups, stream=call.stream)
    if out is not None:
        if not xp.may_share_memory(target, out):
            out[...] = target.reshape(out.shape)
        return out
    return target[0] if unbatched else target
