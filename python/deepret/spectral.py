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
orthonormalized (Cholesky QR, twice) and Rayleigh-Ritz projected; pairs whose
residual |W u - lambda u| falls below ``tol / 100`` are locked (no longer
filtered); it stops once the r wanted pairs are within ``tol``
(docs/spectral.md). Every product with W is the CPU engine's batched sparse product
(``_core.spmm``); the dense steps are BLAS/LAPACK calls on n x b blocks and
b x b matrices. Memory: four n x (r + p) float64 blocks.
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


def _orthonormalize(X):
    """Orthonormal basis of X's columns (n x b), Cholesky QR twice (BLAS 3);
    falls back to Householder QR where X is (numerically) rank deficient."""
    for _ in range(2):
        G = X.T @ X
        try:
            R = scipy.linalg.cholesky(G, lower=False, check_finite=False)
        except np.linalg.LinAlgError:
            return np.linalg.qr(X)[0]
        X = scipy.linalg.solve_triangular(R, X.T, trans="T", lower=False, check_finite=False).T
    return np.ascontiguousarray(X)


def _orthonormalize_against(Q, X):
    """X made orthogonal to Q's orthonormal columns and orthonormalized, two
    passes (classical Gram-Schmidt twice is enough, Giraud et al. 2005)."""
    for _ in range(2):
        if Q.shape[1]:
            X -= Q @ (Q.T @ X)
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


def _chebyshev(op, X, degree, lo, hi, top):
    """p(W) X for the degree-`degree` Chebyshev polynomial that is small on
    [lo, hi] and grows above hi, scaled to be 1 at `top` (Zhou & Saad's
    scaled three-term recurrence, on -W)."""
    e = (hi - lo) / 2.0
    c = (hi + lo) / 2.0
    sigma = e / (top - c)
    tau = 2.0 / sigma
    Y = op(X)
    Y -= c * X
    Y *= sigma / e
    prev = X
    for _ in range(2, degree + 1):
        sigma_next = 1.0 / (tau - sigma)
        Z = op(Y)
        Z -= c * Y
        Z *= 2.0 * sigma_next / e
        Z -= (sigma * sigma_next) * prev
        prev, Y = Y, Z
        sigma = sigma_next
    return Y


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
    WX = None
    try:
        for iterations in range(1, maxiter + 1):
            if WX is not None:  # filter the active vectors (not on the first pass: Ritz first)
                hi = values[b - 1]  # the block's smallest Ritz value: the cut-off
                top = max(values[locked], hi + 1e-12)
                if hi >= top or hi <= lower:
                    hi = (top + lower) / 2
                Y = _chebyshev(op, X[:, locked:], degree, lower, hi, top)
                X[:, locked:] = _orthonormalize_against(X[:, :locked], Y)
            # Rayleigh-Ritz on the active part (locked pairs are exact Ritz pairs already).
            WA = op(X[:, locked:])
            H = X[:, locked:].T @ WA
            H = (H + H.T) / 2
            theta, V = np.linalg.eigh(H)
            theta, V = theta[::-1], V[:, ::-1]
            X[:, locked:] = X[:, locked:] @ V
            WA = WA @ V
            values[locked:] = theta
            R = WA - X[:, locked:] * theta
            residuals[locked:] = np.linalg.norm(R, axis=0)
            WX = True
            # Lock the leading converged pairs (in order, so locked pairs are the largest).
            # A locked vector is never improved again, and the active vectors are kept
            # orthogonal to it: its error would cap theirs where eigenvalues cluster. So
            # lock only pairs a hundred times tighter than tol; stop once every wanted
            # pair (locked or not) is within tol.
            newly = 0
            while locked + newly < r and residuals[locked + newly] <= _LOCK * tol:
                newly += 1
            locked += newly
            done = int(np.sum(residuals[:r] <= tol))
            if bar is not None and done > bar.n:
                bar.update(done - bar.n)
            if locked >= r or done == r:
                break
            # Keep the pairs sorted: the active Ritz values may exceed a locked one only
            # if a pair was missed; then unlock everything from there (rare).
            if locked and values[locked] > values[locked - 1] + tol:
                order = np.argsort(-values, kind="stable")
                X[:] = X[:, order]
                values = values[order]
                residuals = residuals[order]
                first = int(np.argmax(order != np.arange(b)))
                locked = min(locked, first)
    finally:
        if bar is not None:
            bar.close()
    lam = values[:r].copy()
    U = np.ascontiguousarray(X[:, :r])
    peak = np.argmax(np.abs(U), axis=0)
    U *= np.sign(U[peak, np.arange(r)])
    res = residuals[:r].copy()
    if (res > tol).any():
        warnings.warn(f"graph_eigs: {int((res > tol).sum())} of {r} pairs stopped at maxiter="
                      f"{maxiter} above tol={tol:g} (largest residual {res.max():.2e})",
                      ConvergenceWarning, stacklevel=2)
    info = EigsInfo(res, iterations, op.columns, time.perf_counter() - start)
    return (lam, U, info) if return_info else (lam, U)


# The index over these eigenpairs lives in _spectral_index.py; SpectralIndex
# stays deepret.spectral's. Imported last, as it imports graph_eigs from here.
from ._spectral_index import SpectralIndex  # noqa: E402,F401
