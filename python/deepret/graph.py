"""Sparse kNN graphs: the symmetric affinity matrix that diffusion runs on.

``graph_from_knn`` turns the k nearest neighbours of every point (as
``deepret.knn(x, k=k, exclude_self=True)`` or faiss returns them) into a
``scipy.sparse.csr_array`` in one native pass; ``knn_graph`` searches the
neighbours first. numpy inputs run on the CPU engine; CuPy inputs on the CUDA
engine and give a ``cupyx.scipy.sparse.csr_matrix``. This module only
validates and dispatches. The definitions: docs/algorithms/knn_graph.md.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _arrays, _backend
from ._typing import ArrayInput, Sparse

__all__ = ["graph_from_knn", "knn_graph"]

_METRICS = ("ip", "l2")
_INT32_MAX = 2**31 - 1


def _check_gamma(gamma) -> float:
    if isinstance(gamma, (bool, np.bool_)) or not isinstance(gamma, numbers.Real):
        raise TypeError(f"gamma must be a real number, got {type(gamma).__name__}")
    value = float(gamma)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")
    return value


def _check_metric(metric) -> str:
    if not isinstance(metric, str) or metric not in _METRICS:
        raise ValueError(f"metric must be 'ip' or 'l2', got {metric!r}")
    return metric


def _check_arrays(scores, indices, xp):
    """Shapes and dtypes (both backends); returns contiguous arrays the engine takes."""
    for name, array in (("scores", scores), ("indices", indices)):
        if array.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n, k), got shape {tuple(array.shape)}")
    if scores.shape != indices.shape:
        raise ValueError(
            f"scores and indices must have the same shape, got {tuple(scores.shape)} and {tuple(indices.shape)}"
        )
    if scores.dtype not in (np.float32, np.float64):
        raise TypeError(f"scores must be float32 or float64, got {scores.dtype}")
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array, got {indices.dtype}")
    n = scores.shape[0]
    if n > _INT32_MAX:
        raise ValueError(f"graph_from_knn supports n < 2**31 points, got {n}")
    if indices.dtype.kind == "u" and indices.size and int(indices.max()) >= n:
        # Unsigned indices cannot hold -1; anything >= n is out of range.
        raise ValueError(f"indices must lie in [-1, n) = [-1, {n}), got {int(indices.max())}")
    if xp is np:
        keep = indices.dtype in (np.int32, np.int64)
        index_dtype = indices.dtype if keep else np.int64
    else:
        index_dtype = np.int64
    scores = xp.ascontiguousarray(scores)
    indices = xp.ascontiguousarray(indices, dtype=index_dtype)
    return scores, indices


def _overflow_safe(scores, gamma, metric, normalize, xp):
    """(scores, metric) that the engines can raise to gamma without Inf.

    The affinity max(0, s)^gamma of the largest similarity s_max (the score
    itself, or 1 - d / 2 for "l2") must fit in the dtype with room for a
    degree (a sum of at most 2k of them). Where it does not, a normalized
    graph is computed from s / s_max instead: D^-1/2 A D^-1/2 does not
    change when A is scaled by a constant, so W is the same up to rounding
    and has no NaN. Unnormalized affinities that overflow raise ValueError.
    """
    if scores.size == 0:
        return scores, metric
    top = 1.0 - 0.5 * float(scores.min()) if metric == "l2" else float(scores.max())
    if not _needs_rescale(top, gamma, scores.shape[1], scores.dtype, normalize):
        return scores, metric
    return _rescale_for_overflow(scores, metric, top, xp), "ip"


def _needs_rescale(top, gamma, k, dtype, normalize) -> bool:
    """Whether similarities up to top need the rescaling of _overflow_safe
    (ValueError where they would and normalize is off)."""
    if not (top > 1.0 and np.isfinite(top)):
        return False  # every affinity is at most 1 (or NaN/Inf: the engine reports it)
    log_limit = np.log(float(np.finfo(dtype).max)) - np.log(2.0 * k + 1.0)
    if gamma * np.log(top) <= log_limit:
        return False
    if not normalize:
        raise ValueError(
            f"the affinities max(0, s)^gamma overflow {np.dtype(dtype)} (largest similarity {top:.3g}, "
            f"gamma {gamma:g}); rescale the scores, or use normalize=True (the normalized graph "
            "is computed overflow-free)")
    return True


def _rescale_for_overflow(scores, metric, top, xp):
    """Similarities s / top as "ip" scores (see _overflow_safe)."""
    similarities = (1.0 - 0.5 * scores) if metric == "l2" else scores
    return xp.ascontiguousarray(similarities / scores.dtype.type(top))


def _csr_cpu(data, indices, indptr, n):
    import scipy.sparse

    # scipy keeps int32 index arrays when both are int32 (else it re-checks
    # and converts them): int32 whenever nnz allows, else int64 for both.
    if indptr[-1] <= _INT32_MAX:
        indptr = indptr.astype(np.int32)
    else:
        indices = indices.astype(np.int64)
    graph = scipy.sparse.csr_array((data, indices, indptr), shape=(n, n), copy=False)
    graph.has_canonical_format = True  # sorted, no duplicates: scipy need not check
    return graph


def _graph_cuda(scores, indices, gamma, mutual, l2, normalize):
    _backend.cuda_core("graph_from_knn")  # a clear error on a build without CUDA
    cp = _arrays.cupy_module()
    import cupyx.scipy.sparse

    n, k = scores.shape
    if indices.size:
        if bool(((indices < -1) | (indices >= n)).any()):
            bad = int(indices[(indices < -1) | (indices >= n)][0])
            raise ValueError(f"indices must lie in [-1, n) = [-1, {n}), got {bad}")
        if not bool(cp.isfinite(scores).all()):
            raise ValueError("scores must be finite (no NaN or inf)")
    capacity = max(n * k * (1 if mutual else 2), 1)
    indptr = cp.empty(n + 1, dtype=cp.int64)
    out_indices = cp.empty(capacity, dtype=cp.int32)
    out_data = cp.empty(capacity, dtype=scores.dtype)
    with _backend.cuda_call("graph_from_knn", scores) as call:
        nnz = call.core.graph_from_knn(scores, indices, indptr, out_indices, out_data, gamma=gamma,
                                       mutual=mutual, l2=l2, normalize=normalize,
                                       allocate=call.allocate, stream=call.stream)
    graph = cupyx.scipy.sparse.csr_matrix(
        (out_data[:nnz].copy(), out_indices[:nnz].copy(), indptr.astype(cp.int32) if nnz <= _INT32_MAX
         else indptr), shape=(n, n),
    )
    graph.has_canonical_format = True
    return graph


@_arrays.torch_interop
def graph_from_knn(scores: ArrayInput, indices: ArrayInput, gamma: float = 3.0, mutual: bool = True,
                   metric: str = "ip", normalize: bool = True, *, num_threads: int | None = None) -> Sparse:
    """Symmetric sparse affinity graph from precomputed k nearest neighbours.

    Parameters
    ----------
    scores : (n, k) float32 or float64 array
        Row i: the scores of the k neighbours of point i, as returned by
        ``deepret.knn(x, k=k, exclude_self=True)`` or faiss: inner products
        for ``metric="ip"``, squared Euclidean distances for ``metric="l2"``.
        Must be finite.
    indices : (n, k) integer array
        The neighbours' row numbers, in [0, n); -1 (faiss's "no neighbour")
        entries are ignored, as is j == i (no self loops). A column listed
        twice in a row keeps its largest affinity. The order within a row
        does not matter.
    gamma : float, > 0
        Affinity a_ij = max(0, s_ij) ** gamma.
    mutual : bool
        True: keep (i, j) only if j lists i and i lists j, with value
        min(a_ij, a_ji). False: every pair listed either way, value
        max(a_ij, a_ji).
    metric : {"ip", "l2"}
        "ip": s_ij is the score itself. "l2": s_ij = 1 - d_ij / 2 for the
        squared distance d_ij, which is the cosine for L2-normalized
        descriptors (so both metrics give the same graph for unit vectors).
    normalize : bool
        Return W = D^-1/2 A D^-1/2 with D the row sums of A; a point without
        neighbours keeps an empty row (no NaN, no division by zero). Where
        s^gamma would overflow the dtype (float32 scores of 1e20, gamma 3),
        W is computed from the scores divided by the largest one, which
        leaves it unchanged up to rounding: never Inf or NaN entries.
        Without normalize such affinities raise ValueError.
    num_threads : int, optional, keyword-only
        Threads for the CPU engine; default: ``OMP_NUM_THREADS``, else every CPU this process may use.

    Returns
    -------
    scipy.sparse.csr_array of shape (n, n) and the dtype of ``scores``
    (``cupyx.scipy.sparse.csr_matrix`` for CuPy inputs): symmetric bit for
    bit, sorted column indices, no self loops, no stored zeros (affinities
    that are 0, e.g. negative scores, are dropped).

    Raises
    ------
    ValueError
        Shapes not (n, k) or not equal, indices outside [-1, n), non-finite
        scores, gamma <= 0, unknown metric, unnormalized affinities that
        overflow the dtype.
    TypeError
        scores not float32/float64, indices not integers, gamma not a number.

    See Also
    --------
    scipy.sparse.csr_array : the type returned; the reference diffusion codes
        build the same matrix with scipy.sparse (``A.minimum(A.T)``, then
        ``D^-1/2 A D^-1/2``), three times slower.
    knn_graph : search the neighbours and build the graph in one call.
    diffuse : what the graph is for.

    Notes
    -----
    The formulas are in the documentation's "kNN graph" page
    (docs/algorithms/knn_graph.md).

    Examples
    --------
    >>> import numpy as np, deepret
    >>> scores = np.array([[0.9, 0.5], [0.9, 0.4], [0.5, 0.4]])
    >>> indices = np.array([[1, 2], [0, 2], [0, 1]])
    >>> W = deepret.graph_from_knn(scores, indices, gamma=1.0)
    >>> W.toarray().round(3)
    array([[0.   , 0.667, 0.445],
           [0.667, 0.   , 0.37 ],
           [0.445, 0.37 , 0.   ]])
    >>> deepret.graph_from_knn(scores, indices, gamma=1.0, normalize=False).toarray()
    array([[0. , 0.9, 0.5],
           [0.9, 0. , 0.4],
           [0.5, 0.4, 0. ]])
    """
    gamma = _check_gamma(gamma)
    metric = _check_metric(metric)
    threads = _backend.threads_arg(num_threads)
    device = _arrays.device_of("graph_from_knn", scores, indices)
    if device == "cuda":
        _backend.cuda_core("graph_from_knn")  # a clear error on a build without CUDA
        cp = _arrays.cupy_module()
        scores, indices = _check_arrays(scores, indices, cp)
        scores, metric = _overflow_safe(scores, gamma, metric, bool(normalize), cp)
        return _graph_cuda(scores, indices, gamma, bool(mutual), metric == "l2", bool(normalize))
    scores, indices = _check_arrays(np.asarray(scores), np.asarray(indices), np)
    scores, metric = _overflow_safe(scores, gamma, metric, bool(normalize), np)
    data, cols, indptr = _backend._core.graph_from_knn(
        scores, indices, gamma, bool(mutual), metric == "l2", bool(normalize), threads
    )
    return _csr_cpu(data, cols, indptr, scores.shape[0])


@_arrays.torch_interop
def knn_graph(x: ArrayInput, k: int = 50, gamma: float = 3.0, mutual: bool = True, metric: str = "ip",
              normalize: bool = True, *, progress: bool = False, k_includes_self: bool = False,
              num_threads: int | None = None) -> Sparse:
    """Sparse kNN affinity graph of the rows of ``x``: ``deepret.knn`` (exact,
    each point's k nearest other points) followed by :func:`graph_from_knn`.

    Parameters
    ----------
    x : (n, d) float32 or float64 array
        Descriptors; L2-normalize them first for cosine affinities.
    k : int
        Neighbours per point, not counting the point itself (at most n - 1).
        The reference codes (Iscen et al.'s MATLAB code, fyang93/diffusion)
        count the point itself among its k neighbours: their k = 50 is
        ``k=49`` here, or ``k=50, k_includes_self=True``.
    gamma, mutual, metric, normalize
        As in :func:`graph_from_knn`.
    progress : bool, keyword-only
        Show a tqdm bar during the search.
    k_includes_self : bool, keyword-only
        The reference convention: search the k nearest rows *including* the
        point itself and drop the self pair (so k - 1 other neighbours; when
        the point has an exact duplicate, the duplicate may rank first and
        the point itself is then the one dropped, as in the reference codes).
    num_threads : int, optional, keyword-only
        Threads for the CPU engine; default: ``OMP_NUM_THREADS``, else every CPU this process may use.

    Returns
    -------
    scipy.sparse.csr_array (n, n) in the dtype of ``x``
    (``cupyx.scipy.sparse.csr_matrix`` for CuPy input).

    Raises
    ------
    ValueError, TypeError
        As :func:`deepret.knn` (x, k) and :func:`graph_from_knn` (gamma, metric).

    See Also
    --------
    faiss.IndexFlatIP : with scipy.sparse, the usual way to build this graph.
    sklearn.neighbors.kneighbors_graph : a kNN graph of distances, not
        normalized affinities.
    graph_from_knn, knn, DiffusionIndex

    Examples
    --------
    >>> import numpy as np, deepret
    >>> x = np.random.default_rng(0).standard_normal((100, 16)).astype(np.float32)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> W = deepret.knn_graph(x, k=10)
    >>> W.shape, W.dtype, bool(abs(W - W.T).max() == 0)
    ((100, 100), dtype('float32'), True)
    >>> int(np.diff(W.indptr).max()) <= 10              # mutual: at most k per row
    True
    """
    gamma = _check_gamma(gamma)
    metric = _check_metric(metric)
    from .knn import knn

    scores, indices = knn(x, k=k, metric=metric, exclude_self=not k_includes_self, progress=progress,
                          num_threads=num_threads)
    return graph_from_knn(scores, indices, gamma=gamma, mutual=mutual, metric=metric, normalize=normalize,
                          num_threads=num_threads)
