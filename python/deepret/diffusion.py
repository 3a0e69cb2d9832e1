"""Diffusion ranking (Iscen et al., CVPR 2017): with W the normalized kNN
graph, the ranking of a query is the solution f of (I - alpha W) f = y, where
y marks the query's nearest database items. Solved by batched conjugate
gradient in the CPU engine: one sparse x dense product per iteration for all
queries, each column stopping on its own (docs/algorithms/cg.md; the
parameters: docs/guides/diffusion.md).
"""

from __future__ import annotations

import warnings
from typing import Literal, NamedTuple, overload

import numpy as np
import scipy.sparse as sp

from . import _arrays, _backend
from ._typing import Array, ArrayInput, Sparse

__all__ = ["ConvergenceWarning", "CgInfo", "diffuse", "katz", "locality_order", "query_vector",
           "DiffusionIndex"]


class ConvergenceWarning(RuntimeWarning):
    """An iterative solve stopped at maxiter before some column (diffuse,
    katz) or eigenpair (graph_eigs) reached tol.

    With alpha = 0.99, 20 CG iterations usually leave a relative residual
    above 1e-6: the ranking is still good, so this is a warning, not an
    error. ``return_info=True`` says how far each column got.

    See Also
    --------
    scipy.sparse.linalg.cg : returns ``info > 0`` in the same situation.
    CgInfo

    Examples
    --------
    >>> import warnings
    >>> import numpy as np, scipy.sparse as sp, deepret
    >>> W = sp.csr_array(np.array([[0, 1.0], [1.0, 0]]))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     f = deepret.diffuse(W, np.array([1.0, 0.0]), alpha=0.99, maxiter=1)
    >>> caught[0].category is deepret.ConvergenceWarning
    True
    """


class CgInfo(NamedTuple):
    """Per-column outcome of diffuse: iterations done and the true final
    relative residual ‖y - (I - alpha W) f‖ / ‖y‖ of the returned f (0 for a
    zero column; NaN where the solve overflowed), computed once after the
    iterations with one more product. CG decides when to stop on its
    recursive residual, as scipy does; the two part where rounding
    accumulates (float32, alpha close to 1), and the warning and these
    values follow the true one.

    Attributes
    ----------
    iterations : (m,) int64 array
        CG iterations done for each column.
    residuals : (m,) float64 array
        True final relative residual of each column.

    See Also
    --------
    diffuse : returns it with ``return_info=True``.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, deepret
    >>> W = sp.csr_array(np.array([[0, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0]]))
    >>> f, info = deepret.diffuse(W, np.eye(3), alpha=0.9, return_info=True)
    >>> info.iterations
    array([3, 2, 3])
    >>> bool((info.residuals < 1e-6).all())
    True
    """

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


def locality_order(W: Sparse) -> Array:
    """A row order that keeps graph neighbours close in memory, for
    ``diffuse(order=...)``.

    Reverse Cuthill-McKee of W's pattern (assumed symmetric), each connected
    component from its lowest-degree node. ``diffuse`` computes it by itself
    for 8 or more columns (``order="auto"``); computing it once and passing
    it saves that time when the same graph is solved many times.

    Parameters
    ----------
    W : (n, n) scipy.sparse matrix or array
        Symmetric pattern, e.g. from :func:`knn_graph`.

    Returns
    -------
    (n,) array of W's index dtype
        A permutation: new row i is old row ``order[i]``.

    Raises
    ------
    TypeError
        W not a scipy.sparse matrix.
    ValueError
        W not square or not a valid sparse structure.

    See Also
    --------
    scipy.sparse.csgraph.reverse_cuthill_mckee : the same kind of order
        (its start nodes and tie-breaking differ).
    diffuse

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, deepret
    >>> path = sp.csr_array(np.array([[0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 1], [0, 1, 1, 0]], float))
    >>> order = deepret.locality_order(path)         # the path 0-2-3-1, end to end
    >>> sorted(order.tolist()), order.tolist() in ([0, 2, 3, 1], [1, 3, 2, 0])
    ([0, 1, 2, 3], True)
    """
    W = _as_csr(W)
    return _backend._core.locality_order(W.shape[0], W.indptr, W.indices)


def _auto_order(W):
    """locality_order(W) where it makes W local, else None (see _NEAR_ENOUGH)."""
    order = _backend._core.locality_order(W.shape[0], W.indptr, W.indices, _MAX_FRONT)
    if order is None:
        return None
    near = _backend._core.near_fraction(W.shape[0], W.indptr, W.indices, order, _NEAR_WINDOW)
    return order if near >= _NEAR_ENOUGH else None


@overload
def diffuse(W: Sparse, y: ArrayInput | Sparse, alpha: float = ..., tol: float = ..., maxiter: int = ...,
            return_info: Literal[False] = ..., *, order: ArrayInput = ...,
            num_threads: int | None = ...) -> Array: ...
@overload
def diffuse(W: Sparse, y: ArrayInput | Sparse, alpha: float = ..., tol: float = ..., maxiter: int = ...,
            *, return_info: Literal[True], order: ArrayInput = ...,
            num_threads: int | None = ...) -> tuple[Array, CgInfo]: ...
@overload
def diffuse(W: Sparse, y: ArrayInput | Sparse, alpha: float, tol: float, maxiter: int,
            return_info: Literal[True], *, order: ArrayInput = ...,
            num_threads: int | None = ...) -> tuple[Array, CgInfo]: ...
@_arrays.torch_interop
def diffuse(W: Sparse, y: ArrayInput | Sparse, alpha: float = 0.99, tol: float = 1e-6, maxiter: int = 20,
            return_info: bool = False, *, order: ArrayInput = "auto",
            num_threads: int | None = None) -> Array | tuple[Array, CgInfo]:
    """Solve (I - alpha W) f = y for one or many right-hand sides at once.

    Parameters
    ----------
    W : (n, n) scipy.sparse matrix or array
        Symmetric (not checked), e.g. from knn_graph; float32 or float64.
    y : (n,) or (n, m) array or scipy.sparse matrix
        Right-hand sides (one query per column).
    alpha : float in (0, 1)
    tol : float
        Each column stops before an iteration once ‖r‖ < tol * ‖y‖, as
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

    Raises
    ------
    ValueError
        alpha outside (0, 1), tol <= 0, maxiter < 1, W not square or not a
        valid sparse structure, y of the wrong shape, NaN or Inf in W or y,
        an order that is not a permutation.
    TypeError
        W not sparse, complex or non-numeric W or y, maxiter not an int.

    Warns
    -----
    ConvergenceWarning
        When some column ends above tol.

    See Also
    --------
    scipy.sparse.linalg.cg : the same iterates, one right-hand side per call
        (``cg(I - alpha W, y[:, j], rtol=tol, atol=0, maxiter=maxiter)``).
    scipy.sparse.linalg.spsolve : the exact solution, far slower at scale.
    query_vector : right-hand sides for new queries.
    DiffusionIndex : graph, right-hand sides, solve and top-k in one object.

    Notes
    -----
    The algorithm and its stopping rule are in the documentation's
    "Batched conjugate gradient" page (docs/algorithms/cg.md).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, deepret
    >>> W = sp.csr_array(np.array([[0, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0]]))
    >>> f = deepret.diffuse(W, np.array([1.0, 0.0, 0.0]), alpha=0.9)
    >>> f.round(4)
    array([1.3403, 0.7563, 0.3403])
    >>> np.allclose((np.eye(3) - 0.9 * W.toarray()) @ f, [1, 0, 0], atol=1e-6)
    True
    >>> deepret.diffuse(W, np.eye(3, dtype=np.float32), alpha=0.9).dtype   # 3 queries at once
    dtype('float64')
    """
    threads = _backend.threads_arg(num_threads)
    alpha = _check_alpha(alpha)
    tol = float(tol)
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    maxiter = _arrays.positive_int("maxiter", maxiter)
    if _is_cupyx_sparse(W) or _is_cupyx_sparse(y) or _arrays.is_cupy_array(y):
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
            ConvergenceWarning, stacklevel=4)  # the caller of diffuse (through its torch_interop wrapper)


def _is_cupyx_sparse(W) -> bool:
    return type(W).__module__.startswith("cupyx.scipy.sparse")


def _diffuse_cuda(W, y, alpha, tol, maxiter):
    """The CUDA engine: W a cupyx.scipy.sparse matrix, y a CuPy array (both on the GPU)."""
    _backend.cuda_core("diffuse")  # a clear error on a build without CUDA
    if _is_cupyx_sparse(y):  # query_vector's right-hand sides on the GPU
        y = y.toarray()
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
    with _backend.cuda_call("diffuse", columns) as call:
        call.core.batched_cg(indptr, indices, data, columns, f, iterations, residuals, alpha=alpha,
                             tol=tol, maxiter=maxiter, allocate=call.allocate, stream=call.stream)
    return f.reshape(y.shape), CgInfo(iterations, residuals)


def katz(W: Sparse, alpha: float = 0.99, tol: float = 1e-6, maxiter: int = 20, *,
         num_threads: int | None = None) -> Array:
    """Katz-like centrality g of every node: L_alpha g = 1.

    L_alpha = (I - alpha W) / (1 - alpha), i.e. (I - alpha W) g = (1 - alpha) 1,
    solved by :func:`diffuse`. Nodes in dense, well-connected parts of the
    graph get large values; an isolated node gets 1 - alpha.

    Parameters
    ----------
    W : (n, n) scipy.sparse matrix or array
        Symmetric, e.g. from :func:`knn_graph`.
    alpha : float in (0, 1)
    tol, maxiter : CG stopping, as in :func:`diffuse`.
    num_threads : int, optional, keyword-only

    Returns
    -------
    g : (n,) array, W's dtype (float32 or float64)

    Raises
    ------
    ValueError, TypeError
        As :func:`diffuse`.

    See Also
    --------
    networkx.katz_centrality : the same family of centralities on a dense
        or dict graph.
    ObjectSaliency : uses g as the global centrality of regions.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, deepret
    >>> star = sp.csr_array(np.array([[0, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]], float) / 3 ** 0.5)
    >>> g = deepret.katz(star, alpha=0.5)
    >>> g.round(4)                          # the centre is the most central
    array([1.244 , 0.8591, 0.8591, 0.8591])
    """
    alpha = _check_alpha(alpha)
    if _is_cupyx_sparse(W):
        cp = _arrays.cupy_module()
        ones = cp.full(W.shape[0], 1.0 - alpha, dtype=W.dtype)
        return diffuse(W, ones, alpha, tol, maxiter, num_threads=num_threads)
    W = _as_csr(W)
    ones = np.full(W.shape[0], 1.0 - alpha, dtype=W.dtype)
    return diffuse(W, ones, alpha, tol, maxiter, num_threads=num_threads)


# The search over a fixed database lives in _diffusion_index.py; its names
# stay deepret.diffusion's (the other modules import them from here). Imported
# last, as it imports from this module: deepret/__init__ imports this module
# first, so the cycle always starts here.
from ._diffusion_index import DiffusionIndex, _top, query_vector  # noqa: E402,F401
