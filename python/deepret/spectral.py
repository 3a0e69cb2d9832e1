"""Fast spectral ranking (Iscen, Avrithis, Tolias, Furon & Chum, CVPR 2018).

Offline, the r largest eigenpairs W ~ U Lambda U^T of the symmetric
normalized kNN graph (``graph_eigs``); a transfer function h applied to the
eigenvalues gives the embedding V = U h(Lambda)^1/2, and the ranking of a
query with right-hand side y is V (V^T y): a dot-product search.
h_alpha(lambda) = (1 - alpha) / (1 - alpha lambda) reproduces diffusion,
(1 - alpha) (I - alpha W)^-1 restricted to the r leading eigenvectors.

``graph_eigs`` is a Chebyshev-filtered subspace iteration with locking
(Zhou & Saad 2007): a block of r + p vectors is repeatedly filtered by a
Chebyshev polynomial of W that damps the unwanted part of the spectrum,
orthonormalized (Cholesky QR, twice) and Rayleigh-Ritz projected; wanted
pairs whose residual |W u - lambda u| falls below ``tol / 100`` are locked
(no longer filtered), and nearly converged ones get a lower filter degree; it
stops once the r wanted pairs are within ``tol`` (docs/spectral.md). Every
product with W is the CPU engine's batched sparse product (``_core.spmm``),
by groups of 128 columns; the dense steps are BLAS/LAPACK calls on n x b
blocks and b x b matrices. Memory: about three n x (r + p) float64 blocks.
"""

from __future__ import annotations

import numbers
import time
import warnings
from typing import Literal, NamedTuple, overload

import numpy as np
import scipy.linalg

from . import _arrays, _backend
from .diffusion import _as_csr
from ._typing import Array, Sparse

__all__ = ["EigsInfo", "SpectralIndex", "graph_eigs"]


class EigsInfo(NamedTuple):
    """How graph_eigs went: per eigenpair the residual ‖W u - lambda u‖
    (u of unit norm), the filter iterations done, the sparse products spent
    (in columns: one product of an n x b block counts b) and the seconds.

    See Also
    --------
    graph_eigs : returns it with ``return_info=True``.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, deepret
    >>> ring = sp.csr_array(sp.diags([0.5, 0.5], [1, -1], shape=(20, 20)) + sp.diags([0.5, 0.5], [19, -19], shape=(20, 20)))
    >>> lam, U, info = deepret.graph_eigs(ring, 1, return_info=True)
    >>> round(float(lam[0]), 6), bool(info.residuals[0] < 1e-6), info.iterations >= 1
    (1.0, True, True)
    """

    residuals: np.ndarray  # (r,) float64
    iterations: int
    products: int
    seconds: float


class _Operator:
    """Y = W X through the CPU engine's sparse x dense product (float64)."""

    def __init__(self, W, num_threads):
        self.n = W.shape[0]
        self.indptr, self.indices = W.indptr, W.indices
        self.data = W.data.astype(np.float64)
        self.threads = _backend.threads_arg(num_threads)
        self.columns = 0

    def __call__(self, X, out=None):
        X = np.ascontiguousarray(X)
        out = np.empty_like(X) if out is None else out
        _backend._core.spmm(self.n, self.n, self.indptr, self.indices, self.data, X, out,
                            self.threads)
        self.columns += X.shape[1]
        return out


# Columns per sparse product in the filter and the Rayleigh-Ritz step: the
# engine's product works on 8-column panels anyway, and groups keep the
# scratch to a few n x _GROUP blocks whatever the block size (n = 10^6, a
# 480-vector block is 3.8 GB per n x b array).
_GROUP = 128


def _groups(width):
    return [slice(s, min(s + _GROUP, width)) for s in range(0, width, _GROUP)]


def _orthonormalize(X):
    """Orthonormal basis of X's columns (n x b, C-contiguous), Cholesky QR
    twice (BLAS 3), in place; falls back to Householder QR where X is
    (numerically) rank deficient."""
    for _ in range(2):
        G = X.T @ X
        try:
            R = scipy.linalg.cholesky(G, lower=False, check_finite=False)
        except np.linalg.LinAlgError:
            return np.ascontiguousarray(np.linalg.qr(X)[0])
        # X.T is Fortran-ordered: the triangular solve overwrites X itself.
        scipy.linalg.solve_triangular(R, X.T, trans="T", lower=False, overwrite_b=True,
                                      check_finite=False)
    return X


def _orthonormalize_against(Q, X):
    """X (n x a, C-contiguous) made orthogonal to Q's orthonormal columns and
    orthonormalized, two passes (classical Gram-Schmidt twice is enough,
    Giraud et al. 2005), in place where it can be."""
    for _ in range(2):
        if Q.shape[1]:
            for g in _groups(X.shape[1]):
                X[:, g] -= Q @ (Q.T @ X[:, g])
        X = _orthonormalize(X)
    return X


def _lowest_bound(op, n, bound, seed, steps=40):
    """A lower bound of W's smallest eigenvalue from a short Lanczos run
    (full reorthogonalization, one column of the engine's product per step):
    the smallest Ritz value minus its residual bound, less a margin, never
    below the Gershgorin bound."""
    steps = min(steps, n)
    Q = np.zeros((n, steps))
    q = np.random.default_rng(seed + 1).standard_normal(n)
    Q[:, 0] = q / np.linalg.norm(q)
    alphas, betas = [], []
    for j in range(steps):
        w = op(Q[:, j:j + 1])[:, 0]
        alphas.append(Q[:, j] @ w)
        w -= Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)
        w -= Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)
        beta = np.linalg.norm(w)
        if j + 1 == steps or beta < 1e-10:
            betas.append(beta)
            break
        betas.append(beta)
        Q[:, j + 1] = w / beta
    k = len(alphas)
    T = np.diag(alphas) + np.diag(betas[:k - 1], 1) + np.diag(betas[:k - 1], -1)
    theta, S = np.linalg.eigh(T)
    spread = theta[-1] - theta[0]
    low = theta[0] - abs(betas[k - 1] * S[-1, 0]) - 0.05 * spread - 1e-3
    return max(low, -bound)


def _filter_degrees(values, residuals, locked, r, degree, lo, hi, target):
    """Chebyshev degree per active column, at most `degree`: a wanted pair
    (theta above the cut-off hi, residual rho) that is nearly converged is
    filtered only as much as it needs to reach `target` (the filter shrinks
    what lies in [lo, hi] relative to theta by about exp(-d g), g =
    arccosh((theta - c) / e), c and e the centre and half-width of [lo, hi];
    a degree per vector as in ChASE, Winkelmann et al. 2019). Higher degrees
    than `degree` for the slow pairs were tried and stall them: their own
    eigencomponent sinks below the rounding of the amplified top of the
    spectrum."""
    e, c = (hi - lo) / 2.0, (hi + lo) / 2.0
    theta = values[locked:]
    d = np.full(theta.size, degree, dtype=np.int64)
    wanted = (np.arange(locked, values.size) < r) & (theta > hi)
    t = (theta[wanted] - c) / e
    g = np.arccosh(t)
    need = np.log(np.maximum(residuals[locked:][wanted], target) / target) / np.maximum(g, 1e-12)
    d[wanted] = np.clip(np.ceil(need), 1, degree).astype(np.int64)
    return d


def _chebyshev(op, X, degrees, lo, hi, top):
    """Y[:, j] = p_d(W) X[:, j], d = degrees[j], for the degree-d Chebyshev
    polynomial that is small on [lo, hi] and grows above hi, scaled to be 1
    at `top` (Zhou & Saad's scaled three-term recurrence). Columns go in
    groups of similar degree (_GROUP), so that the work follows each
    column's degree and the scratch is a few n x _GROUP blocks."""
    e = (hi - lo) / 2.0
    c = (hi + lo) / 2.0
    sigma1 = e / (top - c)
    tau = 2.0 / sigma1
    out = np.empty(X.shape)
    order = np.argsort(degrees, kind="stable")
    for g in _groups(order.size):
        cols = order[g]
        d = degrees[cols]
        prev = X[:, cols]
        Y = op(prev)
        Y -= c * prev
        Y *= sigma1 / e
        out[:, cols[d == 1]] = Y[:, d == 1]
        sigma = sigma1
        for step in range(2, int(d.max()) + 1):
            sigma_next = 1.0 / (tau - sigma)
            Z = op(Y)
            Z -= c * Y
            Z *= 2.0 * sigma_next / e
            Z -= (sigma * sigma_next) * prev
            prev, Y = Y, Z
            sigma = sigma_next
            finished = d == step
            if finished.any():
                out[:, cols[finished]] = Y[:, finished]
    return out


def _rayleigh_ritz(op, A):
    """Ritz pairs of W on span(A) (A: n x a, orthonormal, C-contiguous):
    descending Ritz values theta, the Ritz vectors A V (n x a) and their
    residual norms |W x - theta x|. W A and W (A V) are sparse products by
    column groups (not stored), rather than one dense n x a x a product
    W A V: cheaper here, and a few n x _GROUP blocks of scratch."""
    a = A.shape[1]
    H = np.empty((a, a))
    for g in _groups(a):
        H[:, g] = A.T @ op(A[:, g])
    H = (H + H.T) / 2
    theta, V = np.linalg.eigh(H)
    theta, V = theta[::-1], np.ascontiguousarray(V[:, ::-1])
    X = A @ V
    residuals = np.empty(a)
    for g in _groups(a):
        Xg = X[:, g]
        residuals[g] = np.linalg.norm(op(Xg) - Xg * theta[g], axis=0)
    return theta, X, residuals


_LOCK = 1e-2  # lock pairs with residual <= _LOCK * tol


@overload
def graph_eigs(W: Sparse, r: int, *, block: int | None = ..., degree: int = ..., tol: float = ...,
               maxiter: int = ..., seed: int = ..., return_info: Literal[False] = ..., progress: bool = ...,
               num_threads: int | None = ...) -> tuple[Array, Array]: ...
@overload
def graph_eigs(W: Sparse, r: int, *, block: int | None = ..., degree: int = ..., tol: float = ...,
               maxiter: int = ..., seed: int = ..., return_info: Literal[True], progress: bool = ...,
               num_threads: int | None = ...) -> tuple[Array, Array, EigsInfo]: ...
def graph_eigs(W: Sparse, r: int, *, block: int | None = None, degree: int = 12, tol: float = 1e-6,
               maxiter: int = 300, seed: int = 0, return_info: bool = False, progress: bool = False,
               num_threads: int | None = None) -> tuple[Array, Array] | tuple[Array, Array, EigsInfo]:
    """The r largest (algebraic) eigenpairs of a symmetric sparse graph.

    Parameters
    ----------
    W : (n, n) scipy.sparse matrix or array
        Symmetric (not checked), e.g. from knn_graph; computed in float64.
    r : int
        Number of eigenpairs, 1 <= r <= n (r close to n is better served by
        a dense eigendecomposition; with a block of all n vectors the first
        Rayleigh-Ritz step is exact).
    block : int, optional, keyword-only
        Vectors in the iterated block, r + guard vectors (default
        r + max(16, r // 5), at most n); more guard vectors converge in fewer
        iterations.
    degree : int, keyword-only
        Degree of the Chebyshev filter (sparse products per iteration and
        active vector).
    tol : float, keyword-only
        A pair is converged once ‖W u - lambda u‖ <= tol (u of unit norm).
    maxiter : int, keyword-only
        At most this many filter iterations; a ConvergenceWarning says when
        some pair stopped above tol.
    seed : int, keyword-only
        Seed of the random start block: the result is deterministic.
    return_info : bool, keyword-only
        Also return an EigsInfo (residual per pair, iterations, products, time).
    progress : bool, keyword-only
        Show a tqdm bar of converged pairs.
    num_threads : int, optional, keyword-only

    Returns
    -------
    eigenvalues : (r,) float64, descending
    eigenvectors : (n, r) float64, orthonormal columns (each signed so that
        its largest-magnitude entry is positive)
    info : EigsInfo, with return_info

    Raises
    ------
    ValueError
        W not square, r out of range, non-finite W, bad parameters.
    TypeError
        W not a scipy.sparse matrix.

    See Also
    --------
    scipy.sparse.linalg.eigsh : ``eigsh(W, k=r, which="LA")`` computes the same pairs.
    SpectralIndex

    Examples
    --------
    >>> import numpy as np, scipy.sparse.linalg, deepret
    >>> x = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> W = deepret.knn_graph(x, k=10)
    >>> lam, U, info = deepret.graph_eigs(W, 5, return_info=True)
    >>> lam.shape, U.shape, bool(info.residuals.max() <= 1e-6)
    ((5,), (300, 5), True)
    >>> reference = scipy.sparse.linalg.eigsh(W.astype(np.float64), k=5, which="LA")[0]
    >>> bool(np.allclose(lam, reference[::-1], atol=1e-8))
    True
    """
    from .diffusion import ConvergenceWarning

    W = _as_csr(W)
    n = W.shape[0]
    if not np.isfinite(W.data).all():
        raise ValueError("W contains NaN or infinity")
    r = _arrays.positive_int("r", r)
    if r > n:
        raise ValueError(f"r must be at most n = {n}, got {r}")
    b = min(n, r + max(16, r // 5)) if block is None else _arrays.positive_int("block", block)
    if not r <= b <= n:
        raise ValueError(f"block must lie in [r, n] = [{r}, {n}], got {b}")
    degree = _arrays.positive_int("degree", degree)
    maxiter = _arrays.positive_int("maxiter", maxiter)
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not float(tol) > 0:
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    tol = float(tol)
    op = _Operator(W, num_threads)
    start = time.perf_counter()
    # Bounds of the spectrum: Gershgorin on |W| (the normalized graph: within [-1, 1] anyway).
    bound = float(np.abs(W).sum(axis=1).max()) if W.nnz else 1.0
    lower = _lowest_bound(op, n, bound, seed)
    X = np.random.default_rng(seed).standard_normal((n, b))
    X = _orthonormalize(X)
    locked = 0
    values = np.zeros(b)
    residuals = np.full(b, np.inf)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=r, desc="graph_eigs", unit="pair")
    iterations = 0
    try:
        for iterations in range(1, maxiter + 1):
            if iterations == 1:  # Ritz pairs of the random block first
                A = X
            else:  # filter the active vectors
                hi = values[b - 1]  # the block's smallest Ritz value: the cut-off
                top = max(values[locked], hi + 1e-12)
                if hi >= top or hi <= lower:
                    hi = (top + lower) / 2
                degrees = _filter_degrees(values, residuals, locked, r, degree, lower, hi,
                                          _LOCK * tol / 2)
                A = _chebyshev(op, X[:, locked:], degrees, lower, hi, top)
                A = _orthonormalize_against(X[:, :locked], A)
            # Rayleigh-Ritz on the active part (locked pairs are exact Ritz pairs already).
            theta, A, residuals[locked:] = _rayleigh_ritz(op, A)
            X[:, locked:] = A
            values[locked:] = theta
            del A
            # Lock the wanted pairs that have converged a hundred times tighter than
            # tol, wherever they sit in the active block: a locked vector is never
            # filtered or rotated again, and the active vectors are kept orthogonal to
            # it. (Locked at tol itself, its error would cap theirs where eigenvalues
            # cluster.) The wanted pairs are the r largest of locked and active
            # together: the locked ones and the first r - locked active ones.
            wanted = np.arange(b - locked) < r - locked
            lock = wanted & (residuals[locked:] <= _LOCK * tol)
            newly = int(lock.sum())
            if newly:
                # Newly locked columns to the front of the active block, the rest in
                # their order (descending Ritz values).
                order = np.concatenate([np.flatnonzero(lock), np.flatnonzero(~lock)]) + locked
                X[:, locked:] = X[:, order]
                values[locked:] = values[order]
                residuals[locked:] = residuals[order]
                locked += newly
            top_r = np.argsort(-values, kind="stable")[:r]
            done = int(np.sum(residuals[top_r] <= tol))
            if bar is not None and done > bar.n:
                bar.update(done - bar.n)
            if locked >= r or done == r:
                break
    finally:
        if bar is not None:
            bar.close()
    top_r = np.argsort(-values, kind="stable")[:r]  # locked and active pairs, merged
    lam = values[top_r]
    U = np.ascontiguousarray(X[:, top_r])
    peak = np.argmax(np.abs(U), axis=0)
    U *= np.sign(U[peak, np.arange(r)])
    res = residuals[top_r]
    if (res > tol).any():
        warnings.warn(f"graph_eigs: {int((res > tol).sum())} of {r} pairs stopped at maxiter="
                      f"{maxiter} above tol={tol:g} (largest residual {res.max():.2e})",
                      ConvergenceWarning, stacklevel=2)
    info = EigsInfo(res, iterations, op.columns, time.perf_counter() - start)
    return (lam, U, info) if return_info else (lam, U)


# The index over these eigenpairs lives in _spectral_index.py; SpectralIndex
# stays deepret.spectral's. Imported last, as it imports graph_eigs from here.
from ._spectral_index import SpectralIndex  # noqa: E402,F401
