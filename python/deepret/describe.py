"""Global image descriptors from CNN activations.

``describe(a, method)`` turns the last convolutional feature map of a CNN into
one L2-normalized descriptor per image, with the pooling of the chosen method:

- ``"mac"``: per-channel max over the map (MAC);
- ``"spoc"``, ``"gem"``: sum / generalized mean (p = 3) pooling;
- ``"rmac"``: R-MAC over the standard grid (``levels`` scales, overlap 0.4);
- ``"fs.egm"``: the regions of Siméoni et al. (WACV 2018): feature saliency
  → EGM regions (power 5, threshold 0.4, sigma 2.5 by default) → regional max
  pooling, each region L2-normalized → sum over the image's regions → L2.
  An image whose saliency map has no region (all-zero activations) pools the
  whole map instead, so every image gets a descriptor.
- ``"crow"``: CroW (Kalantidis et al. 2016): summed-activation spatial
  weights, sparsity-sensitive channel weights, weighted sum pooling.
- ``"os.egm"``: object saliency → EGM → regional max pooling (see
  :mod:`deepret.objects`); needs ``saliency=`` a fitted ObjectSaliency.

numpy activations run on the CPU engine, CuPy activations on the CUDA engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import _arrays
from .pooling import gem, mac, regional_max_pool, rmac, spoc
from .regions import egm
from .saliency import feature_saliency

if TYPE_CHECKING:
    from .objects import ObjectSaliency
from ._typing import Array, ArrayInput

__all__ = ["METHODS", "describe"]

#: The methods of :func:`describe` that need no fitted model ("os.egm" needs
#: ``saliency=``, a fitted :class:`ObjectSaliency`).
METHODS = ("mac", "spoc", "gem", "rmac", "fs.egm", "crow")  # and "os.egm", which needs saliency=


@_arrays.torch_interop
def describe(activations: ArrayInput | Sequence[ArrayInput], method: str = "mac", *, levels: int = 3,
             p: float = 3.0, sigma: float = 2.5, threshold: float = 0.4, power: float = 5.0,
             saliency: ObjectSaliency | None = None, num_threads: int | None = None) -> Array:
    """Global descriptors of images from their CNN activations.

    Parameters
    ----------
    activations : (C, H, W), (B, C, H, W) array_like, or a sequence of (C, H, W) arrays
        Non-negative activations (after a ReLU) of one image, of a batch of
        same-sized images, or of images of different sizes (a list; they are
        grouped by size and each group runs as one batch).
    method : {"mac", "spoc", "gem", "rmac", "fs.egm", "crow", "os.egm"}
    levels : int, keyword-only
        R-MAC grid scales ("rmac").
    p : float, keyword-only
        GeM exponent ("gem").
    sigma, threshold, power : float, keyword-only
        EGM settings for "fs.egm" (the paper's FS settings by default).
    saliency : ObjectSaliency, keyword-only
        The fitted object saliency, for "os.egm" (its own settings apply;
        the activations are described as new images).
    num_threads : int, optional, keyword-only

    Returns
    -------
    (C,) for one image, (B, C) otherwise: L2-normalized descriptors, float32
    (float64 for float64 activations); numpy or CuPy like the input.

    Raises
    ------
    ValueError
        Unknown method, wrong ndim, NaN/Inf or (for "fs.egm") negative
        activations, an empty sequence, channel counts that differ.
    TypeError
        "os.egm" without a fitted ObjectSaliency; non-real activations.

    See Also
    --------
    mac, spoc, gem, rmac, crow : the global poolings.
    feature_saliency, egm, regional_max_pool : the steps of "fs.egm".
    ObjectSaliency.describe : "os.egm".

    Examples
    --------
    >>> import numpy as np, deepret
    >>> acts = np.random.default_rng(0).random((3, 16, 7, 9), dtype=np.float32)  # B, C, H, W
    >>> for method in ("mac", "gem", "rmac", "fs.egm", "crow"):
    ...     d = deepret.describe(acts, method)
    ...     print(method, d.shape, d.dtype, np.linalg.norm(d, axis=1).round(3))
    mac (3, 16) float32 [1. 1. 1.]
    gem (3, 16) float32 [1. 1. 1.]
    rmac (3, 16) float32 [1. 1. 1.]
    fs.egm (3, 16) float32 [1. 1. 1.]
    crow (3, 16) float32 [1. 1. 1.]
    >>> sizes = [acts[0], acts[1, :, :5, :6]]             # images of different sizes
    >>> deepret.describe(sizes, "mac").shape
    (2, 16)
    """
    if method == "os.egm":
        from .objects import ObjectSaliency

        if not isinstance(saliency, ObjectSaliency):
            raise TypeError(f"method='os.egm' needs saliency= a fitted deepret.ObjectSaliency, got "
                            f"{type(saliency).__name__}")
        return saliency.describe(activations)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS + ('os.egm',)))}, got {method!r}")
    options = dict(levels=levels, p=p, sigma=sigma, threshold=threshold, power=power,
                   num_threads=num_threads)
    if isinstance(activations, Sequence) and not isinstance(activations, (str, bytes)):
        return _describe_list(list(activations), method, options)
    return _describe_batch(activations, method, options)


def _describe_list(images: list, method: str, options: dict):
    """Images of different sizes: one batch per (C, H, W) shape, rows back in input order."""
    if not images:
        raise ValueError("activations is an empty sequence")
    groups: dict[tuple, list[int]] = {}
    for i, a in enumerate(images):
        shape = tuple(getattr(a, "shape", np.shape(a)))
        if len(shape) != 3:
            raise ValueError(f"activations[{i}] must be 3-D (C, H, W), got shape {shape}")
        groups.setdefault(shape, []).append(i)
    channels = {shape[0] for shape in groups}
    if len(channels) > 1:
        raise ValueError(f"all activations must have the same number of channels, got {sorted(channels)}")
    xp = _arrays.cupy_module() if _arrays.is_cupy_array(images[0]) else np
    out = None
    for members in groups.values():
        batch = xp.stack([xp.asarray(images[i]) for i in members])
        rows = _describe_batch(batch, method, options)
        if out is None:
            out = xp.empty((len(images), rows.shape[1]), dtype=rows.dtype)
        out[xp.asarray(members)] = rows
    return out


def _describe_batch(a, method: str, options: dict):
    threads = options["num_threads"]
    if method == "mac":
        return mac(a, num_threads=threads)
    if method == "spoc":
        return spoc(a, num_threads=threads)
    if method == "gem":
        return gem(a, options["p"], num_threads=threads)
    if method == "rmac":
        return rmac(a, options["levels"], num_threads=threads)
    if method == "crow":
        from .crow import crow

        return crow(a, num_threads=threads)
    return _fs_egm(a, options)


def _fs_egm(a, options: dict):
    threads = options["num_threads"]
    xp = _arrays.cupy_module() if _arrays.is_cupy_array(a) else np
    a = xp.asarray(a)
    single = a.ndim == 3
    batch = a[None] if single else a
    if batch.ndim != 4:
        raise ValueError(f"activations must be (C, H, W) or (B, C, H, W), got shape {tuple(a.shape)}")
    maps = feature_saliency(batch, num_threads=threads)  # (B, H, W)
    regions = egm(maps, sigma=options["sigma"], threshold=options["threshold"], power=options["power"],
                  num_threads=threads)
    boxes, counts = _with_whole_map_fallback(regions, batch.shape[2], batch.shape[3], xp)
    pooled = regional_max_pool(batch, boxes, counts=counts, num_threads=threads)  # (K, C), each L2N
    # Sum each image's (contiguous) rows: differences of a float64 running sum.
    running = xp.concatenate([xp.zeros((1, pooled.shape[1])), xp.cumsum(pooled, axis=0, dtype=xp.float64)])
    offsets = xp.asarray(np.concatenate([[0], np.cumsum(counts)]))
    summed = running[offsets[1:]] - running[offsets[:-1]]
    norms = xp.sqrt((summed * summed).sum(axis=1, keepdims=True))
    out = (summed / (norms + 1e-6)).astype(pooled.dtype)
    return out[0] if single else out


def _with_whole_map_fallback(regions, h: int, w: int, xp):
    """(boxes (K', 4), counts (B,)): the regions' boxes, with one whole-map box
    for every map that has no region."""
    counts = np.asarray(regions.counts, dtype=np.int64)
    empty = counts == 0
    if not empty.any():
        return regions.boxes, counts
    whole = xp.asarray([0.0, 0.0, h - 1.0, w - 1.0])
    pieces, start = [], 0
    for count in counts:
        if count:
            pieces.append(regions.boxes[start:start + count])
            start += int(count)
        else:
            pieces.append(whole[None])
    return xp.concatenate(pieces), np.maximum(counts, 1)
