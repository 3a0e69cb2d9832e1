"""Diffusion on a Dask cluster.

- diffuse: the graph is sent to every worker once (a broadcast scatter);
  batches of right-hand sides are solved in parallel by deepret's batched
  CG, each column exactly as ``deepret.diffuse`` solves it.
- offline_diffusion: the offline stage of large-scale diffusion (Yang et
  al., "decoupling diffusion into online and offline processing"): from every
  database item i, the diffusion (I - alpha W_S) f = e_i on the subgraph S of
  its own top-T items, by the engine's truncated CG, one task per row block;
  the n x n sparse matrix with those T values per row.
- DiffusionIndex: deepret.DiffusionIndex whose offline work (the graph, and
  with offline=True the offline matrix) runs on the cluster; search() serves
  from one process.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from .. import _arrays, _backend
from .. import diffusion as _diffusion
from ..diffusion import CgInfo, ConvergenceWarning, _as_csr, _check_alpha
from . import _cluster
from .graph import build_graphs
from .knn import self_lists

__all__ = ["DiffusionIndex", "diffuse", "offline_diffusion"]


def _solve(W, y, alpha, tol, maxiter, order, num_threads):
    """One batch of columns by deepret.diffuse (warnings left to the caller)."""
    if sp.issparse(y):
        y = y.toarray()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _diffusion.diffuse(W, y, alpha, tol, maxiter, return_info=True, order=order,
                                  num_threads=num_threads)


def _column_batches(y, batch):
    """(start, stop) column ranges of y's batches."""
    m = y.shape[1]
    return [(lo, min(lo + batch, m)) for lo in range(0, m, batch)]


def diffuse(W, y, alpha=0.99, tol=1e-6, maxiter=20, return_info=False, *, columns_per_task=64,
            num_threads=None, client=None):
    """``deepret.diffuse`` with the columns of y solved in parallel on a Dask cluster.

    Parameters
    ----------
    W : (n, n) scipy.sparse matrix or array
        Sent to every worker once (n + 2 nnz numbers per worker).
    y : (n,) or (n, m) numpy array, scipy.sparse matrix or dask array
        Right-hand sides; a dask array must hold all n rows in one chunk
        (its column chunks are then the batches).
    alpha, tol, maxiter, return_info
        As in ``deepret.diffuse`` (one ConvergenceWarning for all columns).
    columns_per_task : int, keyword-only
        Columns per task for numpy/scipy y.
    num_threads, client : keyword-only, as in ``deepret.dask.knn``.

    Returns
    -------
    f (numpy, y's shape) and, with return_info, a CgInfo: equal to
    ``deepret.diffuse(W, y)`` to the rounding of the batched product (the
    same locality order is used for every batch).

    Raises
    ------
    ValueError, TypeError
        As ``deepret.diffuse``; a dask y split along its rows.
    RuntimeError, ConnectionError
        No client, or its scheduler unreachable.

    See Also
    --------
    deepret.diffuse : the same solve in one process.
    scipy.sparse.linalg.cg : one column at a time.

    Examples
    --------
    >>> import numpy as np, dask.array as da, deepret, deepret.dask
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0")
    >>> x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> xd = da.from_array(x, chunks=(120, 16))            # uneven last chunk
    >>> W = deepret.knn_graph(x, k=10)
    >>> y = np.eye(300, 3, dtype=np.float32)
    >>> f = deepret.dask.diffuse(W, y, alpha=0.9, columns_per_task=2)
    >>> bool(np.allclose(f, deepret.diffuse(W, y, alpha=0.9)))
    True
    >>> client.close()
    """
    import dask.array as da

    alpha = _check_alpha(alpha)
    tol = float(tol)
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    maxiter = _arrays.positive_int("maxiter", maxiter)
    batch = _arrays.positive_int("columns_per_task", columns_per_task)
    W = _as_csr(W)
    n = W.shape[0]
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},) or ({n}, m) to match W, got {y.shape}")
    shape = y.shape
    if isinstance(y, da.Array) and len(y.chunks[0]) != 1:
        raise ValueError(f"a dask y must hold all {n} rows in one chunk, got row chunks "
                         f"{y.chunks[0]}: rechunk with y.rechunk({{0: -1}})")
    tasks = _cluster.Tasks(_cluster.get_client(client))
    _backend.threads_arg(num_threads)  # checked here, passed on as given
    threads = num_threads
    m = 1 if len(shape) == 1 else shape[1]
    # diffuse(order="auto")'s choice, made once for all batches from the total m.
    order = _diffusion._auto_order(W) if m >= _diffusion._REORDER_FROM_COLUMNS else None
    shared = tasks.scatter(W, broadcast=True)
    if isinstance(y, da.Array):
        y2 = y.reshape(n, m) if len(shape) == 1 else y
        pieces = list(y2.to_delayed()[0])
        futures = [tasks.submit(_solve, shared, p, alpha, tol, maxiter, order, threads, pure=False)
                   for p in tasks.compute(pieces)]
    else:
        y2 = y.reshape(n, m) if len(shape) == 1 else y
        if sp.issparse(y2):
            y2 = sp.csc_array(y2)
        futures = [tasks.submit(_solve, shared, y2[:, lo:hi], alpha, tol, maxiter, order, threads,
                                 pure=False)
                   for lo, hi in _column_batches(y2, batch)]
    results = tasks.gather(futures)
    f = np.concatenate([r[0] for r in results], axis=1).reshape(shape)
    info = CgInfo(np.concatenate([r[1].iterations for r in results]),
                  np.concatenate([r[1].residuals for r in results]))
    _diffusion._warn_if_stalled(info.residuals, tol, maxiter)
    return (f, info) if return_info else f


def _offline_block(lists, G, row0, renormalize, alpha, tol, maxiter, num_threads):
    """Diffusion from each item of a row block on its own top-T subgraph:
    (ids, f, iterations, residuals), ids (rows, T) global."""
    _, ids = lists
    rows, T = ids.shape
    y = np.zeros((rows, T), dtype=G.dtype)
    own = ids == np.arange(row0, row0 + rows)[:, None]
    # An item is in its own top-T list unless T exact duplicates of it with
    # smaller ids come first; then the diffusion starts from the first of them.
    at = np.where(own.any(axis=1), own.argmax(axis=1), 0)
    y[np.arange(rows), at] = 1
    f = np.empty_like(y)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    iterations, residuals = _backend._core.truncated_cg(
        G.shape[0], G.indptr, G.indices, G.data, ids, renormalize, alpha, y, f, tol, maxiter,
        num_threads)
    return ids, f, iterations, residuals


def _offline(tasks, blocks, G, T, renormalize, alpha, tol, maxiter, threads, split_every):
    """The offline matrix (csr_array n x n, T per row) and its CgInfo."""
    n = blocks.n
    lists = self_lists(tasks, blocks, T, "ip", False, threads, split_every)
    shared = tasks.scatter(G, broadcast=True)
    parts = tasks.gather([tasks.submit(_offline_block, f, shared, int(blocks.starts[b]),
                                         renormalize, alpha, tol, maxiter, threads, pure=False)
                           for b, f in enumerate(lists)])
    ids = np.concatenate([p[0] for p in parts])
    values = np.concatenate([p[1] for p in parts])
    order = np.argsort(ids, axis=1, kind="stable")  # CSR rows sorted by column
    L = sp.csr_array((np.take_along_axis(values, order, axis=1).ravel(),
                      np.take_along_axis(ids, order, axis=1).ravel(),
                      np.arange(0, n * T + 1, T)), shape=(n, n))
    info = CgInfo(np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]))
    return L, info


def offline_diffusion(x, W, truncate, alpha=0.99, truncation="restrict", A=None, tol=1e-6,
                      maxiter=20, *, num_threads=None, client=None, split_every=4):
    """The offline stage of large-scale diffusion on a Dask cluster.

    For every database item i: its top-``truncate`` items S_i by inner
    product (itself first, as a query it is its own nearest), and the
    solution f_i of (I - alpha W_S) f = e_i on that subgraph, W_S formed as
    in ``deepret.DiffusionIndex(truncate=..., truncation=...)``. Online, a
    query whose nearest items j carry weights w_j gets the scores
    sum_j w_j f_j (``DiffusionIndex(offline=True)``).

    Parameters
    ----------
    x : (n, d) dask array chunked along rows (L2-normalized rows)
    W : (n, n) scipy.sparse, the normalized graph (e.g. deepret.dask.knn_graph(x))
    truncate : int, T <= n
    truncation : {"restrict", "renormalize"}
        "renormalize" needs A, the unnormalized affinities (knn_graph(...,
        normalize=False)).
    alpha, tol, maxiter : as in diffuse.

    Returns
    -------
    L : scipy.sparse.csr_array (n, n), T entries per row (row i: f_i on S_i)
    info : CgInfo per item

    Raises
    ------
    ValueError
        truncate larger than n, an unknown truncation, "renormalize"
        without A, a graph whose size does not match x.
    RuntimeError, ConnectionError
        No client, or its scheduler unreachable.

    See Also
    --------
    deepret.DiffusionIndex : truncated diffusion of query batches, online.

    Examples
    --------
    >>> import numpy as np, dask.array as da, deepret, deepret.dask
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0")
    >>> x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> xd = da.from_array(x, chunks=(120, 16))            # uneven last chunk
    >>> W = deepret.dask.knn_graph(xd, k=10)
    >>> L, info = deepret.dask.offline_diffusion(xd, W, truncate=20, alpha=0.9)
    >>> L.shape, L.nnz                                     # 20 entries per row
    ((300, 300), 6000)
    >>> client.close()
    """
    alpha = _check_alpha(alpha)
    if truncation not in ("renormalize", "restrict"):
        raise ValueError(f"truncation must be 'renormalize' or 'restrict', got {truncation!r}")
    G = _as_csr(A if truncation == "renormalize" else W) if (A is not None or truncation == "restrict") \
        else None
    if G is None:
        raise ValueError("truncation='renormalize' needs A, the unnormalized affinities")
    maxiter = _arrays.positive_int("maxiter", maxiter)
    tasks = _cluster.Tasks(_cluster.get_client(client))
    blocks = _cluster.row_blocks("x", x, tasks)
    T = _arrays.positive_int("truncate", truncate)
    if T > blocks.n:
        raise ValueError(f"truncate = {T} is larger than n = {blocks.n}")
    if G.shape[0] != blocks.n:
        raise ValueError(f"the graph must be ({blocks.n}, {blocks.n}) like x's rows, got {G.shape}")
    return _offline(tasks, blocks, G, T, truncation == "renormalize", alpha, float(tol), maxiter,
                    _backend.threads_arg(num_threads), _arrays.positive_int("split_every", split_every))


class DiffusionIndex(_diffusion.DiffusionIndex):
    """``deepret.DiffusionIndex`` whose offline work runs on a Dask cluster.

    The kNN graph (and, for renormalized truncation, the affinities) are
    built by deepret.dask's tasks from the row-chunked dask array x; x
    itself and the graph are then kept in this process, and ``search`` runs
    here, exactly as ``deepret.DiffusionIndex.search`` (same results).

    With ``offline=True`` (needs ``truncate``), the offline stage of
    large-scale diffusion also runs on the cluster (``offline_diffusion``:
    one truncated diffusion from every database item), and ``search`` is then
    online work only: the query's ``query_k`` nearest items j with weights
    s_j^gamma, scores sum_j w_j f_j over the union of their lists, no solve.

    Parameters: as ``deepret.DiffusionIndex``, x a dask array; and
    ``offline``, ``num_threads``, ``client``, ``split_every`` (keyword-only).

    Raises
    ------
    ValueError, TypeError
        As ``deepret.DiffusionIndex`` and ``deepret.dask.knn``;
        ``offline=True`` without ``truncate``.
    RuntimeError, ConnectionError
        No client, or its scheduler unreachable.

    See Also
    --------
    deepret.DiffusionIndex : the same index built in one process.
    offline_diffusion : the offline stage behind ``offline=True``.

    Examples
    --------
    >>> import numpy as np, dask.array as da, deepret, deepret.dask
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0")
    >>> x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> xd = da.from_array(x, chunks=(120, 16))            # uneven last chunk
    >>> index = deepret.dask.DiffusionIndex(xd, k=10, alpha=0.9)
    >>> local = deepret.DiffusionIndex(x, k=10, alpha=0.9)
    >>> bool((index.search(x[:3], topk=5)[1] == local.search(x[:3], topk=5)[1]).all())
    True
    >>> fast = deepret.dask.DiffusionIndex(xd, k=10, alpha=0.9, truncate=50, offline=True)
    >>> fast.search(x[:3], topk=5)[1].shape               # online: no solve
    (3, 5)
    >>> client.close()
    """

    def __init__(self, x, k=50, gamma=3.0, alpha=0.99, mutual=True, truncate=None,
                 truncation="renormalize", *, query_k=10, k_includes_self=False, tol=1e-6,
                 maxiter=20, offline=False, num_threads=None, client=None, split_every=4):
        tasks = _cluster.Tasks(_cluster.get_client(client))
        blocks = _cluster.row_blocks("x", x, tasks)
        local = np.concatenate(tasks.gather(blocks.futures))
        self._configure(local, k, gamma, alpha, mutual, truncate, truncation, query_k,
                        k_includes_self, tol, maxiter, num_threads)
        if offline and self.truncate is None:
            raise ValueError("offline=True needs truncate (the T of the offline lists)")
        threads = _backend.threads_arg(num_threads)
        split_every = _arrays.positive_int("split_every", split_every)
        _cluster.check_magnitude(blocks.largest, blocks.d, blocks.dtype, "ip")
        W, A = build_graphs(tasks, blocks, k, self.gamma, mutual, "ip", True,
                            self._needs_affinities(), self.k_includes_self, threads, split_every)
        self._set_graphs(W, A)
        self.offline = bool(offline)
        self.offline_matrix = self.offline_info = None
        if self.offline and self.truncate is not None:  # (truncate checked above)
            T = min(self.truncate, blocks.n)
            G = self._A if self.truncation == "renormalize" else self.W
            self.offline_matrix, self.offline_info = _offline(
                tasks, blocks, G, T, self.truncation == "renormalize", self.alpha, self.tol,
                self.maxiter, threads, split_every)

    def search(self, queries, topk=100):
        """(scores, ids), each (nq, topk), best first; see the class."""
        if not self.offline:
            return super().search(queries, topk)
        topk = _arrays.positive_int("topk", topk)
        queries = np.asarray(queries)
        if queries.ndim == 1:
            queries = queries[None, :]
        if topk > self.truncate:
            raise ValueError(f"topk ({topk}) must be at most truncate ({self.truncate})")
        y = _diffusion.query_vector(self.x, queries, self.query_k, self.gamma,
                                    num_threads=self.num_threads)
        L: Any = self.offline_matrix  # set with offline=True
        f = (L.T @ y).T.tocsr()  # (nq, n): sum_j w_j f_j
        scores = np.full((len(queries), topk), -np.inf, dtype=L.dtype)
        ids = np.full((len(queries), topk), -1, dtype=np.int64)
        for q in range(len(queries)):
            lo, hi = f.indptr[q], f.indptr[q + 1]
            cols, vals = f.indices[lo:hi], f.data[lo:hi]
            best = np.lexsort((cols, -vals))[:topk]  # larger score first, then smaller id
            scores[q, :len(best)], ids[q, :len(best)] = vals[best], cols[best]
        return scores, ids
