"""Diffusion ranking (Iscen et al., CVPR 2017): with W the normalized kNN
graph, the ranking of a query is the solution f of (I - alpha W) f = y, where
y marks the query's nearest database items. Solved by batched conjugate
gradient in the CPU engine: one sparse x dense product per iteration for all
queries, each column stopping on its own.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from . import _arrays, _backend
from .graph import _check_gamma, graph_from_knn
from .knn import knn

__all__ = ["ConvergenceWarning", "CgInfo", "diffuse", "katz", "locality_order", "query_vector",
           "DiffusionIndex"]


class ConvergenceWarning(RuntimeWarning):
    """diffuse stopped at maxiter before some column reached tol."""


class CgInfo(NamedTuple):
    """Per-column outcome of diffuse: iterations done and the true final
    relative residual |y - (I - alpha W) f| / |y| of the returned f (0 for a
    zero column; NaN where the solve overflowed), computed once after the
    iterations with one more product. CG decides when to stop on its
    recursive residual, as scipy does; the two part where rounding
    accumulates (float32, alpha close to 1), and the warning and these
    values follow the true one."""

    iterations: np.ndarray  # (m,) int64
    residuals: np.ndarray   # (m,) float64


def _check_alpha(alpha) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return alpha


def _as_csr(W):
    """W as a scipy CSR matrix the engine may index by: float32/float64 data,
    one index dtype for indptr and indices, and its structure checked
    (_arrays.check_csr: column indices in [0, n), indptr non-decreasing and
    consistent with the stored entries). W itself is never modified."""
    if not sp.issparse(W):
        raise TypeError(f"W must be a scipy.sparse matrix or array, got {type(W).__name__}")
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"W must be square (n, n), got shape {W.shape}")
    if W.format != "csr":
        # tocsr() of another format re-indexes W through scipy's own (bounds
        # checked) conversion; check the input's coordinates first.
        if W.format in ("coo", "csc", "bsr"):
            _check_other_format(W)
        W = W.tocsr()
    indptr, indices, data = W.indptr, W.indices, W.data
    _arrays.check_csr("W", W.shape, indptr, indices, data)
    if data.dtype not in (np.float32, np.float64):
        if data.dtype.kind not in "biuf":
            raise TypeError(f"W must be real, got dtype {data.dtype}")
        data = data.astype(np.float64)
    wide = np.int64 if (indptr.dtype.itemsize > 4 or indices.dtype.itemsize > 4
                        or indptr.dtype.kind == "u" or indices.dtype.kind == "u") else np.int32
    if indptr.dtype != wide or indices.dtype != wide or data is not W.data:
        W = sp.csr_array((data, indices.astype(wide, copy=False), indptr.astype(wide, copy=False)),
                         shape=W.shape, copy=False)
    return W


def _check_other_format(W):
    """The coordinates of a COO/CSC/BSR W, before scipy's tocsr() reads them."""
    if W.format == "coo":
        for axis, coords in enumerate(W.coords if hasattr(W, "coords") else (W.row, W.col)):
            if coords.size and (int(coords.min()) < 0 or int(coords.max()) >= W.shape[axis]):
                raise ValueError(f"W is not a valid COO structure: a coordinate lies outside "
                                 f"[0, {W.shape[axis]})")
    elif W.format == "csc":
        _arrays.check_csr("W (CSC)", W.shape[::-1], W.indptr, W.indices, W.data)
    else:
        W.check_format(full_check=True)


# From this many columns on, diffuse(order="auto") looks for a locality order
# (reverse Cuthill-McKee, about 20 ms at n = 10^5, nnz = 4.6 * 10^6) and uses it
# when it makes the graph local: then the gathers of the batched product stay
# in cache. On a graph without locality (e.g. the kNN graph of random
# Gaussian points) relabelling and the row permutations only cost time.
_REORDER_FROM_COLUMNS = 8
# "Local": at least half of the nonzeros join rows fewer than 4096 rows apart
# (4096 rows of a 16-column float32 panel are 256 KB, a quarter of the L2).
# Measured at n = 10^5: 1.00 on the manifold data set of bench_diffusion.py,
# 0.09 on its Gaussian one (0.08 in a random order). The order is abandoned
# early once its breadth-first front passes 16384 rows (a 1 MB panel band,
# the whole L2): on the Gaussian graph within a few levels, instead of
# ordering all of it (20 ms) for nothing.
_NEAR_WINDOW = 4096
_NEAR_ENOUGH = 0.5
_MAX_FRONT = 16384


def locality_order(W):
    """A row order that keeps graph neighbours close in memory (reverse
    Cuthill-McKee of W's pattern, assumed symmetric; each connected component
    from its lowest-degree node), for diffuse(order=...)."""
    W = _as_csr(W)
    return _backend._core.locality_order(W.shape[0], W.indptr, W.indices)


def _auto_order(W):
    """locality_order(W) where it makes W local, else None (see _NEAR_ENOUGH)."""
    order = _backend._core.locality_order(W.shape[0], W.indptr, W.indices, _MAX_FRONT)
    if order is None:
        return None
    near = _backend._core.near_fraction(W.shape[0], W.indptr, W.indices, order, _NEAR_WINDOW)
    return order if near >= _NEAR_ENOUGH else None


def diffuse(W, y, alpha=0.99, tol=1e-6, maxiter=20, return_info=False, *, order="auto",
            num_threads=None):
    """Solve (I - alpha W) f = y for one or many right-hand sides at once.

    Parameters
    ----------
    W : (n, n) scipy.sparse matrix or array
        Symmetric (not checked), e.g. from knn_graph; float32 or float64.
    y : (n,) or (n, m) array or scipy.sparse matrix
        Right-hand sides (one query per column).
    alpha : float in (0, 1)
    tol : float
        Each column stops before an iteration once |r| < tol * |y|, as
        scipy.sparse.linalg.cg(rtol=tol, atol=0) does; the iterates are
        scipy's (x0 = 0, no preconditioner).
    maxiter : int
        At most this many iterations per column. A ConvergenceWarning says
        when some column stopped there above tol (with alpha = 0.99, 20
        iterations usually do not reach 1e-6: the warning is honest, not an
        error).
    return_info : bool
        Also return a CgInfo with each column's iterations and final relative
        residual.
    order : "auto", None or (n,) permutation, keyword-only
        Solve on the graph relabelled in this row order (the solution is the
        same, to rounding): a locality order makes the batched product's
        memory accesses local. "auto" computes ``locality_order(W)`` when y
        has 8 or more columns and uses it if it brings at least half of the
        graph's edges within 4096 rows; pass the order yourself to reuse it.
    num_threads : int, keyword-only

    A cupyx.scipy.sparse W with a CuPy y runs on the CUDA engine and returns
    CuPy arrays (info too).

    Returns
    -------
    f : array of y's shape, dtype float32 when W and y are float32, else float64
    info : CgInfo, with return_info
    """
    threads = _backend.threads_arg(num_threads)
    alpha = _check_alpha(alpha)
    tol = float(tol)
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    maxiter = _arrays.positive_int("maxiter", maxiter)
    if _is_cupyx_sparse(W) or _arrays.is_cupy_array(y):
        f, info = _diffuse_cuda(W, y, alpha, tol, maxiter)
        _warn_if_stalled(info.residuals.get(), tol, maxiter)
        return (f, info) if return_info else f
    W = _as_csr(W)
    n = W.shape[0]
    y_dense = y.toarray() if sp.issparse(y) else np.asarray(y)
    if y_dense.ndim not in (1, 2) or y_dense.shape[0] != n:
        raise ValueError(f"y must have shape ({n},) or ({n}, m) to match W, got {y_dense.shape}")
    if y_dense.dtype.kind not in "biuf":
        raise TypeError(f"y must be real, got dtype {y_dense.dtype}")
    dtype = np.result_type(W.dtype, y_dense.dtype if y_dense.dtype.kind == "f" else np.float32)
    dtype = np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)
    if not np.isfinite(W.data).all():
        raise ValueError("W contains NaN or infinity")
    columns = np.ascontiguousarray(y_dense.reshape(n, -1), dtype=dtype)
    if not np.isfinite(columns).all():
        raise ValueError("y contains NaN or infinity")
    data = W.data if W.dtype == dtype else W.data.astype(dtype)
    if isinstance(order, str):
        if order != "auto":
            raise ValueError(f"order must be 'auto', None or a permutation, got {order!r}")
        order = _auto_order(W) if columns.shape[1] >= _REORDER_FROM_COLUMNS else None
    elif order is not None:
        order = _check_order(order, n, W.indices.dtype)
    f = np.empty_like(columns)
    iterations, residuals = _backend._core.batched_cg(
        n, W.indptr, W.indices, data, alpha, columns, f, tol, maxiter, threads, order)
    _warn_if_stalled(residuals, tol, maxiter)
    f = f.reshape(y_dense.shape)
    return (f, CgInfo(iterations, residuals)) if return_info else f


def _check_order(order, n, index_dtype):
    """A user's row order as W's index dtype (the engine checks that it is a
    permutation; values outside [0, n) must not wrap into range on the way)."""
    order = np.asarray(order)
    if order.shape != (n,) or order.dtype.kind not in "iu":
        raise ValueError(f"order must be a permutation of the {n} rows, got {order.shape} {order.dtype}")
    if n and (int(order.min()) < 0 or int(order.max()) >= n):
        raise ValueError(f"order must be a permutation of the {n} rows, got values in "
                         f"[{int(order.min())}, {int(order.max())}]")
    return np.ascontiguousarray(order, dtype=index_dtype)


def _warn_if_stalled(residuals, tol, maxiter):
    """ConvergenceWarning for every column whose true relative residual is
    not below tol: stopped at maxiter, stopped early on a recursive residual
    that rounding made too optimistic, or NaN (the solve overflowed)."""
    stalled = ~(residuals < tol)  # NaN counts as not converged
    if stalled.any():
        failed = np.isnan(residuals)
        if failed.any():
            detail = (f"{int(failed.sum())} with a NaN residual: the solve overflowed the dtype "
                      "(y or f too large), f holds NaN or Inf there")
        else:
            detail = f"largest relative residual {residuals.max():.2e}"
        warnings.warn(
            f"diffuse: {int(stalled.sum())} of {len(residuals)} columns ended above tol={tol:g} "
            f"after at most maxiter={maxiter} iterations ({detail})",
            ConvergenceWarning, stacklevel=3)


def _is_cupyx_sparse(W) -> bool:
    return type(W).__module__.startswith("cupyx.scipy.sparse")


def _diffuse_cuda(W, y, alpha, tol, maxiter):
    """The CUDA engine: W a cupyx.scipy.sparse matrix, y a CuPy array (both on the GPU)."""
    core = _backend.cuda_core("diffuse")
    if not (_is_cupyx_sparse(W) and _arrays.is_cupy_array(y)):
        raise TypeError("diffuse on the GPU needs W as a cupyx.scipy.sparse matrix and y as a CuPy "
                        "array (no silent host-device copies)")
    cp = _arrays.cupy_module()
    W = W.tocsr()
    n = W.shape[0]
    if W.shape != (n, n):
        raise ValueError(f"W must be square (n, n), got shape {W.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},) or ({n}, m) to match W, got {y.shape}")
    dtype = np.float32 if (W.dtype == np.float32 and y.dtype == np.float32) else np.float64
    data = W.data.astype(dtype, copy=False)
    indices = W.indices
    indptr = W.indptr.astype(indices.dtype, copy=False)
    _arrays.check_csr("W", W.shape, indptr, indices, data, xp=cp)
    columns = cp.ascontiguousarray(y.reshape(n, -1), dtype=dtype)
    if not bool(cp.isfinite(columns).all()) or not bool(cp.isfinite(data).all()):
        raise ValueError("W and y must be finite")
    m = columns.shape[1]
    f = cp.empty_like(columns)
    iterations = cp.empty(m, dtype=cp.int64)
    residuals = cp.empty(m, dtype=cp.float64)
    core.batched_cg(dtype == np.float64, indices.dtype.itemsize == 8, n, indptr.data.ptr,
                    indices.data.ptr, data.data.ptr, alpha, columns.data.ptr, m, f.data.ptr, tol,
                    maxiter, iterations.data.ptr, residuals.data.ptr,
                    cp.cuda.get_current_stream().ptr)
    return f.reshape(y.shape), CgInfo(iterations, residuals)


def katz(W, alpha=0.99, tol=1e-6, maxiter=20, *, num_threads=None):
    """Katz-like centrality g with L_alpha g = 1, L_alpha = (I - alpha W) / (1 - alpha),
    i.e. (I - alpha W) g = (1 - alpha) 1; returns g of shape (n,)."""
    W = _as_csr(W)
    alpha = _check_alpha(alpha)
    ones = np.full(W.shape[0], 1.0 - alpha, dtype=W.dtype)
    return diffuse(W, ones, alpha, tol, maxiter, num_threads=num_threads)


def query_vector(x, queries, k=10, gamma=3.0, *, num_threads=None):
    """Sparse right-hand sides for unseen queries: column j holds, at the k
    database rows nearest to query j (inner product), the weight
    max(0, s)^gamma. Returns a scipy.sparse.csc_array of shape (n, nq)."""
    gamma = _check_gamma(gamma)
    queries = np.asarray(queries)
    if queries.ndim == 1:
        queries = queries[None, :]
    scores, ids = knn(x, queries, k=k, metric="ip", num_threads=num_threads)
    with np.errstate(over="ignore"):
        weights = np.maximum(scores, 0) ** gamma
    if not np.isfinite(weights).all():
        raise ValueError(f"query weights max(0, s)^gamma overflow {weights.dtype} (largest score "
                         f"{float(scores.max()):.3g}, gamma {gamma:g}); rescale the descriptors")
    n, nq = np.asarray(x).shape[0], len(queries)
    return sp.csc_array((weights.ravel(), ids.ravel(), np.arange(0, nq * k + 1, k)), shape=(n, nq))


def _top(f, topk):
    """Best-first (scores, ids) of each column of f (n, m): (m, topk) each,
    ties by the smaller id (what a stable descending argsort gives)."""
    n, m = f.shape
    if topk * 8 >= n:
        order = np.argsort(-f, axis=0, kind="stable")[:topk].T
    else:  # select first: sorting all n rows of every column costs far more than topk
        kth = -np.partition(-f, topk - 1, axis=0)[topk - 1]  # (m,) the topk-th best score
        order = np.empty((m, topk), dtype=np.int64)
        for j in range(m):
            candidates = np.flatnonzero(f[:, j] >= kth[j])  # ascending ids, ties at kth included
            best = np.argsort(-f[candidates, j], kind="stable")[:topk]
            order[j] = candidates[best]
    return np.take_along_axis(f.T, order, axis=1), order


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

    Raises
    ------
    ValueError
        alpha outside (0, 1), truncate smaller than query_k, an unknown
        truncation.

    See Also
    --------
    diffuse, knn_graph, SpectralIndex

    Examples
    --------
    >>> index = deepret.DiffusionIndex(x, k=50, k_includes_self=True, truncate=1000,
    ...                                truncation="restrict")
    >>> scores, ids = index.search(queries, topk=100)
    """

    def __init__(self, x, k=50, gamma=3.0, alpha=0.99, mutual=True, truncate=None,
                 truncation="renormalize", *, query_k=10, k_includes_self=False, tol=1e-6,
                 maxiter=20, progress=False, num_threads=None):
        self._configure(x, k, gamma, alpha, mutual, truncate, truncation, query_k, k_includes_self,
                        tol, maxiter, num_threads)
        scores, ids = knn(self.x, k=k, exclude_self=not self.k_includes_self, progress=progress,
                          num_threads=num_threads)
        W = graph_from_knn(scores, ids, gamma=gamma, mutual=mutual, num_threads=num_threads)
        # The unnormalized affinities, for renormalized truncated subgraphs.
        A = (graph_from_knn(scores, ids, gamma=gamma, mutual=mutual, normalize=False,
                            num_threads=num_threads)
             if self._needs_affinities() else None)
        self._set_graphs(W, A)

    def _configure(self, x, k, gamma, alpha, mutual, truncate, truncation, query_k,
                   k_includes_self, tol, maxiter, num_threads):
        """Parameters checked and kept (every constructor's first step)."""
        self.x = np.ascontiguousarray(x)
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
        self.last_info = None

    def _needs_affinities(self) -> bool:
        return bool(self.truncate) and self.truncation == "renormalize"

    def _set_graphs(self, W, A):
        """The offline graphs: W (normalized) and A (affinities, or None)."""
        self.W = W
        # Built here, hence valid: search() does not read its structure again
        # (its index arrays become read-only; see _arrays.trust_csr).
        _arrays.trust_csr(self.W)
        self._order = _auto_order(self.W)
        self._A = A

    def search(self, queries, topk=100):
        """(scores, ids), each (nq, topk), best first: the diffusion scores f
        and the database rows they rank. ``last_info`` keeps the CgInfo."""
        topk = _arrays.positive_int("topk", topk)
        queries = np.asarray(queries)
        if queries.ndim == 1:
            queries = queries[None, :]
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
        return _top(f, topk)

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
        order = np.argsort(-f, axis=1, kind="stable")[:, :topk]
        return np.take_along_axis(f, order, axis=1), np.take_along_axis(nearest, order, axis=1)
