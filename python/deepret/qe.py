"""Query expansion over global descriptors: average query expansion (AQE,
Chum et al. 2007) and alpha-weighted query expansion (alpha-QE, Radenovic,
Tolias & Chum, TPAMI 2018).

Each query q is replaced by L2N(q + sum_i w_i x_{r_i}) over its n nearest
database descriptors x_{r_1..r_n} (inner product): w_i = 1 for AQE,
w_i = max(0, s_i)^alpha with s_i = <q, x_{r_i}> for alpha-QE (the query itself
has weight 1 = <q, q>^alpha for a unit q). alpha = 0 gives AQE. The neighbours
come from ``deepret.knn``; the weighted sums are one sparse x dense product
of the CPU engine (``_core.spmm``). Diffusion used as query expansion is
``DiffusionIndex`` itself.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _arrays, _backend
from .knn import knn
from ._typing import Array, ArrayInput

__all__ = ["alpha_qe", "average_qe"]


def _check_inputs(name, queries, x):
    xp = _backend.array_module(name, queries, x, engine=False)  # the kNN inside checks the engine
    queries, x = xp.asarray(queries), xp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (n, d), got shape {tuple(x.shape)}")
    single = queries.ndim == 1
    if single:
        queries = queries[None, :]
    if queries.ndim != 2 or queries.shape[1] != x.shape[1]:
        raise ValueError(f"queries must be (nq, {x.shape[1]}) or ({x.shape[1]},) to match x, "
                         f"got shape {tuple(queries.shape)}")
    for what, a in (("queries", queries), ("x", x)):
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"{what} must be float32 or float64, got {a.dtype}")
    dtype = np.result_type(queries.dtype, x.dtype)
    return xp, xp.ascontiguousarray(queries, dtype=dtype), xp.ascontiguousarray(x, dtype=dtype), single


def _expand(name, queries, x, n, alpha, num_threads):
    xp, q, db, single = _check_inputs(name, queries, x)
    n = _arrays.positive_int("n", n)
    if n > db.shape[0]:
        raise ValueError(f"n ({n}) is larger than the database ({db.shape[0]})")
    scores, ids = knn(db, q, k=n, metric="ip", num_threads=num_threads)
    # Weights relative to the largest of each query's (the query's own 1
    # included): max(0, s)^alpha overflows for |s| > 1 and a large alpha
    # (4^64 in float32), and the L2 normalization below makes the common scale
    # irrelevant; in log space, so that the scale itself never overflows.
    query_weight = xp.ones((q.shape[0], 1), dtype=np.float64)
    if alpha == 0:
        weights = xp.ones(scores.shape, dtype=np.float64)
    else:
        with np.errstate(divide="ignore"):
            log_s = xp.log(xp.maximum(scores.astype(np.float64), 0))
        log_ref = xp.maximum(log_s.max(axis=1, keepdims=True), 0)  # log of max(1, largest s)
        # alpha times a value <= 0: at worst -inf (weight 0), never inf - inf
        # (alpha * log s itself overflows for alpha near the float64 limit).
        with np.errstate(over="ignore"):
            weights = xp.exp(alpha * (log_s - log_ref))
            query_weight = xp.exp(-alpha * log_ref)
    if xp is np:
        nq = q.shape[0]
        indptr = np.arange(0, nq * n + 1, n, dtype=np.int64)
        out = np.empty_like(q)
        _backend._core.spmm(nq, db.shape[0], indptr, np.ascontiguousarray(ids, dtype=np.int64),
                            np.ascontiguousarray(weights, dtype=q.dtype), db, out,
                            _backend.threads_arg(num_threads))
    else:  # CuPy: the same weighted sum as a batched contraction on the GPU
        out = xp.einsum("qk,qkd->qd", weights.astype(q.dtype), db[ids])
    out += q * query_weight.astype(q.dtype)
    out /= xp.linalg.norm(out, axis=1, keepdims=True) + 1e-6
    return out[0] if single else out


def _check_alpha(alpha):
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a real number, got {type(alpha).__name__}")
    alpha = float(alpha)
    if not (np.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    return alpha


@_arrays.torch_interop
def average_qe(queries: ArrayInput, x: ArrayInput, n: int = 10, *, num_threads: int | None = None) -> Array:
    """Average query expansion: L2N(q + sum of its n nearest database rows).

    Parameters
    ----------
    queries : (nq, d) or (d,) float32 or float64 array
        Query descriptors, L2-normalized rows.
    x : (N, d) float32 or float64 array
        Database descriptors, L2-normalized rows.
    n : int
        Number of top-ranked database items averaged into each query
        (a database copy of the query, if present, is one of them, as in
        the reference codes).
    num_threads : int, optional, keyword-only

    Returns
    -------
    (nq, d) or (d,) array
        Expanded queries, ``v / (||v|| + 1e-6)`` as in cirtorch, in the
        common dtype of the inputs (CuPy in, CuPy out).

    Raises
    ------
    ValueError
        Shapes that do not match, n < 1 or n > N.
    TypeError
        Non-float inputs, n not an int, CuPy and numpy inputs mixed.

    See Also
    --------
    alpha_qe : weights s^alpha instead of 1.

    Examples
    --------
    >>> import numpy as np, deepret
    >>> x = np.array([[1, 0], [0.6, 0.8], [0, 1]], np.float32)
    >>> deepret.average_qe(x[0], x, n=2).round(3)          # q + x_0 + x_1, normalized
    array([0.956, 0.294], dtype=float32)
    >>> qx = deepret.average_qe(x[:2], x, n=2)
    >>> scores, ranks = deepret.knn(x, qx, k=3)            # search again with the expanded queries
    >>> ranks
    array([[0, 1, 2],
           [1, 2, 0]])
    """
    return _expand("average_qe", queries, x, n, 0.0, num_threads)


@_arrays.torch_interop
def alpha_qe(queries: ArrayInput, x: ArrayInput, n: int = 10, alpha: float = 3.0, *,
             num_threads: int | None = None) -> Array:
    """alpha-weighted query expansion (Radenovic, Tolias & Chum):
    L2N(q + sum_{i<=n} max(0, s_i)^alpha x_{r_i}).

    Parameters
    ----------
    queries : (nq, d) or (d,) float32 or float64 array
        Query descriptors, L2-normalized rows.
    x : (N, d) float32 or float64 array
        Database descriptors, L2-normalized rows.
    n : int
        Number of top-ranked database items in the expansion.
    alpha : float >= 0
        Weight exponent (3 in the paper); 0 is average query expansion.
        Negative similarities get weight 0.
    num_threads : int, optional, keyword-only

    Returns
    -------
    (nq, d) or (d,) array
        Expanded queries, ``v / (||v|| + 1e-6)``.

    Raises
    ------
    ValueError
        Shapes that do not match, n out of range, alpha negative or not finite.
    TypeError
        Non-float inputs, alpha not a number, CuPy and numpy inputs mixed.

    See Also
    --------
    average_qe, DiffusionIndex

    Examples
    --------
    >>> import numpy as np, deepret
    >>> x = np.array([[1, 0], [0.6, 0.8], [0, 1]], np.float32)
    >>> deepret.alpha_qe(x[0], x, n=2, alpha=3.0).round(3)  # q + 1 x_0 + 0.6^3 x_1
    array([0.997, 0.081], dtype=float32)
    """
    return _expand("alpha_qe", queries, x, n, _check_alpha(alpha), num_threads)
