"""Diffusion search over a fixed database (DiffusionIndex) and the sparse
right-hand sides of unseen queries (query_vector): the graph built once, each
search one batched CG solve (deepret.diffusion.diffuse) and a top-k read-out.
Reached as deepret.DiffusionIndex, deepret.query_vector (and through
deepret.diffusion)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import _arrays, _backend
from .diffusion import CgInfo, ConvergenceWarning, _auto_order, _check_alpha, diffuse
from .graph import _check_gamma, graph_from_knn
from .knn import knn
from ._typing import Array, ArrayInput, Sparse
from .whitening import index_whitening, whiten_as


@_arrays.torch_interop
def query_vector(x: ArrayInput, queries: ArrayInput, k: int = 10, gamma: float = 3.0, *,
                 num_threads: int | None = None) -> Sparse:
    """Sparse right-hand sides of diffusion for unseen queries.

    Column j holds, at the k database rows nearest to query j (inner
    product), the weight max(0, s)^gamma; every other entry is 0.

    Parameters
    ----------
    x : (n, d) float32 or float64 array
        Database descriptors, L2-normalized rows.
    queries : (nq, d) or (d,) array of x's dtype
        Query descriptors, L2-normalized.
    k : int
        Database neighbours marked per query (1 <= k <= n).
    gamma : float > 0
        Weight exponent, as the graph's affinities.
    num_threads : int, optional, keyword-only

    Returns
    -------
    scipy.sparse.csc_array of shape (n, nq), x's dtype

    Raises
    ------
    ValueError, TypeError
        As :func:`deepret.knn`; also weights that overflow the dtype.

    See Also
    --------
    diffuse : solves (I - alpha W) f = y for these columns.
    knn

    Examples
    --------
    >>> import numpy as np, deepret
    >>> x = np.array([[1, 0], [0.8, 0.6], [0, 1]], np.float32)
    >>> y = deepret.query_vector(x, np.array([1, 0], np.float32), k=2, gamma=3.0)
    >>> y.shape, y.toarray().ravel().round(3)
    ((3, 1), array([1.   , 0.512, 0.   ], dtype=float32))
    """
    gamma = _check_gamma(gamma)
    xp = _backend.array_module("query_vector", x, queries)
    on_gpu = xp is not np
    x, queries = xp.asarray(x), xp.asarray(queries)
    if queries.ndim == 1:
        queries = queries[None, :]
    scores, ids = knn(x, queries, k=k, metric="ip", num_threads=num_threads)
    with np.errstate(over="ignore"):
        weights = xp.maximum(scores, 0) ** gamma
    if not bool(xp.isfinite(weights).all()):
        raise ValueError(f"query weights max(0, s)^gamma overflow {weights.dtype} (largest score "
                         f"{float(scores.max()):.3g}, gamma {gamma:g}); rescale the descriptors")
    n, nq = x.shape[0], len(queries)
    parts = (weights.ravel(), ids.ravel(), xp.arange(0, nq * k + 1, k))
    if on_gpu:
        import cupyx.scipy.sparse

        # cupyx's sparse indices are int32 (n < 2^31 on the GPU, as knn checks).
        if nq * k >= 2**31:
            raise ValueError(f"query_vector on the GPU holds at most 2^31 - 1 entries, got nq * k = {nq * k}")
        data, rows, indptr = parts
        return cupyx.scipy.sparse.csc_matrix((data, rows.astype(xp.int32), indptr.astype(xp.int32)),
                                             shape=(n, nq))
    return sp.csc_array(parts, shape=(n, nq))


def _top(f, topk, num_threads=None):
    """Best-first (scores, ids) of each column of f (n, m): (m, topk) each,
    ties by the smaller id (what a stable descending argsort gives), NaN
    last. On the CPU the engine keeps a heap per column in one pass over f
    (_core.top_k); CuPy sorts."""
    if _arrays.is_cupy_array(f):  # CuPy's argsort is stable (a radix sort)
        cp = _arrays.cupy_module()
        order = cp.argsort(-f, axis=0)[:topk].T
        return cp.take_along_axis(f.T, order, axis=1), order
    f = np.ascontiguousarray(f, dtype=np.float32 if f.dtype == np.float32 else np.float64)
    return _backend._core.top_k(f, topk, 0, _backend.threads_arg(num_threads))


class DiffusionIndex:
    """Diffusion search over a fixed database of descriptors.

    The graph is built once: ``W = knn_graph(x, k, gamma, mutual)``. Each
    ``search`` turns the queries into right-hand sides (their ``query_k``
    nearest database items, weight s^gamma), solves all of them in one
    batched CG, and reads out the top items. Queries need not be known in
    advance.

    Parameters
    ----------
    x : (n, d) float32 or float64 array
        Database descriptors, L2-normalized rows (cosine similarity).
    k : int
        Neighbours per point in the kNN graph. By default ``k`` counts the
        *other* points (self excluded); the reference codes (Iscen et al.'s
        MATLAB code, fyang93/diffusion) count the point itself among its k,
        so their k = 50 is ``k=49`` here, or ``k=50, k_includes_self=True``.
    gamma, mutual : the graph (see knn_graph); alpha : diffusion (see diffuse).
    truncate : int, optional
        Solve each query on the subgraph S of its top-``truncate`` database
        items (by cosine), as large-scale diffusion does; the ranking then
        covers those items only.
    truncation : {"renormalize", "restrict"}
        How the subgraph is formed. ``"renormalize"`` (default; the MATLAB
        code of Iscen et al.): the affinities A_S are normalized again,
        W_S = D_S^-1/2 A_S D_S^-1/2. ``"restrict"`` (fyang93/diffusion): the
        rows and columns S of the full (I - alpha W), not renormalized.
        Either way all queries are solved in one call of the engine, in
        parallel.
    query_k : int, keyword-only
        Database neighbours marked in each query's y (default 10).
    k_includes_self : bool, keyword-only
        Count each point among its own ``k`` neighbours, as the reference
        codes do (the graph then has k - 1 neighbours per point; a duplicate
        of the point may take its place, exactly as there).
    tol, maxiter : CG stopping, as in diffuse.
    whitening : PCAWhitening, optional, keyword-only
        Whiten the database and every query with it before anything else
        (an unfitted one is fitted on x first). ``.whitening`` keeps it.

    Raises
    ------
    ValueError
        alpha outside (0, 1), truncate smaller than query_k, an unknown
        truncation.

    See Also
    --------
    diffuse, knn_graph, SpectralIndex

    See Also
    --------
    faiss.IndexFlatIP : a cosine-similarity index of the same interface
        (``search(queries, k) -> (scores, ids)``), without diffusion.
    diffuse, knn_graph, query_vector, SpectralIndex

    Examples
    --------
    The bundled Oxford5k descriptors, ranked by diffusion and evaluated:

    >>> import numpy as np, deepret
    >>> from deepret import datasets, evaluate
    >>> data = datasets.load_oxford5k()
    >>> x = data.descriptors / np.linalg.norm(data.descriptors, axis=1, keepdims=True)
    >>> index = deepret.DiffusionIndex(x, k=30, alpha=0.9)
    >>> scores, ids = index.search(x[data.query_indices], topk=len(x))
    >>> ids.shape
    (55, 5063)
    >>> round(evaluate.compute_map(ids, data.gnd, layout="query_by_db").map, 3)
    0.452

    The reference codes' setting (their k = 50 counts the point itself),
    truncated to each query's 1000 nearest items:

    >>> index = deepret.DiffusionIndex(x, k=50, k_includes_self=True, truncate=1000,
    ...                                truncation="restrict")
    >>> scores, ids = index.search(x[data.query_indices], topk=100)
    >>> ids.shape
    (55, 100)
    """

    # The unnormalized affinities, kept only for renormalized truncation (else None).
    _A: Any

    def __init__(self, x, k=50, gamma=3.0, alpha=0.99, mutual=True, truncate=None,
                 truncation="renormalize", *, query_k=10, k_includes_self=False, tol=1e-6,
                 maxiter=20, whitening=None, progress=False, num_threads=None):
        self._configure(x, k, gamma, alpha, mutual, truncate, truncation, query_k, k_includes_self,
                        tol, maxiter, num_threads, whitening=whitening)
        scores, ids = knn(self.x, k=k, exclude_self=not self.k_includes_self, progress=progress,
                          num_threads=num_threads)
        W = graph_from_knn(scores, ids, gamma=gamma, mutual=mutual, num_threads=num_threads)
        # The unnormalized affinities, for renormalized truncated subgraphs.
        A = (graph_from_knn(scores, ids, gamma=gamma, mutual=mutual, normalize=False,
                            num_threads=num_threads)
             if self._needs_affinities() else None)
        self._set_graphs(W, A)

    def _configure(self, x, k, gamma, alpha, mutual, truncate, truncation, query_k,
                   k_includes_self, tol, maxiter, num_threads, *, whitening=None):
        """Parameters checked and kept (every constructor's first step)."""
        # CuPy x: the graph, the queries' right-hand sides, the CG and the
        # ranking all on x's GPU (the same code, the CUDA engine below it).
        self._xp = _arrays.cupy_module() if _arrays.is_cupy_array(x) else np
        self.whitening, x = index_whitening(whitening, self._xp.asarray(x))
        self.x = self._xp.ascontiguousarray(x)
        self.k, self.gamma, self.mutual = k, float(gamma), mutual
        self.k_includes_self = bool(k_includes_self)
        self.alpha = _check_alpha(alpha)
        self.query_k = _arrays.positive_int("query_k", query_k)
        self.tol, self.maxiter = float(tol), _arrays.positive_int("maxiter", maxiter)
        self.num_threads = num_threads
        self.truncate = None if truncate is None else _arrays.positive_int("truncate", truncate)
        if self.truncate is not None and self.truncate < self.query_k:
            raise ValueError(f"truncate ({self.truncate}) must be at least query_k ({self.query_k})")
        if truncation not in ("renormalize", "restrict"):
            raise ValueError(f"truncation must be 'renormalize' or 'restrict', got {truncation!r}")
        self.truncation = truncation
        if self.truncate is not None and self._xp is not np:
            raise ValueError("DiffusionIndex(truncate=...) runs on the CPU engine only (no CUDA truncated "
                             "solve yet); pass numpy x, or truncate=None on the GPU")
        self.last_info = None

    def _needs_affinities(self) -> bool:
        return bool(self.truncate) and self.truncation == "renormalize"

    def _set_graphs(self, W, A):
        """The offline graphs: W (normalized) and A (affinities, or None)."""
        self.W = W
        if self._xp is np:
            # Built here, hence valid: search() does not read its structure again
            # (its index arrays become read-only; see _arrays.trust_csr).
            _arrays.trust_csr(self.W)
            self._order = _auto_order(self.W)
        else:
            self._order = None  # the CUDA CG solves in the given row order
        self._A = A

    def search(self, queries: ArrayInput, topk: int = 100) -> tuple[Array, Array]:
        """The topk database rows for each query, by diffusion score.

        Parameters
        ----------
        queries : (nq, d) or (d,) array of x's dtype
            L2-normalized query descriptors; they need not be in the database.
        topk : int
            Rows returned per query, at most n (at most ``truncate`` when set).

        Returns
        -------
        scores : (nq, topk) array
            Diffusion scores f, descending.
        ids : (nq, topk) int64 array
            Database rows, best first (ties by the smaller id).

        ``last_info`` keeps the :class:`CgInfo` of the solve (no
        ConvergenceWarning is raised here: read it there).

        Raises
        ------
        ValueError
            topk out of range; queries of the wrong d (see :func:`deepret.knn`).

        Examples
        --------
        >>> import numpy as np, deepret
        >>> x = np.eye(4, dtype=np.float32)[[0, 0, 1, 1, 2, 3]] + 0.1
        >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
        >>> index = deepret.DiffusionIndex(x, k=2, alpha=0.9, query_k=1)
        >>> scores, ids = index.search(x[0], topk=2)
        >>> sorted(ids[0].tolist())
        [0, 1]
        """
        topk = _arrays.positive_int("topk", topk)
        # Queries on x's device (TypeError for a mix: no silent host-device copy).
        _arrays.device_of("DiffusionIndex.search", self.x, queries)
        queries = self._xp.asarray(queries)
        if queries.ndim == 1:
            queries = queries[None, :]
        if self.whitening is not None:
            queries = whiten_as(self.whitening, queries, self.x.dtype)
        if self.truncate is not None:
            return self._search_truncated(queries, topk)
        if topk > self.x.shape[0]:
            raise ValueError(f"topk ({topk}) is larger than the database ({self.x.shape[0]})")
        y = query_vector(self.x, queries, self.query_k, self.gamma, num_threads=self.num_threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            f, self.last_info = diffuse(self.W, y, self.alpha, self.tol, self.maxiter,
                                        return_info=True, order=self._order,
                                        num_threads=self.num_threads)
        return _top(f, topk, self.num_threads)

    def _search_truncated(self, queries, topk):
        T = min(self.truncate, self.x.shape[0])
        if topk > T:
            raise ValueError(f"topk ({topk}) must be at most truncate ({T})")
        sims, nearest = knn(self.x, queries, k=T, num_threads=self.num_threads)
        G = self._A if self.truncation == "renormalize" else self.W
        dtype = G.dtype
        y = np.zeros((len(queries), T), dtype=dtype)
        y[:, : self.query_k] = np.maximum(sims[:, : self.query_k], 0) ** self.gamma
        f = np.empty_like(y)
        iterations, residuals = _backend._core.truncated_cg(
            G.shape[0], G.indptr, G.indices, G.data, np.ascontiguousarray(nearest, dtype=np.int64),
            self.truncation == "renormalize", self.alpha, y, f, self.tol, self.maxiter,
            _backend.threads_arg(self.num_threads))
        self.last_info = CgInfo(iterations, residuals)
        scores, order = _backend._core.top_k(f, topk, 1, _backend.threads_arg(self.num_threads))
        return scores, np.take_along_axis(nearest, order, axis=1)
