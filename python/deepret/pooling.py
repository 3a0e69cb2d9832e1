"""Pooling of CNN activations into L2-normalized descriptors: MAC, SPoC, GeM,
R-MAC and regional max pooling over boxes (e.g. EGM regions).

Normalization is ``v / (||v||_2 + 1e-6)``, as in the reference (cirtorch)
code; pass ``normalize=False`` for the raw pooled values. Activations
(C, H, W) or (B, C, H, W) of any real dtype compute in float32 (float16,
float32, small integers, bool) or float64; NaN or Inf raises ValueError.
numpy input runs on the CPU engine, CuPy input on the CUDA engine.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from . import _arrays, _backend
from .saliency import activations, raise_on_status
from ._typing import Array, ArrayInput

if TYPE_CHECKING:
    from .regions import Regions

__all__ = ["gem", "mac", "regional_max_pool", "rmac", "rmac_regions", "spoc"]

_MAC, _SPOC, _GEM = 0, 1, 2


def _global(name, a, kind, p, eps, normalize, num_threads):
    threads = _backend.threads_arg(num_threads)
    xp = _backend.array_module(name, a)
    on_gpu = xp is not np
    x, single = activations(a, "a", xp)
    b, c, h, w = x.shape
    if h * w == 0:
        raise ValueError(f"a must have at least one position, got shape {tuple(x.shape[1:])}")
    out = xp.empty((b, c), dtype=x.dtype)
    flat = x.reshape(b, c, h * w)
    if on_gpu:
        status = xp.zeros(1, dtype=xp.int32)
        if out.size:
            with _backend.cuda_call(name, flat) as call:
                call.core.global_pool(flat, out, status, kind=kind, p=float(p), eps=float(eps),
                                      normalize=bool(normalize), stream=call.stream)
        raise_on_status(status, "a must be finite")
    else:
        _backend._core.global_pool(flat, out, kind, float(p), float(eps), bool(normalize), threads)
    return out[0] if single else out


@_arrays.torch_interop
def mac(a: ArrayInput, *, normalize: bool = True, num_threads: int | None = None) -> Array:
    """MAC: the maximum activation of each channel over the map.

    ``v_c = max_p a[c, p]``, then L2-normalized.

    Parameters
    ----------
    a : (C, H, W) or (B, C, H, W) array_like
        Activations of one image or a batch (any real dtype; computed in
        float32, or float64 for float64 and wide integers); finite.
    normalize : bool, keyword-only
        L2-normalize, ``v / (||v|| + 1e-6)`` (default True).
    num_threads : int, optional, keyword-only

    Returns
    -------
    (C,) or (B, C) array
        float32 (float64 for float64 input); CuPy for CuPy input.

    Raises
    ------
    ValueError
        Wrong ndim, an empty map, NaN or Inf.
    TypeError
        A non-real dtype.

    See Also
    --------
    torch.nn.functional.adaptive_max_pool2d : ``(a, 1)``, before the L2
        normalization (cirtorch's ``mac``).
    numpy.amax : ``a.max(axis=(-2, -1))``.
    spoc, gem, rmac

    Examples
    --------
    >>> import numpy as np, deepret
    >>> a = np.array([[[0, 3], [4, 0]], [[1, 0], [0, 0]]], np.float32)   # C=2, H=W=2
    >>> deepret.mac(a, normalize=False)
    array([4., 1.], dtype=float32)
    >>> deepret.mac(a).round(4)
    array([0.9701, 0.2425], dtype=float32)
    """
    return _global("mac", a, _MAC, 1.0, 0.0, normalize, num_threads)


@_arrays.torch_interop
def spoc(a: ArrayInput, *, normalize: bool = True, num_threads: int | None = None) -> Array:
    """SPoC: the sum of each channel over the map (sum pooling).

    ``v_c = sum_p a[c, p]``, then L2-normalized.

    Parameters
    ----------
    a : (C, H, W) or (B, C, H, W) array_like
        Activations of one image or a batch (any real dtype; computed in
        float32, or float64 for float64 and wide integers); finite.
    normalize : bool, keyword-only
        L2-normalize, ``v / (||v|| + 1e-6)`` (default True).
    num_threads : int, optional, keyword-only

    Returns
    -------
    (C,) or (B, C) array
        float32 (float64 for float64 input); CuPy for CuPy input.

    Raises
    ------
    ValueError
        Wrong ndim, an empty map, NaN or Inf.
    TypeError
        A non-real dtype.

    See Also
    --------
    numpy.sum : ``a.sum(axis=(-2, -1))``.
    mac, gem

    Examples
    --------
    >>> import numpy as np, deepret
    >>> a = np.array([[[0, 3], [4, 0]], [[1, 0], [0, 0]]], np.float32)
    >>> deepret.spoc(a, normalize=False)
    array([7., 1.], dtype=float32)
    """
    return _global("spoc", a, _SPOC, 1.0, 0.0, normalize, num_threads)


@_arrays.torch_interop
def gem(a: ArrayInput, p: float = 3.0, eps: float = 1e-6, *, normalize: bool = True,
        num_threads: int | None = None) -> Array:
    """GeM: generalized-mean pooling, (mean_p max(a, eps)^p)^(1/p) per channel.

    p = 1 is average pooling, p -> infinity MAC; then L2-normalized.

    Parameters
    ----------
    a : (C, H, W) or (B, C, H, W) array_like
        Activations, finite.
    p : float > 0
        The exponent (3 in Radenovic et al.).
    eps : float > 0
        Activations are clamped at eps first (cirtorch's ``clamp(min=eps)``).
    normalize : bool, keyword-only
    num_threads : int, optional, keyword-only

    Returns
    -------
    (C,) or (B, C) array
        float32 (float64 for float64 input); CuPy for CuPy input.

    Raises
    ------
    ValueError
        p or eps not positive and finite; wrong ndim, empty map, NaN or Inf.

    See Also
    --------
    torch.nn.functional.avg_pool2d : cirtorch's ``gem`` is
        ``avg_pool2d(a.clamp(min=eps).pow(p), (H, W)).pow(1/p)``.
    mac, spoc

    Examples
    --------
    >>> import numpy as np, deepret
    >>> a = np.array([[[0, 3], [4, 0]], [[1, 0], [0, 0]]], np.float32)
    >>> deepret.gem(a, p=1.0, normalize=False).round(3)     # the mean
    array([1.75, 0.25], dtype=float32)
    >>> deepret.gem(a, p=3.0, normalize=False).round(3)
    array([2.834, 0.63 ], dtype=float32)
    """
    for name, value in (("p", p), ("eps", eps)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
                or not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return _global("gem", a, _GEM, p, eps, normalize, num_threads)


def rmac_regions(h: int, w: int, levels: int = 3, overlap: float = 0.4) -> Array:
    """The R-MAC region grid of cirtorch (Radenovic et al.), box for box.

    Parameters
    ----------
    h, w : int
        Height and width of the activation map (both >= 1).
    levels : int
        Scales l = 1..levels (cirtorch's ``L``, default 3).
    overlap : float
        Desired overlap of neighbouring regions (cirtorch's ``ovr``, 0.4).

    Returns
    -------
    (R, 4) int64 array
        Inclusive pixel boxes (y0, x0, y1, x1): the whole map first, then for
        each level l the square regions of side wl = floor(2 min(h, w) / (l + 1)),
        rows of regions top to bottom, each row left to right.

    Notes
    -----
    The grid is the one cirtorch's ``rmac``/``roipool`` compute, including
    their float32 arithmetic, so that every box is identical on every map
    size (checked for all sizes 1x1..64x64 in tests/test_pooling.py against
    the formula written out independently):

    - the number of regions along the longer side is ``steps[idx]`` with
      ``steps = 2..7`` and ``idx`` the first minimizer, in float32, of
      ``|(w^2 - w b) / w^2 - overlap|``, ``b = (max(h, w) - w) * (1 / (steps - 1))``
      (torch evaluates ``int / tensor`` as ``tensor.reciprocal() * int``);
    - region starts are ``floor(wl2 + k * b) - wl2`` with ``k * b`` and the sum
      rounded to float32, ``b = (side - wl) / (count - 1)`` and
      ``wl2 = floor(wl / 2 - 1)``.

    In exact arithmetic a few of these floors and argmins come out
    differently (whole numbers that float32 rounds just below, near-ties of
    the overlap criterion); deepret follows cirtorch, so descriptors agree
    with cirtorch's, and ``tests/test_pooling.py`` lists the sizes where
    cirtorch's float32 grid differs from the exact-arithmetic one.

    Raises
    ------
    ValueError
        If h, w or levels is not a positive int, or overlap is not in [0, 1).

    See Also
    --------
    rmac : R-MAC pooling over this grid.

    Examples
    --------
    >>> import deepret
    >>> boxes = deepret.rmac_regions(16, 16)
    >>> len(boxes), boxes[:3].tolist()
    (15, [[0, 0, 15, 15], [0, 0, 15, 15], [0, 0, 9, 9]])
    """
    h, w = _arrays.positive_int("h", h), _arrays.positive_int("w", w)
    levels = _arrays.positive_int("levels", levels)
    if max(h, w) >= 2**31:
        raise ValueError(f"h and w must be below 2**31, got ({h}, {w})")
    if isinstance(overlap, (bool, np.bool_)) or not isinstance(overlap, (int, float, np.integer, np.floating)) \
            or not 0 <= overlap < 1:
        raise ValueError(f"overlap must be a number in [0, 1), got {overlap!r}")
    f32 = np.float32
    small, large = min(h, w), max(h, w)
    steps = np.arange(2, 8, dtype=f32)
    b = (f32(1) / (steps - f32(1))) * f32(large - small)          # torch's int / tensor
    criterion = np.abs((f32(small * small) - f32(small) * b) / f32(small * small) - f32(overlap))
    idx = int(np.argmin(criterion))                                # the first minimum, as torch.min
    wd = idx + 1 if h < w else 0
    hd = idx + 1 if h > w else 0
    boxes = [(0, 0, h - 1, w - 1)]
    for level in range(1, levels + 1):
        side = math.floor(2 * small / (level + 1))
        if side == 0:  # and at every level after it: stop (levels may be huge)
            break
        half = math.floor(side / 2 - 1)

        def starts(length, count):
            step = 0.0 if count == 1 else (length - side) / (count - 1)   # a Python float
            k = np.arange(count, dtype=f32)
            return (np.floor(f32(half) + k * f32(step)) - f32(half)).astype(np.int64).tolist()

        xs, ys = starts(w, level + wd), starts(h, level + hd)
        boxes.extend((y, x, y + side - 1, x + side - 1) for y in ys for x in xs)
    return np.array(boxes, dtype=np.int64).reshape(-1, 4)


@_arrays.torch_interop
def rmac(a: ArrayInput, levels: int = 3, *, num_threads: int | None = None) -> Array:
    """R-MAC: regional MAC over the standard grid, summed.

    ``L2N(sum_R L2N(max_{p in R} a[:, p]))`` over the whole map and the
    R-MAC grid regions (:func:`rmac_regions`, overlap 0.4).

    Parameters
    ----------
    a : (C, H, W) or (B, C, H, W) array_like
        Activations, finite.
    levels : int >= 1
        Grid scales (cirtorch's ``L``, default 3).
    num_threads : int, optional, keyword-only

    Returns
    -------
    (C,) or (B, C) array, L2-normalized
        float32 (float64 for float64 input); CuPy for CuPy input.

    Raises
    ------
    ValueError
        levels not an int >= 1; wrong ndim, empty map, NaN or Inf.

    See Also
    --------
    rmac_regions : the grid.
    regional_max_pool : max pooling over any boxes.
    mac

    Examples
    --------
    >>> import numpy as np, deepret
    >>> a = np.random.default_rng(0).random((8, 10, 12), dtype=np.float32)
    >>> v = deepret.rmac(a, levels=3)
    >>> v.shape, round(float(np.linalg.norm(v)), 4)
    ((8,), 1.0)
    """
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise ValueError(f"levels must be an int >= 1, got {levels!r}")
    threads = _backend.threads_arg(num_threads)
    xp = _backend.array_module("rmac", a)
    on_gpu = xp is not np
    x, single = activations(a, "a", xp)
    b, c, h, w = x.shape
    if h * w == 0:
        raise ValueError(f"a must have at least one position, got shape {tuple(x.shape[1:])}")
    out = xp.empty((b, c), dtype=x.dtype)
    regions = rmac_regions(h, w, levels)
    if on_gpu:
        boxes = xp.asarray(regions.astype(np.float64))
        status = xp.zeros(1, dtype=xp.int32)
        if out.size:
            with _backend.cuda_call("rmac", x) as call:
                call.core.rmac(x, boxes, out, status, allocate=call.allocate, stream=call.stream)
        raise_on_status(status, "a must be finite")
    else:
        _backend._core.rmac(x, regions, out, threads)
    return out[0] if single else out


@_arrays.torch_interop
def regional_max_pool(a: ArrayInput, boxes: ArrayInput | Regions, *, counts: ArrayInput | None = None,
                      normalize: bool = True, num_threads: int | None = None, check_input: bool = True) -> Array:
    """Max pooling over boxes: one descriptor per box.

    Parameters
    ----------
    a : (C, H, W) or (B, C, H, W) array_like
    boxes : (K, 4) array_like of (y0, x0, y1, x1), or a :class:`deepret.Regions`
        A box pools the pixels whose centres (integer y, x) it contains
        (clipped to the map); a box holding none raises ValueError.
    counts : (B,) ints, keyword-only
        For a batch: how many consecutive boxes belong to each image (taken
        from ``boxes.counts`` for a Regions). Required for a batch.
    normalize : bool, keyword-only
        L2-normalize each descriptor (default True).

    num_threads : int, optional, keyword-only
    check_input : bool, keyword-only
        Check that the activations are finite first (default True). False
        skips that pass over them, for a caller that has checked them
        already (RegionSet and ObjectSaliency do, as they load each batch):
        results for bad values are then meaningless, but nothing reads or
        writes out of bounds. CPU only; the CUDA engine always checks.

    Returns
    -------
    (K, C) array, rows in box order
        float32 (float64 for float64 input); CuPy for CuPy input.

    Raises
    ------
    ValueError
        boxes not (K, 4) or not finite, a box holding no pixel centre,
        counts missing for a batch or not summing to K.
    TypeError
        CuPy activations with host boxes.

    See Also
    --------
    torchvision.ops.roi_pool : max pooling over boxes, with its own
        quantization of the box edges (here: the pixel centres inside).
    egm : regions whose boxes this pools.
    rmac

    Examples
    --------
    >>> import numpy as np, deepret
    >>> a = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)   # C=2, H=3, W=4
    >>> boxes = [[0, 0, 1, 1], [1, 2, 2, 3]]                          # (y0, x0, y1, x1)
    >>> deepret.regional_max_pool(a, boxes, normalize=False)
    array([[ 5., 17.],
           [11., 23.]], dtype=float32)
    """
    from .regions import Regions

    threads = _backend.threads_arg(num_threads)
    if _arrays.is_cupy_array(a):
        return _regional_cuda(a, boxes, counts, normalize)
    if isinstance(boxes, Regions):
        counts = boxes.counts if counts is None else counts
        boxes = boxes.boxes
    x, single = activations(a, "a", np)
    bx = np.ascontiguousarray(boxes, dtype=np.float64)
    if bx.ndim != 2 or bx.shape[1] != 4:
        raise ValueError(f"boxes must be (k, 4) as (y0, x0, y1, x1), got shape {bx.shape}")
    if not np.isfinite(bx).all():
        raise ValueError("boxes must be finite")
    image = _image_index(single, counts, len(x), len(bx))
    out = np.empty((len(bx), x.shape[1]), dtype=x.dtype)
    _backend._core.regional_max(x, bx, image, out, bool(normalize), threads, bool(check_input))
    return out


def _image_index(single, counts, b, k):
    if counts is None:
        if not single:
            raise ValueError("counts is required for a batch of activations (b, c, h, w)")
        return np.zeros(k, dtype=np.int64)
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.dtype.kind not in "iu" or len(counts) != b or (counts < 0).any() \
            or counts.sum() != k:
        raise ValueError(f"counts must be {b} non-negative ints summing to len(boxes) = {k}, got {counts!r}")
    return np.repeat(np.arange(b, dtype=np.int64), counts)


def _regional_cuda(a, boxes, counts, normalize):
    from .regions import Regions

    cp = _arrays.cupy_module()
    if isinstance(boxes, Regions):
        counts = boxes.counts if counts is None else counts
        boxes = boxes.boxes
    if not _arrays.is_cupy_array(boxes):
        raise TypeError("deepret.regional_max_pool got CuPy activations but host boxes; move the boxes "
                        "to the GPU first (cupy.asarray), or run egm on the GPU")
    x, single = activations(a, "a", cp)
    bx = cp.ascontiguousarray(boxes, dtype=cp.float64)
    if bx.ndim != 2 or bx.shape[1] != 4:
        raise ValueError(f"boxes must be (k, 4) as (y0, x0, y1, x1), got shape {bx.shape}")
    if not bool(cp.isfinite(bx).all()):
        raise ValueError("boxes must be finite")
    image = cp.asarray(_image_index(single, counts, len(x), len(bx)))
    out = cp.empty((len(bx), x.shape[1]), dtype=x.dtype)
    b, c, h, w = x.shape
    status = cp.zeros(1, dtype=cp.int32)
    if out.size:
        with _backend.cuda_call("regional_max_pool", x) as call:
            call.core.regional_max(x, bx, image, out, status, normalize=bool(normalize), stream=call.stream)
    raise_on_status(status, "a must be finite and every box must hold a pixel centre of the map")
    return out
