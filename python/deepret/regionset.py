"""A collection's regions: every image's FS.EGM regions with one regional
descriptor each (Siméoni et al., WACV 2018).

For image m with activations A (C, H, W): F̂ = feature_saliency(A), the
regions are egm(F̂) with the FS settings (power 5, threshold 0.4, sigma 2.5
by default), and region i with box B_i gets the descriptor
v_i = L2N(max over the pixel centres p in B_i of A[:, p]). An image whose
map has no region (all-zero activations) gets one whole-map region
(``fallback``), as ``describe(..., "fs.egm")`` does, so every image is
represented.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence

import numpy as np

from . import _backend
from ._arrays import is_cupy_array
from .pooling import regional_max_pool
from .regions import Regions, _check_params, egm
from .saliency import feature_saliency

__all__ = ["RegionSet"]

_FIELDS = ("descriptors", "image", "boxes", "means", "variances", "weights", "fallback", "shapes")
_PARAMS = ("sigma", "lam", "tau", "threshold", "power", "max_iter", "box_scale")


def image_batches(acts, name="activations", batch_size=256):
    """Yield (image ids, (b, C, H, W) float32/float64 batch) over the input,
    checked, in groups of one shape; also return the image count and channels.

    ``acts``: (C, H, W), (B, C, H, W), or a sequence of (C, H, W) / (B, C, H, W).
    Raises ValueError naming the offending item for empty maps, NaN/Inf,
    negative values, wrong ndim, channel counts that differ.
    """
    if isinstance(acts, Sequence) and not isinstance(acts, (str, bytes)):
        items = list(acts)
        if not items:
            raise ValueError(f"{name} is an empty sequence")
        labels = [f"{name}[{i}]" for i in range(len(items))]
    else:
        items, labels = [acts], [name]
    shapes, groups, images, channels = [], {}, 0, set()
    for item, label in zip(items, labels):
        if is_cupy_array(item):
            raise TypeError(f"{label} is a CuPy array: RegionSet and ObjectSaliency run on numpy arrays only "
                            "for now (cupy.asnumpy)")
        arr = np.asarray(item)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{label} must be a real array, got dtype {arr.dtype}")
        if arr.ndim not in (3, 4):
            raise ValueError(f"{label} must be 3-D (C, H, W) or 4-D (B, C, H, W), got shape {arr.shape}")
        batch = arr[None] if arr.ndim == 3 else arr
        b, c, h, w = batch.shape
        if c == 0 or h == 0 or w == 0:
            raise ValueError(f"{label} is empty: shape {arr.shape} (C, H and W must be >= 1)")
        channels.add(c)
        if len(channels) > 1:
            raise ValueError(f"all activations must have the same number of channels, got {sorted(channels)} "
                             f"(at {label})")
        for j in range(b):
            groups.setdefault((c, h, w), []).append((images + j, batch, j, label))
            shapes.append((h, w))
        images += b
    single = len(items) == 1 and np.ndim(items[0]) == 3 and not isinstance(acts, Sequence)
    return _iterate(groups, batch_size), images, channels.pop(), np.array(shapes, np.int64).reshape(-1, 2), single


# Batches hold at most this many bytes of work-dtype activations (and at
# least one image), whatever batch_size asks: a batch buffer is first-touched
# (page faults) once per call, and 256 maps of 1280 x 16 x 24 were 500 MB,
# 1.6 ms per map of faults on a 2-core Zen 4 VM, as long as the conversion
# itself. In steady state 8 to 128 MB ran within 15 % of each other there
# (regions 0.48-0.61, describe 0.62-0.72 ms per map); 32 MB is that
# machine's L3.
_BATCH_BYTES = 32 << 20


def _iterate(groups, batch_size):
    # One buffer per image size, reused batch after batch (the consumer is
    # done with a batch before it asks for the next): first-touching fresh
    # pages costs about 1 ms per MB here.
    for members in groups.values():
        first = np.asarray(members[0][1])
        work = np.float64 if first.dtype == np.float64 else np.float32
        per_image = int(np.prod(first.shape[1:])) * np.dtype(work).itemsize
        batch_size = max(1, min(batch_size, _BATCH_BYTES // max(per_image, 1)))
        buffer = np.empty((min(batch_size, len(members)),) + first.shape[1:], dtype=work)
        for start in range(0, len(members), batch_size):
            chunk = members[start:start + batch_size]
            batch = buffer[:len(chunk)]
            lo, hi = np.inf, -np.inf  # NaN and -inf/inf show in the extremes
            for row, (_, src, j, _) in enumerate(chunk):
                item = np.asarray(src[j])
                if item.dtype in (np.float16, np.float32) and work == np.float32 and item.flags.c_contiguous:
                    # one native pass converts (F16C where there is AVX2) and finds the range
                    l, h = _backend._core.widen_range(item, batch[row], 0)
                else:
                    batch[row] = item
                    l, h = batch[row].min(), batch[row].max()
                lo, hi = (np.nan, np.nan) if np.isnan(l) or np.isnan(lo) else (min(lo, l), max(hi, h))
            if not (np.isfinite(lo) and np.isfinite(hi)):
                bad = next(c for c, b in zip(chunk, batch) if not np.isfinite(b).all())
                raise ValueError(f"{bad[3]} must be finite (no NaN or Inf)")
            if lo < 0:
                bad = next(c for c, b in zip(chunk, batch) if (b < 0).any())
                raise ValueError(f"{bad[3]} must be non-negative (activations after a ReLU)")
            yield np.array([c[0] for c in chunk], np.int64), batch


def with_fallback(regions: Regions, h: int, w: int):
    """Regions plus one whole-map region (weight 1, box (0, 0, h-1, w-1)) for
    each map that has none; also the (K,) fallback mask."""
    counts = regions.counts
    empty = counts == 0
    k = int(counts.sum())
    if not empty.any():
        return regions, np.zeros(k, bool)
    new_counts = np.maximum(counts, 1)
    new_offsets = np.concatenate([[0], np.cumsum(new_counts)]).astype(np.int64)
    old_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    rows = np.full(int(new_offsets[-1]), -1, dtype=np.int64)
    rows[new_offsets[owner] + np.arange(k) - old_offsets[owner]] = np.arange(k)
    fill = rows < 0
    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    spread = np.array([max(h * h / 12.0, 1e-12), max(w * w / 12.0, 1e-12)])

    def take(field, default):
        src = np.asarray(field)
        out = np.empty((len(rows),) + src.shape[1:], dtype=np.float64)
        out[~fill] = src[rows[~fill]]
        out[fill] = default
        return out

    merged = Regions(take(regions.means, centre), take(regions.variances, spread), take(regions.weights, 1.0),
                     take(regions.boxes, [0.0, 0.0, h - 1.0, w - 1.0]), new_counts, batched=True)
    return merged, fill


class RegionSet:
    """The regions of a collection of images, each with a regional descriptor.

    Rows are regions, grouped by image in image order (image 0's regions
    first); within an image, EGM's order (descending weight).

    Attributes
    ----------
    descriptors : (K, C) float32 (or float16 storage)
        L2-normalized regional max-pooled descriptors v_i.
    image : (K,) int64
        The image each region belongs to.
    boxes : (K, 4) float64
        (y0, x0, y1, x1) in the image's map pixels (pixel centres at integers).
    means, variances : (K, 2) float64
        The EGM component of each region, (y, x); for a fallback region the
        map's centre and the variances of a uniform spread over it.
    weights : (K,) float64
        Saliency mass: the EGM mixing weight, the share of the image's
        (preprocessed) saliency the region explains; 1 for a fallback region.
    fallback : (K,) bool
        Whole-map regions of images whose map had no region.
    shapes : (B, 2) int64
        Each image's map size (H, W).
    params : dict
        The EGM settings the regions were found with (queries reuse them).

    Notes
    -----
    ``counts`` (B,), ``offsets`` (B + 1,), ``len(rs)`` (regions),
    ``rs.n_images``, ``rs.regions_of(m)`` (a slice of rows).

    Build one with :meth:`from_activations`; the constructor takes the
    fields as they are (it checks their lengths and the image order).

    Raises
    ------
    ValueError
        (constructor) descriptors not 2-D, fields of different lengths,
        image ids not sorted or out of range.

    See Also
    --------
    ObjectSaliency, RegionalDiffusionIndex, region_graph : what it feeds.
    describe : ``"fs.egm"`` sums these regional descriptors per image.

    Examples
    --------
    >>> import numpy as np, deepret
    >>> acts = [np.random.default_rng(i).random((8, 5, 6), dtype=np.float32) for i in range(3)]
    >>> rs = deepret.RegionSet.from_activations(acts)
    >>> rs.n_images, rs.channels, int(rs.counts.sum()) == len(rs)
    (3, 8, True)
    >>> rows = rs.regions_of(1)
    >>> bool((rs.image[rows] == 1).all())
    True
    """

    def __init__(self, descriptors, image, boxes, means, variances, weights, fallback, shapes, params):
        self.descriptors = descriptors
        self.image = np.asarray(image, np.int64)
        self.boxes = np.asarray(boxes, np.float64)
        self.means = np.asarray(means, np.float64)
        self.variances = np.asarray(variances, np.float64)
        self.weights = np.asarray(weights, np.float64)
        self.fallback = np.asarray(fallback, bool)
        self.shapes = np.asarray(shapes, np.int64).reshape(-1, 2)
        self.params = dict(params)
        k = len(self.image)
        if np.ndim(self.descriptors) != 2:
            raise ValueError(f"descriptors must be 2-D (regions, channels), got shape {np.shape(self.descriptors)}")
        for field in _FIELDS[:7]:
            if len(getattr(self, field)) != k:
                raise ValueError(f"{field} must have {k} rows like image, got {len(getattr(self, field))}")
        if k and (np.diff(self.image) < 0).any():
            raise ValueError("image must be sorted: regions are grouped by image in image order")
        if k and (self.image[0] < 0 or self.image[-1] >= len(self.shapes)):
            raise ValueError(f"image ids must lie in [0, {len(self.shapes)})")
        self.counts = np.bincount(self.image, minlength=len(self.shapes)).astype(np.int64)

    # ------------------------------------------------------------ building
    @classmethod
    def from_activations(cls, acts, *, sigma=2.5, lam=0.0, tau=0.55, threshold=0.4, power=5.0, max_iter=20,
                         box_scale=2.0, dtype=np.float32, batch_size=256, progress=False, num_threads=None):
        """Regions and regional descriptors of every image.

        Parameters
        ----------
        acts : (C, H, W), (B, C, H, W) array_like, or a sequence of them
            Non-negative finite activations; images may differ in H and W
            (they are processed in batches of one size).
        sigma, lam, tau, threshold, power, max_iter, box_scale : keyword-only
            EGM settings on the FS maps (the paper's FS settings by default;
            see :func:`deepret.egm`).
        dtype : float32 or float16, keyword-only
            Storage of the descriptors (computed in float32 or float64).
        batch_size : int, keyword-only
            At most this many images per engine call (batches also stop at
            32 MB of float32 activations, 16 maps of 1280 x 16 x 24).
        progress : bool, keyword-only
            A tqdm bar over the batches.

        Returns
        -------
        RegionSet

        Raises
        ------
        ValueError
            Empty sequence or maps, wrong ndim, NaN/Inf or negative values,
            channel counts that differ, every image all-zero.
        TypeError
            Non-real activations, a dtype other than float32/float16.

        Examples
        --------
        >>> import numpy as np, deepret
        >>> acts = [np.random.default_rng(i).random((8, 5, 6), dtype=np.float32) for i in range(3)]
        >>> rs = deepret.RegionSet.from_activations(acts)
        >>> rs.n_images, rs.descriptors.shape[1]
        (3, 8)
        """
        params = dict(zip(_PARAMS, _check_params(sigma, lam, tau, threshold, power, max_iter, box_scale)))
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float16):
            raise TypeError(f"dtype must be float32 or float16, got {dtype}")
        from ._arrays import positive_int

        batch_size = positive_int("batch_size", batch_size)
        batches, n_images, c, shapes, _ = image_batches(acts, "acts", batch_size)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="regions", unit="batch")
        parts = []
        for ids, batch in batches:
            regions, fallback, desc = extract(batch, params, num_threads)
            parts.append((np.repeat(ids, regions.counts), regions, fallback, desc))
        image = np.concatenate([p[0] for p in parts])
        order = np.argsort(image, kind="stable")
        cat = lambda f: np.concatenate([f(p) for p in parts])[order]  # noqa: E731
        descriptors = cat(lambda p: p[3])
        if not descriptors.any():
            raise ValueError("acts are all zero: no image has a non-zero regional descriptor")
        return cls(descriptors.astype(dtype, copy=False), image[order], cat(lambda p: p[1].boxes),
                   cat(lambda p: p[1].means), cat(lambda p: p[1].variances), cat(lambda p: p[1].weights),
                   cat(lambda p: p[2]), shapes, params)

    # ------------------------------------------------------------- access
    @property
    def offsets(self) -> np.ndarray:
        """(B + 1,) int64: image m's rows are ``offsets[m]:offsets[m + 1]``."""
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    @property
    def n_images(self) -> int:
        """The number of images B."""
        return len(self.shapes)

    @property
    def channels(self) -> int:
        """The descriptors' dimension C."""
        return int(self.descriptors.shape[1])

    def __len__(self) -> int:
        """The number of regions K."""
        return len(self.image)

    def regions_of(self, m: int) -> slice:
        """The rows of image m's regions."""
        if isinstance(m, bool) or not isinstance(m, numbers.Integral):
            raise TypeError(f"m must be an int, got {type(m).__name__}")
        if not 0 <= m < self.n_images:
            raise IndexError(f"image {m} out of range for {self.n_images} images")
        lo, hi = self.offsets[m:m + 2]
        return slice(int(lo), int(hi))

    def float32_descriptors(self) -> np.ndarray:
        """The descriptors as a C-contiguous float32 array (a copy for float16 storage)."""
        return np.ascontiguousarray(self.descriptors, dtype=np.float32)

    def __repr__(self) -> str:
        return (f"RegionSet({self.n_images} images, {len(self)} regions, {self.channels} channels, "
                f"{self.descriptors.dtype})")

    # -------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write to a .npz file (plain arrays, no pickles).

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np, deepret
        >>> acts = [np.random.default_rng(i).random((4, 5, 5), dtype=np.float32) for i in range(2)]
        >>> rs = deepret.RegionSet.from_activations(acts)
        >>> path = os.path.join(tempfile.mkdtemp(), "regions.npz")
        >>> rs.save(path)
        >>> back = deepret.RegionSet.load(path)
        >>> bool((back.descriptors == rs.descriptors).all()), back.params == rs.params
        (True, True)
        """
        arrays = {f: getattr(self, f) for f in _FIELDS}
        arrays.update({f"param_{k}": np.asarray(v) for k, v in self.params.items()})
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RegionSet:
        """Read a file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            missing = [f for f in _FIELDS if f not in z.files]
            if missing:
                raise ValueError(f"{path} is not a RegionSet file: missing {missing}")
            fields = {f: z[f] for f in _FIELDS}
            params = {k[6:]: z[k].item() for k in z.files if k.startswith("param_")}
        return cls(**fields, params=params)


def extract(batch, params, num_threads):
    """FS maps -> EGM regions (with whole-map fallbacks) -> regional
    descriptors, for one (b, C, H, W) batch: (Regions, fallback mask, (K, C))."""
    _backend.threads_arg(num_threads)
    # batch comes from image_batches, which checked it while loading it
    fs = feature_saliency(batch, num_threads=num_threads, check_input=False)
    regions = egm(fs, **params, num_threads=num_threads)
    regions, fallback = with_fallback(regions, batch.shape[2], batch.shape[3])
    desc = regional_max_pool(batch, regions.boxes, counts=regions.counts, num_threads=num_threads,
                             check_input=False)
    return regions, fallback, desc


def is_single(acts) -> bool:
    """Whether acts is one (C, H, W) map (not a batch or a list of maps)."""
    return not isinstance(acts, (list, tuple)) and np.ndim(acts) == 3


def count_images(acts) -> int:
    """How many images a map, a batch or a list of maps and batches holds."""
    if isinstance(acts, (list, tuple)):
        return sum(1 if np.ndim(a) == 3 else len(a) for a in acts)
    return 1 if np.ndim(acts) == 3 else len(acts)


def shape_like(acts, maps):
    """Per-image results in the form the input had: one, or stacked."""
    if is_single(acts):
        return maps[0]
    if isinstance(acts, (list, tuple)):
        return maps
    return np.stack(maps)
