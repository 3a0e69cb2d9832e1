"""The kNN graph of a row-chunked dask array, assembled from per-block CSR
pieces computed on the cluster.

1. The k nearest other points of every row block (deepret.dask.knn's tasks).
2. Routing: each block splits its pairs (i -> j) by the block of j; block J
   collects the pairs that name its rows (an all-to-all of n k pairs).
3. Per block, the engine's graph_block: the rows of the unnormalized graph
   A (mutual: min over pairs listed both ways; else the union, max) and
   their degrees, the same bits as graph_from_knn on all the lists.
4. normalize: every degree (n doubles) goes to every block once; the
   engine's normalize_block scales the block's rows, W = D^-1/2 A D^-1/2.
5. The client concatenates the row pieces into one scipy.sparse.csr_array
   (or keeps them on the cluster: blocks=True).
"""

from __future__ import annotations

import numpy as np

from .. import _arrays, _backend
from ..graph import _check_gamma, _check_metric, _csr_cpu, _rescale_for_overflow
from . import _cluster
from .knn import _check_k, self_lists

__all__ = ["knn_graph"]


def _score_range(lists):
    scores = lists[0]
    return float(scores.min()), float(scores.max())


def _prepare(lists, metric, top):
    """The block's lists as graph_from_knn's input, rescaled like it where
    the affinities would overflow (top: the largest similarity, or None)."""
    scores, indices = lists
    if top is not None:
        scores = _rescale_for_overflow(scores, metric, top, np)
    return np.ascontiguousarray(scores), np.ascontiguousarray(indices, dtype=np.int64)


def _route(lists, row0, starts):
    """The block's pairs (source, target, score) split by the target's block."""
    scores, indices = lists
    rows, k = scores.shape
    source = np.repeat(np.arange(row0, row0 + rows, dtype=np.int64), k)
    target = indices.ravel()
    score = scores.ravel()
    valid = target >= 0
    source, target, score = source[valid], target[valid], score[valid]
    block = np.searchsorted(starts, target, side="right") - 1
    order = np.argsort(block, kind="stable")
    cuts = np.searchsorted(block[order], np.arange(len(starts)))
    return [(source[order[lo:hi]], target[order[lo:hi]], score[order[lo:hi]])
            for lo, hi in zip(cuts[:-1], cuts[1:])]


def _piece(routed, b):
    return routed[b]


def _rows(lists, row0, n, gamma, mutual, l2, num_threads, *incoming):
    """The block's rows of A: (data, indices, indptr) and their degrees."""
    scores, indices = lists
    source = np.concatenate([p[0] for p in incoming])
    target = np.concatenate([p[1] for p in incoming])
    score = np.ascontiguousarray(np.concatenate([p[2] for p in incoming]), dtype=scores.dtype)
    data, cols, indptr, degrees = _backend._core.graph_block(
        scores, indices, row0, n, source, target, score, gamma, mutual, l2, num_threads)
    return (data, cols, indptr), degrees


def _degrees(rows):
    return rows[1]


def _normalized(rows, row0, degrees, num_threads):
    (data, cols, indptr), _ = rows
    data, cols, indptr = data.copy(), cols.copy(), indptr.copy()
    nnz = _backend._core.normalize_block(indptr, cols, data, row0, degrees, num_threads)
    return data[:nnz], cols[:nnz], indptr


def _unnormalized(rows):
    return rows[0]


def _block_csr(piece, n):
    import scipy.sparse as sp

    data, cols, indptr = piece
    return sp.csr_array((data, cols, indptr), shape=(len(indptr) - 1, n))


def _assemble(tasks, pieces, n):
    """Row pieces (futures of (data, indices, indptr)) into one csr_array."""
    parts = tasks.gather(pieces)
    nnz = np.cumsum([0] + [len(p[0]) for p in parts])
    data = np.concatenate([p[0] for p in parts])
    cols = np.concatenate([p[1] for p in parts])
    indptr = np.concatenate([[0]] + [p[2][1:] + offset for p, offset in zip(parts, nnz[:-1])])
    return _csr_cpu(data, cols, indptr.astype(np.int64), n)


def build_graphs(tasks, blocks, k, gamma, mutual, metric, normalize, unnormalized, k_includes_self,
                 num_threads, split_every, keep_blocks=False):
    """(graph, A or None): the graph as knn_graph returns it and, with
    unnormalized, also A (the affinities before normalization)."""
    n = blocks.n
    exclude = not k_includes_self
    k = _check_k(k, n - (1 if exclude else 0), exclude)
    lists = self_lists(tasks, blocks, k, metric, exclude, num_threads, split_every)
    # The rescaling graph_from_knn applies where s^gamma would overflow needs
    # the largest similarity of all lists.
    ranges = tasks.gather(tasks.map(_score_range, lists, pure=False))
    low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
    top = 1.0 - 0.5 * low if metric == "l2" else high
    from ..graph import _needs_rescale

    rescale = _needs_rescale(top, gamma, k, blocks.dtype, normalize)
    l2 = metric == "l2" and not rescale
    lists = [tasks.submit(_prepare, f, metric, top if rescale else None, pure=False) for f in lists]
    starts = blocks.starts
    routed = [tasks.submit(_route, f, int(starts[b]), starts, pure=False) for b, f in enumerate(lists)]
    count = len(lists)
    rows = []
    for b in range(count):
        incoming = [tasks.submit(_piece, routed[a], b) for a in range(count)]
        rows.append(tasks.submit(_rows, lists[b], int(starts[b]), n, gamma, bool(mutual), l2,
                                  num_threads, *incoming, pure=False))
    A_pieces = [tasks.submit(_unnormalized, r) for r in rows]
    if normalize:
        degrees = np.concatenate(tasks.gather([tasks.submit(_degrees, r) for r in rows]))
        shared = tasks.scatter(degrees, broadcast=True)
        W_pieces = [tasks.submit(_normalized, r, int(starts[b]), shared, num_threads, pure=False)
                    for b, r in enumerate(rows)]
    else:
        W_pieces = A_pieces
    if keep_blocks:
        pieces = [tasks.submit(_block_csr, p, n) for p in W_pieces]
        tasks.wait(pieces)  # computed before the intermediate results are let go
        return pieces, None
    W = _assemble(tasks, W_pieces, n)
    A = _assemble(tasks, A_pieces, n) if unnormalized and normalize else (W if unnormalized else None)
    return W, A


def knn_graph(x, k=50, gamma=3.0, mutual=True, metric="ip", normalize=True, *, k_includes_self=False,
              num_threads=None, client=None, split_every=4, blocks=False):
    """``deepret.knn_graph`` of a dask array on a Dask cluster.

    Parameters
    ----------
    x : (n, d) dask array, float32 or float64, chunked along rows only
    k, gamma, mutual, metric, normalize, k_includes_self
        As in ``deepret.knn_graph``.
    num_threads, client, split_every : keyword-only
        As in ``deepret.dask.knn``.
    blocks : bool, keyword-only
        Keep the graph on the cluster: return one future per row block of
        a scipy.sparse.csr_array (rows, n) instead of gathering them.

    Returns
    -------
    scipy.sparse.csr_array (n, n), equal to ``deepret.knn_graph(x)`` on the
    whole array: the same structure and the same values (bit for bit on
    workers of one SIMD path); or the list of futures (blocks=True).

    Raises
    ------
    TypeError, ValueError
        As ``deepret.dask.knn`` and ``deepret.knn_graph``.
    RuntimeError, ConnectionError
        No client, or its scheduler unreachable.

    See Also
    --------
    deepret.knn_graph : the same graph in one process.

    Examples
    --------
    >>> import numpy as np, dask.array as da, deepret, deepret.dask
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0")
    >>> x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> xd = da.from_array(x, chunks=(120, 16))            # uneven last chunk
    >>> W = deepret.dask.knn_graph(xd, k=10)
    >>> (W != deepret.knn_graph(x, k=10)).nnz             # the same graph
    0
    >>> client.close()
    """
    gamma = _check_gamma(gamma)
    metric = _check_metric(metric)
    split_every = _arrays.positive_int("split_every", split_every)
    tasks = _cluster.Tasks(_cluster.get_client(client))
    threads = _backend.threads_arg(num_threads)
    data = _cluster.row_blocks("x", x, tasks)
    _cluster.check_magnitude(data.largest, data.d, data.dtype, metric)
    W, _ = build_graphs(tasks, data, k, gamma, mutual, metric, bool(normalize), False,
                        bool(k_includes_self), threads, split_every, keep_blocks=bool(blocks))
    return W
