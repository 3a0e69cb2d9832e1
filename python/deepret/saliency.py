"""Feature saliency (FS) maps from CNN activations, CroW-style (Kalantidis,
Mellina & Osindero 2016; the FS maps of Siméoni et al. 2018). The formulas:
docs/algorithms/saliency_pooling.md."""

from __future__ import annotations

import numpy as np

from . import _arrays, _backend
from ._typing import Array, ArrayInput

__all__ = ["feature_saliency"]


def activations(a, name: str, xp):
    """(B, C, H, W) contiguous float32/float64 view of (C, H, W) or (B, C, H, W)
    activations, and whether the input was one image. float16, ints and bools
    compute in float32 (float16, bool, int8/16) or float64 (wider ints)."""
    if xp is np:
        a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real array, got dtype {a.dtype}")
    if a.ndim not in (3, 4):
        raise ValueError(f"{name} must be 3-D (c, h, w) or 4-D (b, c, h, w), got shape {tuple(a.shape)}")
    work = np.float64 if a.dtype == np.float64 or (a.dtype.kind in "iu" and a.dtype.itemsize > 2) \
        else np.float32
    single = a.ndim == 3
    a = xp.ascontiguousarray(a[None] if single else a, dtype=work)
    return a, single


def raise_on_status(status, message: str) -> None:
    """ValueError when a CUDA kernel flagged bad input (reads one int back)."""
    if int(status.get()[0]):
        raise ValueError(message)


@_arrays.torch_interop
def feature_saliency(a: ArrayInput, eps: float = 1e-6, *, num_threads: int | None = None,
                     check_input: bool = True) -> Array:
    """Feature-saliency map(s) of non-negative activations.

    With q_j the fraction of positions where channel j is non-zero, the
    channel weights are b_j = log(sum_i (q_i + eps) / (q_j + eps)) (rare
    channels weigh more), F = sum_j b_j a_j, and the map is sqrt(F / ||F||_2)
    (CroW's normalization; all zeros where F is 0).

    Parameters
    ----------
    a : (C, H, W) or (B, C, H, W) array_like, non-negative and finite
        Activations after a ReLU (numpy: CPU engine; CuPy: CUDA engine).
    eps : float > 0
    num_threads : int, optional, keyword-only
    check_input : bool, keyword-only
        Check that the activations are finite (and non-negative) first
        (default True). False skips that pass over them, for a caller that
        has checked them already (RegionSet and ObjectSaliency do, as they
        load each batch): results for bad values are then meaningless, but
        nothing reads or writes out of bounds. CPU only; the CUDA engine
        always checks.

    Returns
    -------
    (H, W) or (B, H, W) array: float64 for float64 (and wide integer) input,
    float32 otherwise.

    Raises
    ------
    TypeError
        A non-real dtype.
    ValueError
        A wrong ndim, a negative, NaN or Inf activation, or eps <= 0.

    See Also
    --------
    crow_weights : CroW's spatial weights, from the summed activations.
    egm : regions of these maps (FS.EGM).

    Notes
    -----
    Formulas: the documentation's "Saliency and pooling" page
    (docs/algorithms/saliency_pooling.md).

    Examples
    --------
    >>> import numpy as np, deepret
    >>> a = np.zeros((2, 2, 3), np.float32)
    >>> a[0] = 1.0                   # a dense channel: q = 1, weight log(7/6) = 0.15
    >>> a[1, 0, 0] = 3.0             # a sparse one: q = 1/6, weight log(7) = 1.95
    >>> deepret.feature_saliency(a).round(3)
    array([[0.999, 0.16 , 0.16 ],
           [0.16 , 0.16 , 0.16 ]], dtype=float32)
    """
    if not (isinstance(eps, (int, float, np.floating)) and not isinstance(eps, bool)
            and np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    threads = _backend.threads_arg(num_threads)
    xp = _backend.array_module("feature_saliency", a)
    on_gpu = xp is not np
    x, single = activations(a, "a", xp)
    b, c, h, w = x.shape
    out = xp.empty((b, h * w), dtype=x.dtype)
    flat = x.reshape(b, c, h * w)
    if on_gpu:
        status = xp.zeros(1, dtype=xp.int32)
        if x.size:
            with _backend.cuda_call("feature_saliency", flat) as call:
                call.core.feature_saliency(flat, out, status, eps=float(eps), allocate=call.allocate,
                                           stream=call.stream)
        raise_on_status(status, "a must be finite and non-negative (activations after a ReLU)")
    else:
        _backend._core.feature_saliency(flat, out, float(eps), threads, bool(check_input))
    out = out.reshape(b, h, w)
    return out[0] if single else out
