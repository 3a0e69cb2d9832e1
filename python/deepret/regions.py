"""EGM region detection on saliency maps (expanding Gaussian mixtures,
Avrithis & Kalantidis 2012, on 2-D maps as in Siméoni et al. 2018).

``egm(s)`` fits a mixture of axis-aligned Gaussians to a non-negative map and
returns the surviving components as a :class:`Regions` object. The numerics
(docs/egm.md, made precise):

- pixel ``(y, x)`` is a sample at coordinates ``(y, x)``: pixel centres at
  integers, ``y`` down the rows, ``x`` along the columns;
- the map is scaled to max 1, values below ``threshold`` are zeroed and the
  rest raised to ``power``; the pixels left > 0 are the samples, weighted by
  their value;
- one component per sample to start (variance ``sigma**2``); each iteration
  runs the E-step (responsibilities with the component's variance plus
  ``sigma**2``), the saliency-weighted M-step with the expansion ``lam``
  (``lam=0`` is plain EM) and variances floored by ``sigma**2``, and the purge
  ``tau`` by descending weight; it stops when the count is unchanged for two
  iterations or after ``max_iter``;
- components come out by descending weight (weights sum to 1 per map);
  ``boxes`` are ``mean -/+ box_scale * sqrt(variance)`` clipped to
  ``[0, h - 1] x [0, w - 1]``.

Every map runs in a fixed order whatever the thread count: results are
deterministic, and a map gives the same result alone or in a batch.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _arrays, _backend
from ._typing import ArrayInput

__all__ = ["Regions", "egm"]

_PROGRESS_CHUNK = 1024  # maps per engine call when progress=True


class Regions:
    """Regions of one map or of a batch of maps.

    Attributes
    ----------
    means : (K, 2) float64, (y, x) in pixel coordinates.
    variances : (K, 2) float64, the diagonal variances (y, x).
    weights : (K,) float64, mixing weights (they sum to 1 per map).
    boxes : (K, 4) float64, (y0, x0, y1, x1), clipped to the map.
    counts : (B,) int64, how many of the K rows belong to each map (the rows
        of all maps are concatenated in map order; B = 1 for a single map).

    ``len(r)`` is the number of maps, ``r[i]`` map i's own Regions and
    ``r.offsets`` the (B + 1,) row offsets. Arrays are numpy arrays for numpy
    input, CuPy arrays for CuPy input and torch tensors on the input's device
    for torch input (``counts`` is always numpy); a Regions of torch tensors
    is accepted wherever a Regions is.

    See Also
    --------
    egm : returns it.
    regional_max_pool : accepts it as ``boxes``.
    deepret.plot.regions : draws it.

    Examples
    --------
    >>> import numpy as np, deepret
    >>> maps = np.zeros((2, 9, 9)); maps[0, 2, 2] = maps[1, 6, 5] = 1.0
    >>> r = deepret.egm(maps, sigma=1.0)
    >>> r, len(r), r.counts.tolist(), r.offsets.tolist()
    (Regions(2 maps, 2 regions), 2, [1, 1], [0, 1, 2])
    >>> r[1].means
    array([[6., 5.]])
    >>> r[1].boxes                                   # mean -/+ 2 std, clipped
    array([[4., 3., 8., 7.]])
    """

    __slots__ = ("means", "variances", "weights", "boxes", "counts", "batched")

    def __init__(self, means, variances, weights, boxes, counts, batched=True):
        self.means = means
        self.variances = variances
        self.weights = weights
        self.boxes = boxes
        self.counts = np.asarray(counts, dtype=np.int64)
        self.batched = bool(batched)

    @property
    def offsets(self) -> np.ndarray:
        """(B + 1,) int64: map i's rows are ``offsets[i]:offsets[i + 1]``."""
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    def __len__(self) -> int:
        """The number of maps B."""
        return len(self.counts)

    def __getitem__(self, i: int) -> "Regions":
        """Map i's own Regions (an int; negative counts from the end)."""
        if not isinstance(i, numbers.Integral):
            raise TypeError(f"Regions index must be an int, got {type(i).__name__}")
        n = len(self.counts)
        if not -n <= i < n:
            raise IndexError(f"map index {i} out of range for {n} maps")
        i = int(i) % n
        lo, hi = (int(v) for v in self.offsets[i:i + 2])
        return Regions(self.means[lo:hi], self.variances[lo:hi], self.weights[lo:hi],
                       self.boxes[lo:hi], self.counts[i:i + 1], batched=False)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def _map_arrays(self, convert) -> "Regions":
        """The same Regions with convert applied to its four arrays (counts
        stays numpy): how torch tensors come in and go out (_arrays.torch_interop)."""
        return Regions(convert(self.means), convert(self.variances), convert(self.weights),
                       convert(self.boxes), self.counts, batched=self.batched)

    def __repr__(self) -> str:
        if not self.batched:
            return f"Regions({int(self.counts.sum())} regions)"
        return f"Regions({len(self.counts)} maps, {int(self.counts.sum())} regions)"


def _positive(name, value, *, allow_zero=False, upper=None, upper_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    low_ok = value >= 0 if allow_zero else value > 0
    high_ok = upper is None or (value < upper if upper_open else value <= upper)
    if not (np.isfinite(value) and low_ok and high_ok):
        bound = ">= 0" if allow_zero else "> 0"
        if upper is not None:
            bound += f" and {'<' if upper_open else '<='} {upper}"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return value


def _check_params(sigma: float, lam: float, tau: float, threshold: float, power: float, max_iter: int,
                  box_scale: float) -> tuple[float, float, float, float, float, int, float]:
    sigma = _positive("sigma", sigma)
    lam = _positive("lam", lam, allow_zero=True, upper=1.0, upper_open=True)
    tau = _positive("tau", tau, upper=1.0)
    if tau < 0.5:
        raise ValueError(f"tau must be in [0.5, 1], got {tau!r}")
    threshold = _positive("threshold", threshold, allow_zero=True, upper=1.0)
    power = _positive("power", power)
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral):
        raise TypeError(f"max_iter must be an int, got {type(max_iter).__name__}")
    if not 1 <= max_iter < 2**31:
        raise ValueError(f"max_iter must be in [1, 2**31), got {max_iter}")
    box_scale = _positive("box_scale", box_scale, allow_zero=True)
    return sigma, lam, tau, threshold, power, int(max_iter), box_scale


def _as_maps(s, xp):
    """(B, H, W) float64 C-contiguous, and whether the input was one map."""
    if xp is np:
        s = np.asarray(s)
    if s.dtype.kind not in "biuf":
        raise TypeError(f"s must be a real (bool, int or float) array, got dtype {s.dtype}")
    if s.ndim not in (2, 3):
        raise ValueError(f"s must be 2-D (h, w) or 3-D (b, h, w), got shape {tuple(s.shape)}")
    single = s.ndim == 2
    s = xp.ascontiguousarray(s[None] if single else s, dtype=np.float64)
    return s, single


@_arrays.torch_interop
def egm(s: ArrayInput, sigma: float = 2.5, lam: float = 0.0, tau: float = 0.55, threshold: float = 0.4,
        power: float = 5.0, max_iter: int = 20, box_scale: float = 2.0, *, num_threads: int | None = None,
        progress: bool = False) -> Regions:
    """Salient regions of a non-negative map by expanding Gaussian mixtures.

    Parameters
    ----------
    s : (H, W) or (B, H, W) array_like, non-negative and finite
        A saliency map or a batch of maps (numpy: CPU engine; CuPy: CUDA
        engine, one thread block per map). Any real dtype; computed in float64.
    sigma : float
        Spread of a sample in pixels (> 0); also the floor of the standard
        deviations.
    lam : float in [0, 1)
        Expansion: 0 is plain EM; larger values grow components toward their
        outer samples.
    tau : float in [0.5, 1]
        Purge threshold: a component survives if its own overlap is at least
        ``tau`` of its overlap with the components kept before it.
    threshold : float in [0, 1]
        Values below ``threshold * max(s)`` are ignored.
    power : float > 0
        The kept values are raised to this power (after scaling to max 1).
    max_iter : int >= 1
    box_scale : float >= 0
        Boxes are ``mean -/+ box_scale * std``.
    num_threads : int, optional, keyword-only
        CPU threads (maps of a batch run in parallel); default: ``OMP_NUM_THREADS``, else every CPU this process may use.
    progress : bool, keyword-only
        Show a tqdm bar over chunks of 1024 maps (CPU).

    Returns
    -------
    Regions
        ``means`` (K, 2) as (y, x), ``variances`` (K, 2), ``weights`` (K,),
        ``boxes`` (K, 4) as (y0, x0, y1, x1), ``counts`` (B,); ``regions[i]``
        is map i's. An all-zero map has no regions.

    Raises
    ------
    TypeError
        ``s`` not real; a parameter of the wrong type.
    ValueError
        ``s`` not 2-D or 3-D, holding NaN, Inf or negative values; a parameter
        out of range.

    See Also
    --------
    sklearn.mixture.GaussianMixture : a Gaussian mixture fitted by EM, with
        the number of components chosen by the caller (e.g. by BIC); EGM
        finds it by itself, on a weighted map, two orders of magnitude faster.
    feature_saliency : the maps EGM runs on (FS.EGM).
    regional_max_pool : one descriptor per region.
    Regions

    Notes
    -----
    The full specification is the documentation's "EGM" page (docs/egm.md).

    Examples
    --------
    >>> import numpy as np, deepret
    >>> yy, xx = np.mgrid[0:12, 0:16]
    >>> blob = lambda y, x: np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 4)
    >>> s = blob(3, 4) + 0.9 * blob(8, 11)               # two blobs, the second fainter
    >>> r = deepret.egm(s, sigma=1.5)
    >>> len(r.weights)
    2
    >>> r.means.round(1)
    array([[ 3.,  4.],
           [ 8., 11.]])
    >>> r.weights.round(2)                             # by descending weight
    array([0.63, 0.37])
    """
    params = _check_params(sigma, lam, tau, threshold, power, max_iter, box_scale)
    threads = _backend.threads_arg(num_threads)
    if _arrays.device_of("egm", s) == "cuda":
        return _egm_cuda(s, params)
    maps, single = _as_maps(s, np)
    core = _backend._core
    if not progress or len(maps) <= _PROGRESS_CHUNK:
        parts = [core.egm(maps, *params, threads)]
    else:
        from tqdm.auto import tqdm

        parts = [core.egm(maps[i:i + _PROGRESS_CHUNK], *params, threads)
                 for i in tqdm(range(0, len(maps), _PROGRESS_CHUNK), desc="egm", unit="chunk")]
    fields = [np.concatenate([p[f] for p in parts]) if len(parts) > 1 else parts[0][f] for f in range(5)]
    return Regions(*fields, batched=not single)  # type: ignore[misc]  # fields: the 5 arrays


def _egm_cuda(s, params):
    _backend.cuda_core("egm")  # a clear error on a build without CUDA
    cp = _arrays.cupy_module()
    maps, single = _as_maps(s, cp)
    b, h, w = maps.shape
    rows = b * h * w
    means = cp.empty((rows, 2), dtype=cp.float64)
    variances = cp.empty((rows, 2), dtype=cp.float64)
    weights = cp.empty(rows, dtype=cp.float64)
    boxes = cp.empty((rows, 4), dtype=cp.float64)
    counts = cp.zeros(b, dtype=cp.int64)
    if rows:
        sigma, lam, tau, threshold, power, max_iter, box_scale = params
        with _backend.cuda_call("egm", maps) as call:
            call.core.egm(maps, means, variances, weights, boxes, counts, sigma=sigma, lam=lam, tau=tau,
                          threshold=threshold, power=power, max_iter=max_iter, box_scale=box_scale,
                          allocate=call.allocate, stream=call.stream)
    host_counts = counts.get()
    if (host_counts < 0).any():
        bad = int(np.flatnonzero(host_counts < 0)[0])
        raise ValueError(f"s must be finite and non-negative; map {bad} is not")
    # Rows [i*h*w, i*h*w + counts[i]) of the padded outputs belong to map i.
    keep = (cp.arange(h * w)[None, :] < counts[:, None]).ravel() if rows else cp.zeros(0, dtype=bool)
    return Regions(means[keep], variances[keep], weights[keep], boxes[keep], host_counts,
                   batched=not single)
