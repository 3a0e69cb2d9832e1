"""Object saliency (Siméoni, Iscen, Tolias, Avrithis & Chum, WACV 2018): the
regions of a whole collection form a kNN graph; graph centrality says which
patterns are both distinctive and common in the collection; that weights the
regions of each image into an object-saliency (OS) map, and EGM on the OS
maps gives the OS.EGM descriptor.

Definitions (docs/objects.md has the same with the reasons):

- Region graph: the nodes are the regions of a :class:`RegionSet`
  (descriptors v_i); each region's k nearest regions by inner product,
  of *other* images by default (``same_image=False``), give
  ``W = knn_graph``-style affinities max(0, s)^gamma, mutual, normalized
  W = D^-1/2 A D^-1/2. L_alpha = (I - alpha W) / (1 - alpha).
- Global centrality g: L_alpha g = 1 (Katz).
- Local centrality of database image m: L_alpha f^m = y^m, y^m_i = 1[image(i) = m]
  (all images in batched CG calls of ``batch_size`` columns); region i of
  image m gets f_i = f^m_i.
- A new image Q (a query, not in the graph) with regions j (descriptors v_j
  found as for the RegionSet): N(j) = the ``query_k`` nearest database
  regions of v_j, w_jl = max(0, <v_j, v_l>)^gamma, w̄_jl = w_jl / Σ_l w_jl;
  y^Q = Σ_j Σ_{l in N(j)} w_jl e_l, L_alpha f^Q = y^Q, and
  f_j = Σ_l w̄_jl f^Q_l, g_j = Σ_l w̄_jl g_l.
- Region weight c_i = f_i g_i (``centrality="both"``), g_i ("global"),
  f_i ("local") or 1 ("constant", the control without the graph).
- OS map: S(p) = F̂(p) Σ_{i in N_p} max(0, <v_i, u_p>) c_i, with F̂ the
  image's FS map, u_p = a_p / ||a_p|| (0 where a_p = 0) and N_p the image's
  regions whose box holds p (``cover="box"``) or all of its regions
  (``cover="all"``).
- OS.EGM: regions = egm(S, power=2, threshold=0, sigma=2) (whole map when S
  has none), d_k = L2N(max over region k of a), and the read-out
  ``"sum"``: L2N(Σ_k d_k); ``"weighted"``: L2N(Σ_k π_k d_k) with π_k the EGM
  weights; ``"heaviest"``: d of the largest π_k; ``"spatial"``:
  L2N(Σ_p S(p) a_p) (the map as spatial weights, no EGM).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import _arrays, _backend
from .pooling import regional_max_pool
from .regions import _check_params, egm
from .region_graph import _choice, region_graph
from .regionset import with_fallback
from .saliency import feature_saliency
from ._typing import Array, ArrayInput

if TYPE_CHECKING:
    from .regions import Regions

__all__ = ["CENTRALITIES", "COVERS", "READOUTS", "ObjectSaliency", "object_saliency", "region_graph", "saliency_pool"]

#: Region weights of :class:`ObjectSaliency` (``centrality=``): f g, g, f or 1.
CENTRALITIES = ("both", "global", "local", "constant")
#: The regions N_p that weigh pixel p in an OS map (``cover=``): those whose
#: box holds p, or all of the image's regions.
COVERS = ("box", "all")
#: How an OS (or FS) map becomes a descriptor (``readout=``): see
#: :func:`saliency_pool`.
READOUTS = ("sum", "weighted", "heaviest", "spatial")


@_arrays.torch_interop
def object_saliency(a: ArrayInput, descriptors: ArrayInput, boxes: ArrayInput | Regions, weights: ArrayInput, *,
                    counts: ArrayInput | None = None, fs: ArrayInput | None = None, cover: str = "box",
                    num_threads: int | None = None, check_input: bool = True) -> Array:
    """Object-saliency maps S(p) = F̂(p) Σ_{i in N_p} max(0, <v_i, u_p>) c_i.

    Parameters
    ----------
    a : (C, H, W) or (B, C, H, W) array_like, non-negative, finite
    descriptors : (K, C) array_like
        The regions' descriptors v_i (computed in float32).
    boxes : (K, 4) array_like or Regions
        (y0, x0, y1, x1) of each region, in map pixels.
    weights : (K,) array_like
        The region weights c_i (e.g. centralities).
    counts : (B,) ints, keyword-only
        Regions per map, consecutive rows (required for a batch).
    fs : (H, W) / (B, H, W), keyword-only
        F̂; default ``feature_saliency(a)``.
    cover : {"box", "all"}, keyword-only
        N_p: the regions whose box holds p's centre, or all regions of the map.
    num_threads : int, optional, keyword-only
    check_input : bool, keyword-only
        Check that the activations are finite and non-negative first
        (default True). False skips that pass over them, for a caller that
        has checked them already (ObjectSaliency does, as it loads each
        batch): results for bad values are then meaningless, but nothing
        reads or writes out of bounds. CPU only; the CUDA engine always checks.

    CuPy arrays (all of a, descriptors, boxes, weights and fs) run on the
    CUDA engine, one thread block per map.

    Returns
    -------
    (H, W) or (B, H, W) array, float32 (float64 for float64 activations).

    Raises
    ------
    ValueError
        Shapes that disagree, negative or non-finite activations, non-finite
        descriptors or weights, counts not summing to K.

    See Also
    --------
    ObjectSaliency.saliency : these maps with the weights of a fitted graph.
    feature_saliency : F̂.

    Examples
    --------
    >>> import numpy as np, deepret
    >>> a = np.zeros((2, 3, 3), np.float32); a[0, 0, 0] = a[1, 2, 2] = 1.0
    >>> descriptors = np.eye(2, dtype=np.float32)          # region 0 looks like channel 0 ...
    >>> boxes = [[0, 0, 1, 1], [1, 1, 2, 2]]               # ... and sits top left
    >>> s = deepret.object_saliency(a, descriptors, boxes, weights=[1.0, 0.5])
    >>> (s > 0).astype(int)
    array([[1, 0, 0],
           [0, 0, 0],
           [0, 0, 1]])
    >>> bool(s[0, 0] > s[2, 2])                              # the heavier region wins
    True
    """
    cover = _choice("cover", cover, COVERS)
    threads = _backend.threads_arg(num_threads)
    from .regions import Regions
    from .saliency import activations, raise_on_status

    if isinstance(boxes, Regions):
        counts = boxes.counts if counts is None else counts
        boxes = boxes.boxes
    xp = _backend.array_module("object_saliency", a, descriptors, boxes, weights, fs)
    on_gpu = xp is not np
    x, single = activations(a, "a", xp)
    b, c, h, w = x.shape
    desc = xp.ascontiguousarray(descriptors, dtype=np.float32)
    bx = xp.ascontiguousarray(boxes, dtype=np.float64)
    wt = xp.ascontiguousarray(weights, dtype=np.float64)
    if desc.ndim != 2 or desc.shape[1] != c:
        raise ValueError(f"descriptors must be (k, {c}) to match a's channels, got shape {desc.shape}")
    k = len(desc)
    if bx.shape != (k, 4):
        raise ValueError(f"boxes must be ({k}, 4), got shape {bx.shape}")
    if wt.shape != (k,):
        raise ValueError(f"weights must be ({k},), got shape {wt.shape}")
    if counts is None:
        if not single:
            raise ValueError("counts is required for a batch of activations (b, c, h, w)")
        counts = np.array([k])
    counts = np.asarray(counts)
    if counts.shape != (b,) or counts.dtype.kind not in "iu" or (counts < 0).any() or counts.sum() != k:
        raise ValueError(f"counts must be {b} non-negative ints summing to {k}, got {counts!r}")
    if fs is None:
        fs = feature_saliency(x, num_threads=num_threads, check_input=check_input)
    fs = xp.asarray(fs)
    if fs.size != b * h * w:
        raise ValueError(f"fs must be ({h}, {w}) per map, got shape {tuple(fs.shape)}")
    fs = xp.ascontiguousarray(fs.reshape(b, h, w), dtype=x.dtype)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    out = xp.empty((b, h, w), dtype=x.dtype)
    if on_gpu:
        if not (bool(xp.isfinite(desc).all()) and bool(xp.isfinite(wt).all())):
            raise ValueError("descriptors and weights must be finite")
        status = xp.zeros(1, dtype=xp.int32)
        dev_offsets = xp.asarray(offsets)
        with _backend.cuda_call("object_saliency", x) as call:
            call.core.object_saliency(x, fs, desc, bx, wt, dev_offsets, out, status, box_cover=cover == "box",
                                      stream=call.stream)
        raise_on_status(status, "a and fs must be finite and non-negative")
    else:
        _backend._core.object_saliency(x, fs, desc, bx, wt, offsets, cover == "box", out, threads,
                                       bool(check_input))
    return out[0] if single else out


def _rows_of(offsets, ids):
    """Rows of the regions of images ``ids`` (in that order) and their counts."""
    counts = offsets[ids + 1] - offsets[ids]
    starts = np.repeat(offsets[ids], counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return starts + within, counts


@_arrays.torch_interop
def saliency_pool(a: ArrayInput, s: ArrayInput, readout: str = "sum", *, sigma: float = 2.0, lam: float = 0.0,
                  tau: float = 0.55, threshold: float = 0.0, power: float = 2.0, max_iter: int = 20,
                  box_scale: float = 2.0, num_threads: int | None = None) -> Array:
    """Descriptors of images from a saliency map each, by one of the read-outs.

    The same read-outs as ``ObjectSaliency.describe``, for any map: an OS map,
    or an FS map (``feature_saliency(a)`` with ``sigma=2.5, threshold=0.4,
    power=5`` gives FS.EGM for ``readout="sum"``), so that FS and OS maps can
    be compared read-out by read-out.

    Parameters
    ----------
    a : (C, H, W) or (B, C, H, W) array_like, non-negative, finite
    s : (H, W) or (B, H, W) array_like, non-negative, finite
    readout : {"sum", "weighted", "heaviest", "spatial"}
        With regions = egm(s, ...) (the whole map when there is none) and
        d_k = L2N(max over region k of a): L2N(Σ_k d_k), L2N(Σ_k π_k d_k),
        d_k of the largest π_k; or L2N(Σ_p s(p) a_p) ("spatial", no EGM).
    sigma, lam, tau, threshold, power, max_iter, box_scale : keyword-only
        EGM settings (default: the paper's OS settings).

    num_threads : int, optional, keyword-only

    Returns
    -------
    (C,) or (B, C), L2-normalized, float32 (float64 for float64 activations).

    Raises
    ------
    ValueError
        An unknown readout, an EGM setting out of range, maps that do not
        match a's, negative or non-finite values.
    TypeError
        CuPy input (numpy only for now), non-real maps.

    See Also
    --------
    ObjectSaliency.describe : the same read-outs of OS maps.
    describe : ``"fs.egm"`` is ``saliency_pool(a, feature_saliency(a),
        "sum", sigma=2.5, threshold=0.4, power=5)``.
    weighted_sum_pool : the ``"spatial"`` read-out.

    Examples
    --------
    >>> import numpy as np, deepret
    >>> a = np.random.default_rng(0).random((6, 5, 7), dtype=np.float32)
    >>> deepret.saliency_pool(a, deepret.feature_saliency(a), "heaviest").shape
    (6,)
    """
    from .saliency import activations

    readout = _choice("readout", readout, READOUTS)
    params = dict(zip(("sigma", "lam", "tau", "threshold", "power", "max_iter", "box_scale"),
                      _check_params(sigma, lam, tau, threshold, power, max_iter, box_scale)))
    if _arrays.is_cupy_array(a) or _arrays.is_cupy_array(s):
        raise TypeError("saliency_pool runs on numpy arrays only for now (cupy.asnumpy)")
    x, single = activations(a, "a", np)
    b, c, h, w = x.shape
    maps = np.asarray(s)
    if maps.dtype.kind not in "biuf":
        raise TypeError(f"s must be real, got dtype {maps.dtype}")
    if maps.shape != ((h, w) if single else (b, h, w)):
        raise ValueError(f"s must be {(h, w) if single else (b, h, w)} like a's maps, got shape {maps.shape}")
    maps = np.ascontiguousarray(maps.reshape(b, h, w), dtype=x.dtype)
    if not np.isfinite(maps).all() or (maps < 0).any():
        raise ValueError("s must be finite and non-negative")
    out = _readout(x, maps, readout, params, num_threads)
    return out[0] if single else out


def _readout(batch, maps, readout, params, num_threads, check_input=True):
    """(b, C) descriptors of a batch read out of its maps; check_input=False
    for a batch that image_batches has checked."""
    threads = _backend.threads_arg(num_threads)
    b, c, h, w = batch.shape
    if readout == "spatial":
        out = np.empty((b, c), dtype=batch.dtype)
        _backend._core.weighted_pool(batch.reshape(b, c, h * w), np.ascontiguousarray(maps.reshape(b, h * w)),
                                     None, out, True, threads)
        return out
    regions, _ = with_fallback(egm(maps, **params, num_threads=num_threads), h, w)
    pooled = regional_max_pool(batch, regions.boxes, counts=regions.counts, num_threads=num_threads,
                               check_input=check_input)
    offsets = regions.offsets
    if readout == "heaviest":  # EGM lists each map's regions by descending weight
        return np.ascontiguousarray(pooled[offsets[:-1]])
    out = np.empty((b, c), dtype=pooled.dtype)
    wt = np.ascontiguousarray(regions.weights, dtype=np.float64) if readout == "weighted" else None
    _backend._core.segment_reduce(pooled, wt, offsets, 0, True, out, threads)
    return out


# The collection model lives in _object_saliency_model.py; its name stays
# deepret.objects'. Imported last, as it imports from this module.
from ._object_saliency_model import ObjectSaliency  # noqa: E402
