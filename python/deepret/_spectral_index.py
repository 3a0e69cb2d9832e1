"""SpectralIndex: fast spectral ranking over the r leading eigenpairs of
the kNN graph (deepret.spectral.graph_eigs), with the transfer function of
diffusion; ranking is a dot-product search. Reached as deepret.SpectralIndex
(and deepret.spectral.SpectralIndex)."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from . import _arrays, _backend
from .diffusion import _as_csr, _check_alpha, query_vector
from .graph import graph_from_knn
from .knn import knn
from .spectral import EigsInfo, graph_eigs
from ._typing import Array, ArrayInput, Sparse
from .whitening import PCAWhitening, index_whitening, whiten_as


_TRANSFERS = ("diffusion",)


def _transfer(h, alpha):
    """h as a callable on the eigenvalues (an array) -> the filter values."""
    if callable(h):
        return h
    if h == "diffusion":
        return lambda lam: (1.0 - alpha) / (1.0 - alpha * lam)
    raise ValueError(f"h must be 'diffusion' or a callable, got {h!r}")


class SpectralIndex:
    """Fast spectral ranking: diffusion as a dot-product search.

    Offline: the kNN graph W of the database (as DiffusionIndex builds it),
    its ``rank`` largest eigenpairs W ~ U Lambda U^T (``graph_eigs``) and the
    embedding V = U h(Lambda)^1/2 (``.embedding``, (n, rank)). Online: a
    query's y marks its ``query_k`` nearest database items with weight
    s^gamma (``query_vector``); its embedding is z = V^T y
    (``query_embedding``) and its scores are V z = U h(Lambda) U^T y, i.e.
    the rank-r approximation of (1 - alpha) (I - alpha W)^-1 y for the
    default h. With rank = n this is diffusion exactly.

    Parameters
    ----------
    x : (n, d) float32 or float64 array
        Database descriptors, L2-normalized rows (or None with ``graph=``,
        then ``search`` needs ``y`` instead of query descriptors).
    rank : int
        Eigenpairs kept (r).
    alpha : float in (0, 1)
        Of the default transfer function h_alpha(lambda) = (1 - alpha) / (1 - alpha lambda).
    k, gamma, mutual : the graph, as in knn_graph (see its k convention);
        ignored with ``graph=``.
    h : "diffusion" or callable, keyword-only
        Transfer function on the eigenvalues; a callable gets the (r,)
        eigenvalues and returns non-negative filter values.
    graph : (n, n) scipy.sparse matrix, keyword-only
        Use this symmetric graph instead of building one from x.
    query_k : int, keyword-only
        Database neighbours in each query's y (default 10).
    k_includes_self : bool, keyword-only
        The reference k convention (see knn_graph).
    eigs : dict, keyword-only
        Extra arguments of graph_eigs (tol, degree, block, seed, ...).
    whitening : PCAWhitening, optional, keyword-only
        Whiten the database and every query with it (an unfitted one is
        fitted on x first); saved and loaded with the index.
    progress, num_threads : keyword-only

    Attributes
    ----------
    eigenvalues : (r,) float64;  eigenvectors : (n, r) float64
    embedding : (n, r) array in x's dtype (float32 for float32 x)
    eigs_info : EigsInfo of the offline stage

    Raises
    ------
    ValueError
        Bad parameters, negative filter values, a graph whose size does not match x.

    See Also
    --------
    graph_eigs, DiffusionIndex

    Examples
    --------
    With rank = n the ranking is diffusion's, up to the factor 1 - alpha:

    >>> import numpy as np, deepret
    >>> x = np.random.default_rng(0).standard_normal((120, 8)).astype(np.float32)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> index = deepret.SpectralIndex(x, rank=120, alpha=0.9, k=10)
    >>> scores, ids = index.search(x[:3], topk=5)
    >>> exact = deepret.DiffusionIndex(x, k=10, alpha=0.9, tol=1e-9, maxiter=500)
    >>> bool((ids == exact.search(x[:3], topk=5)[1]).all())
    True

    Online, the embedding serves any dot-product search:

    >>> z = index.query_embedding(x[:3])
    >>> bool((deepret.knn(index.embedding, z, k=5)[1] == ids).all())
    True
    """

    W: Sparse | None             # None for an index read from a file saved without it
    eigs_info: EigsInfo | None   # None for an index read by load()

    def __init__(self, x, rank=400, alpha=0.99, k=50, gamma=3.0, mutual=True, *, h="diffusion",
                 graph=None, query_k=10, k_includes_self=False, eigs=None, whitening=None,
                 progress=False, num_threads=None):
        self.alpha = _check_alpha(alpha)
        self.gamma = float(gamma)
        self.query_k = _arrays.positive_int("query_k", query_k)
        self.num_threads = num_threads
        self.h = h
        self._h = _transfer(h, self.alpha)
        self.x = None if x is None else np.ascontiguousarray(x)
        if self.x is not None and (self.x.ndim != 2 or self.x.dtype not in (np.float32, np.float64)):
            raise ValueError(f"x must be a 2-D float32 or float64 array, got {self.x.dtype} "
                             f"{self.x.shape}")
        if whitening is not None and self.x is None:
            raise ValueError("whitening= needs the descriptors x")
        self.whitening, self.x = index_whitening(whitening, self.x)
        if graph is None:
            if self.x is None:
                raise ValueError("SpectralIndex needs x or graph=")
            scores, ids = knn(self.x, k=k, exclude_self=not k_includes_self, progress=progress,
                              num_threads=num_threads)
            graph = graph_from_knn(scores, ids, gamma=gamma, mutual=mutual, num_threads=num_threads)
        W = _as_csr(graph)
        if self.x is not None and W.shape[0] != self.x.shape[0]:
            raise ValueError(f"graph has {W.shape[0]} nodes but x has {self.x.shape[0]} rows")
        self.W = W
        lam, U, self.eigs_info = graph_eigs(W, rank, return_info=True, progress=progress,
                                            num_threads=num_threads, **(eigs or {}))
        self._set_spectrum(lam, U)

    def _set_spectrum(self, lam, U):
        filt = np.asarray(self._h(lam), dtype=np.float64)
        if filt.shape != lam.shape or not np.isfinite(filt).all() or (filt < 0).any():
            raise ValueError("h must return finite non-negative values, one per eigenvalue")
        self.eigenvalues, self.eigenvectors = lam, U
        dtype = np.float64 if self.x is None else self.x.dtype
        self.embedding = np.ascontiguousarray(U * np.sqrt(filt), dtype=dtype)

    def _rhs(self, queries, y):
        """The queries' right-hand sides: y itself, or query_vector of the descriptors."""
        if y is not None:
            return y
        if self.x is None:
            raise ValueError("this SpectralIndex was built from a graph: pass y=")
        queries = np.asarray(queries)
        if queries.ndim == 1:
            queries = queries[None, :]
        if self.whitening is not None:
            queries = whiten_as(self.whitening, queries, self.x.dtype)
        return query_vector(self.x, queries, self.query_k, self.gamma, num_threads=self.num_threads)

    def query_embedding(self, queries: ArrayInput | None = None, *, y: ArrayInput | Sparse | None = None) -> Array:
        """The queries' embeddings z = V^T y, (nq, r).

        Parameters
        ----------
        queries : (nq, d) or (d,) array, optional
            Query descriptors; their y as in :func:`query_vector`.
        y : (n,) or (n, nq) array or scipy.sparse matrix, keyword-only
            Right-hand sides instead of descriptors (needed for an index
            built from ``graph=`` alone).

        Returns
        -------
        (nq, r) array in the embedding's dtype
        """
        y = self._rhs(queries, y)
        if sp.issparse(y):
            y = sp.csr_array(y.T) if y.ndim == 2 else sp.csr_array(y.reshape(1, -1))
            nq = y.shape[0]
            out = np.empty((nq, self.embedding.shape[1]), dtype=self.embedding.dtype)
            _backend._core.spmm(nq, y.shape[1], y.indptr, y.indices.astype(y.indptr.dtype),
                                y.data.astype(self.embedding.dtype), self.embedding, out,
                                _backend.threads_arg(self.num_threads))
            return out
        y = np.asarray(y, dtype=self.embedding.dtype)
        if y.shape[0] != self.embedding.shape[0]:
            raise ValueError(f"y must have {self.embedding.shape[0]} rows, got shape {y.shape}")
        return (self.embedding.T @ y.reshape(len(y), -1)).T

    def search(self, queries: ArrayInput | None = None, topk: int = 100, *,
               y: ArrayInput | Sparse | None = None, correction: bool = False) -> tuple[Array, Array]:
        """The topk database items for each query, by spectral score V z.

        Parameters
        ----------
        queries : (nq, d) or (d,) array, optional
        topk : int
        y : right-hand sides, keyword-only (as in :meth:`query_embedding`)
        correction : bool, keyword-only
            Add the sparse first-order correction of the low-rank error:
            on the eigenvectors left out, h(lambda) is replaced by its
            tangent at 0, c0 + c1 lambda (c0 = h(0), c1 = h'(0)), which the
            graph itself applies, so the scores become
            U (h(Lambda) - c0 - c1 Lambda) U^T y + c0 y + c1 W y.
            The extra terms are sparse (y's items and their graph
            neighbours) and cost one sparse product; they are not a dot
            product with the embedding, so only this method applies them.
            With rank = n they vanish.

        Returns
        -------
        scores, ids : (nq, topk) arrays, best first

        Raises
        ------
        ValueError
            topk larger than the database; no queries nor y.
        """
        from .diffusion import _top

        topk = _arrays.positive_int("topk", topk)
        n = self.embedding.shape[0]
        if topk > n:
            raise ValueError(f"topk ({topk}) is larger than the database ({n})")
        if not correction:
            z = self.query_embedding(queries, y=y)
            scores = self.embedding @ z.T  # (n, nq): BLAS
            return _top(scores, topk, self.num_threads)
        return _top(self._corrected_scores(self._rhs(queries, y)), topk, self.num_threads)

    def _tangent_at_zero(self) -> tuple[float, float]:
        """(h(0), h'(0)): exact for the diffusion filter, a central difference otherwise."""
        if self.h == "diffusion":
            return 1.0 - self.alpha, self.alpha * (1.0 - self.alpha)
        step = 1e-4
        h0, lo, hi = (float(v) for v in np.asarray(self._h(np.array([0.0, -step, step])), dtype=np.float64))
        return h0, (hi - lo) / (2 * step)

    def _corrected_scores(self, y) -> Array:
        """(n, nq) scores of search(correction=True) for right-hand sides y."""
        if self.W is None:
            raise ValueError("correction=True needs the graph: this index was loaded from a file "
                             "saved without one")
        n = self.embedding.shape[0]
        dtype = self.embedding.dtype
        y = sp.csr_array(y) if sp.issparse(y) else np.asarray(y, dtype=dtype).reshape(n, -1)
        if y.shape[0] != n:
            raise ValueError(f"y must have {n} rows, got shape {y.shape}")
        c0, c1 = self._tangent_at_zero()
        lam = self.eigenvalues
        kept = np.asarray(self._h(lam), dtype=np.float64) - c0 - c1 * lam  # the filter less its tangent
        U = self.eigenvectors
        coefficients = np.asarray(y.T @ U).T * kept[:, None]      # (r, nq)
        scores = (U @ coefficients).astype(dtype, copy=False)     # (n, nq)
        sparse_part = c0 * y + c1 * (self.W @ y)
        scores += sparse_part.toarray() if sp.issparse(sparse_part) else sparse_part
        return scores

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index (eigenpairs, graph, descriptors, parameters,
        whitening) to a .npz file; a callable h is not saved (load then needs h=)."""
        white = {} if self.whitening is None else {
            f"whitening_{name}": value for name, value in self.whitening._state().items()}
        graph = {} if self.W is None else {
            "graph_indptr": self.W.indptr, "graph_indices": self.W.indices, "graph_data": self.W.data}
        np.savez(path, eigenvalues=self.eigenvalues, eigenvectors=self.eigenvectors, **graph,
                 x=np.zeros((0, 0)) if self.x is None else self.x, alpha=self.alpha,
                 gamma=self.gamma, query_k=self.query_k,
                 h=self.h if isinstance(self.h, str) else "", **white)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, h: str | Callable[[Array], ArrayInput] | None = None,
             num_threads: int | None = None) -> SpectralIndex:
        """A SpectralIndex from a file written by save (no graph, no eigensolve)."""
        with np.load(path, allow_pickle=False) as f:
            obj = cls.__new__(cls)
            obj.alpha, obj.gamma = float(f["alpha"]), float(f["gamma"])
            obj.query_k = int(f["query_k"])
            obj.num_threads = num_threads
            saved = str(f["h"])
            obj.h = h if h is not None else saved
            if obj.h == "":
                raise ValueError(f"{path} was saved with a callable h: pass h= to load")
            obj._h = _transfer(obj.h, obj.alpha)
            x = f["x"]
            obj.x = None if x.size == 0 else x
            white = {name[len("whitening_"):]: f[name] for name in f.files
                     if name.startswith("whitening_")}
            obj.whitening = PCAWhitening._from_state(white) if white else None
            obj.eigs_info = None
            obj._set_spectrum(f["eigenvalues"], f["eigenvectors"])
            obj.W = None  # files from before the graph was saved have none
            if "graph_indptr" in f.files:
                n = obj.eigenvectors.shape[0]
                parts = f["graph_indptr"], f["graph_indices"], f["graph_data"]
                _arrays.check_csr(f"the graph in {path}", (n, n), *parts)
                obj.W = sp.csr_array((parts[2], parts[1], parts[0]), shape=(n, n))
        return obj
