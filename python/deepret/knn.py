"""Exact k-nearest-neighbour search (faiss IndexFlatIP / IndexFlatL2 semantics)
on the CPU engine: blocked similarity fused with a per-query top-k, so memory
stays O(database + block + nq·k)."""

from __future__ import annotations

import numpy as np

from . import _arrays, _backend
from ._typing import Array, ArrayInput

__all__ = ["knn"]

_METRICS = {"ip": 0, "l2": 1}
# Queries per engine call when a progress bar is shown: enough work per call
# to keep every thread busy, few enough calls to move the bar smoothly.
_PROGRESS_STEPS = 100
_MIN_BATCH = 4096


def _as_matrix(name: str, x, xp):
    x = xp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {x.shape}")
    low, high = float(x.min()), float(x.max())  # NaN propagates; no temporary array
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{name} contains NaN or infinity")
    return xp.ascontiguousarray(x), max(-low, high)


def _check_magnitude(largest: float, d: int, dtype, metric: str) -> None:
    """ValueError where the scores could overflow the dtype: every product
    is at most largest^2, an inner product d * largest^2, and the squared
    distance |q|^2 + |x|^2 - 2 <q, x> at most 4 d largest^2 (a conservative
    bound, checked once; below it no intermediate is Inf or NaN, so every
    heap fills and no score or id comes back uninitialised)."""
    factor = 4.0 if metric == "l2" else 1.0
    limit = float(np.finfo(dtype).max)
    if largest * largest * (factor * d) > limit:
        scale = (limit / (factor * d)) ** 0.5
        raise ValueError(
            f"x and queries hold values up to {largest:.3g} in magnitude: with d = {d} the "
            f"{'squared distances' if metric == 'l2' else 'inner products'} could overflow "
            f"{np.dtype(dtype).name} (|values| must stay below {scale:.3g}); rescale the "
            "descriptors" + (" or use float64" if dtype == np.float32 else ""))


def _array_module(x, queries):
    """numpy, or cupy when the inputs are CuPy arrays (CUDA engine checked)."""
    return _backend.array_module("knn", x, queries)


def _check_k(k, candidates: int, exclude_self: bool) -> int:
    k = _arrays.positive_int("k", k)
    if k > candidates:
        what = "n - 1 (exclude_self)" if exclude_self else "n"
        raise ValueError(f"k = {k} is larger than {what} = {candidates}")
    return k


def _database_class(dtype):
    return _backend._core.KnnDatabaseF32 if dtype == np.float32 else _backend._core.KnnDatabaseF64


@_arrays.torch_interop
def knn(x: ArrayInput, queries: ArrayInput | None = None, k: int = 10, metric: str = "ip",
        exclude_self: bool = False, *, progress: bool = False,
        num_threads: int | None = None) -> tuple[Array, Array]:
    """The k nearest database rows of each query, exactly.

    Parameters
    ----------
    x : (n, d) float32 or float64 array
        The database. Finite values only, and small enough that no score
        can overflow the dtype: ValueError unless max(abs(x))^2 * d (and
        4 max(abs(x))^2 * d for "l2", over x and the queries) is finite, e.g.
        abs(values) < 8.1e17 for 128-D float32 "l2" (a conservative bound).
    queries : (nq, d) array of x's dtype, optional
        Default: x itself (all-vs-all).
    k : int
        Neighbours per query, 1 <= k <= n (n - 1 with exclude_self).
    metric : {"ip", "l2"}
        "ip": largest inner products first (cosine for L2-normalized rows);
        "l2": smallest squared Euclidean distances first, computed as
        ‖q‖^2 + ‖x‖^2 - 2 <q, x> and clipped at 0, as faiss does.
    exclude_self : bool
        With queries=None, drop each point's own row from its neighbours.
    progress : bool, keyword-only
        Show a tqdm progress bar over the queries.
    num_threads : int, keyword-only
        Threads; default: ``OMP_NUM_THREADS``, else every CPU this process may use.

    CuPy inputs run on the CUDA engine (k up to 1024) and return CuPy arrays.

    Returns
    -------
    scores : (nq, k) array of x's dtype
        Inner products (descending) or squared distances (ascending).
    indices : (nq, k) int64 array
        Database rows, best first; ties broken by the smaller index.

    Raises
    ------
    ValueError
        x or queries not 2-D, empty, holding NaN or Inf, or large enough to
        overflow the scores; d that differ; k out of range; an unknown
        metric; exclude_self with queries given.
    TypeError
        A dtype other than float32/float64, queries of another dtype than
        x, k not an int, CuPy and numpy inputs mixed.

    See Also
    --------
    faiss.IndexFlatIP, faiss.IndexFlatL2 : the same results (``index.add(x);
        index.search(queries, k)``), without building an index.
    sklearn.neighbors.NearestNeighbors : brute-force search, also exact.
    knn_graph : the neighbours of every point as a sparse affinity graph.

    Examples
    --------
    >>> import numpy as np, deepret
    >>> x = np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0]], np.float32)
    >>> scores, ids = deepret.knn(x, x[:1], k=2)              # largest inner products
    >>> ids, scores
    (array([[0, 1]]), array([[1. , 0.8]], dtype=float32))
    >>> scores, ids = deepret.knn(x, k=1, exclude_self=True)  # every row's nearest other row
    >>> ids.ravel()
    array([1, 0, 1, 2])
    >>> deepret.knn(x, x[3:], k=2, metric="l2")[0]            # squared distances, ascending
    array([[0., 2.]], dtype=float32)
    """
    threads = _backend.threads_arg(num_threads)
    if metric not in _METRICS:
        raise ValueError(f"metric must be 'ip' or 'l2', got {metric!r}")
    xp = _array_module(x, queries)
    x, largest = _as_matrix("x", x, xp)
    if queries is None:
        queries = x
    else:
        if exclude_self:
            raise ValueError("exclude_self needs queries=None (the queries are then x's own rows)")
        queries, largest_query = _as_matrix("queries", queries, xp)
        largest = max(largest, largest_query)
        if queries.dtype != x.dtype:
            raise TypeError(f"queries must have x's dtype {x.dtype}, got {queries.dtype}")
        if queries.shape[1] != x.shape[1]:
            raise ValueError(f"queries must have d = {x.shape[1]} columns like x, got shape {queries.shape}")
    _check_magnitude(largest, x.shape[1], x.dtype, metric)
    k = _check_k(k, x.shape[0] - (1 if exclude_self else 0), exclude_self)
    if xp is not np:
        return _knn_cuda(x, queries, k, metric, exclude_self)

    database = _database_class(x.dtype)(x, threads)
    nq = queries.shape[0]
    scores = np.empty((nq, k), dtype=x.dtype)
    indices = np.empty((nq, k), dtype=np.int64)
    with _ProgressBar(progress) as bar:
        if queries is x:
            # All-vs-all: every score tile serves its rows and its columns.
            database.search_self(x, k, _METRICS[metric], exclude_self, scores, indices, threads,
                                 bar.update_fraction if progress else None)
        else:
            batch = max(_MIN_BATCH, -(-nq // _PROGRESS_STEPS)) if progress else nq
            for start in range(0, nq, batch):
                stop = min(start + batch, nq)
                database.search(queries[start:stop], k, _METRICS[metric], -1,
                                scores[start:stop], indices[start:stop], threads)
                bar.update_fraction(stop, nq)
    return scores, indices


def _knn_cuda(x, queries, k, metric, exclude_self):
    """The CUDA engine on CuPy arrays; returns CuPy (scores, indices)."""
    with _backend.cuda_call("knn", x) as call:
        if k > call.core.KNN_MAX_K:
            raise ValueError(f"k = {k} is above the GPU top-k's limit of {call.core.KNN_MAX_K}")
        cp = _arrays.cupy_module()
        nq = queries.shape[0]
        scores = cp.empty((nq, k), dtype=x.dtype)
        indices = cp.empty((nq, k), dtype=cp.int64)
        call.core.knn_search(x, queries, scores, indices, metric=_METRICS[metric],
                             self_offset=0 if exclude_self else -1, allocate=call.allocate,
                             stream=call.stream)
    return scores, indices


class _ProgressBar:
    """A tqdm bar in percent when enabled, else nothing."""

    def __init__(self, enabled: bool):
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=100, desc="knn", unit="%")

    def update_fraction(self, done, total):
        if self._bar is not None:
            self._bar.update(round(100 * done / total) - self._bar.n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.close()
