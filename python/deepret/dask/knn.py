"""Exact kNN of a row-chunked dask array on a Dask cluster.

All-vs-all (queries=None): for B row blocks, B diagonal tasks (a block
against itself, the engine's symmetric search) and B (B - 1) / 2 pair tasks
(blocks a < b: every score <x_i, x_j> computed once and feeding both rows'
lists, as the single-machine all-vs-all does). Each task returns
best-first lists with global row numbers; the lists of one row block are
merged into its top k by merge tasks of ``split_every`` lists each,
submitted as soon as their inputs are (a reduction tree that is as deep as
it must be to keep at most split_every lists per block in memory). The ranking is the engine's total order (larger score, then smaller
index) on the same score bits as the single-machine search, so the result
equals ``deepret.knn`` exactly; L2 lists are merged on the engine's raw keys
<q, x> - |x|^2 / 2 and turned into distances at the end, as there.
"""

from __future__ import annotations

import numpy as np

from .. import _arrays, _backend
from ..knn import _METRICS, _database_class
from . import _cluster

__all__ = ["knn"]


def _threads(num_threads) -> int:
    return _backend.threads_arg(num_threads)


def _diagonal(x, k, metric, exclude_self, offset, num_threads):
    """Block x against itself: (scores, global indices) (rows, k), raw."""
    x = np.ascontiguousarray(x)
    database = _database_class(x.dtype)(x, num_threads)
    scores = np.empty((x.shape[0], k), dtype=x.dtype)
    indices = np.empty((x.shape[0], k), dtype=np.int64)
    database.search_self(x, k, _METRICS[metric], exclude_self, scores, indices, num_threads, None,
                         raw=True)
    indices += offset
    return scores, indices


def _pair(a, b, k, metric, offset_a, offset_b, num_threads):
    """Blocks a and b (disjoint rows), each score once: ((a's lists from b), (b's from a))."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    ka, kb = min(k, b.shape[0]), min(k, a.shape[0])
    database = _database_class(b.dtype)(b, num_threads)
    a_scores = np.empty((a.shape[0], ka), dtype=a.dtype)
    a_indices = np.empty((a.shape[0], ka), dtype=np.int64)
    b_scores = np.empty((b.shape[0], kb), dtype=b.dtype)
    b_indices = np.empty((b.shape[0], kb), dtype=np.int64)
    database.search_pair(a, b, ka, kb, _METRICS[metric], a_scores, a_indices, b_scores, b_indices,
                         num_threads)
    a_indices += offset_b
    b_indices += offset_a
    return (a_scores, a_indices), (b_scores, b_indices)


def _queries_block(queries, x, k, metric, offset, num_threads):
    """A block of queries against a block of the database: raw lists, global indices."""
    queries, x = np.ascontiguousarray(queries), np.ascontiguousarray(x)
    k = min(k, x.shape[0])
    database = _database_class(x.dtype)(x, num_threads)
    scores = np.empty((queries.shape[0], k), dtype=x.dtype)
    indices = np.empty((queries.shape[0], k), dtype=np.int64)
    database.search(queries, k, _METRICS[metric], -1, scores, indices, num_threads, raw=True)
    indices += offset
    return scores, indices


def _merge(k, num_threads, *lists):
    """The best k of several best-first lists of disjoint candidates, per row."""
    scores, indices = lists[0]
    for other_scores, other_indices in lists[1:]:
        width = min(k, scores.shape[1] + other_scores.shape[1])
        out_scores = np.empty((scores.shape[0], width), dtype=scores.dtype)
        out_indices = np.empty((scores.shape[0], width), dtype=np.int64)
        _backend._core.knn_merge(scores, indices, other_scores, other_indices, width, out_scores,
                                 out_indices, num_threads)
        scores, indices = out_scores, out_indices
    return scores, indices


def _finish(lists, x, metric, num_threads):
    """Raw L2 keys to squared distances (ip: unchanged)."""
    scores, indices = lists
    if metric == "l2":
        scores = scores.copy()
        _backend._core.knn_finish_distances(scores, np.ascontiguousarray(x), num_threads)
    return scores, indices


def _part(pair_future, side):
    return pair_future[side]


def _check_k(k, candidates: int, exclude_self: bool) -> int:
    k = _arrays.positive_int("k", k)
    if k > candidates:
        what = "n - 1 (exclude_self)" if exclude_self else "n"
        raise ValueError(f"k = {k} is larger than {what} = {candidates}")
    return k


class _Merger:
    """Per row block, the lists not yet merged: once split_every of them are
    waiting they are submitted as one merge task, right after the tasks that
    produce them, so that merges run as their inputs arrive and a block holds
    at most split_every lists at a time (not one per block of the other side)."""

    def __init__(self, tasks, count, k, num_threads, split_every):
        self.tasks, self.k, self.threads, self.every = tasks, k, num_threads, split_every
        self.pending = [[] for _ in range(count)]

    def add(self, b, future):
        self.pending[b].append(future)
        if len(self.pending[b]) >= self.every:
            self.pending[b] = [self.tasks.submit(_merge, self.k, self.threads, *self.pending[b],
                                                 pure=False)]

    def result(self, b):
        lists = self.pending[b]
        if len(lists) == 1:
            return lists[0]
        return self.tasks.submit(_merge, self.k, self.threads, *lists, pure=False)


def self_lists(tasks, blocks, k, metric, exclude_self, num_threads, split_every):
    """Futures of each row block's finished (scores, indices), all-vs-all."""
    starts, sizes, futures = blocks.starts, blocks.sizes(), blocks.futures
    count = len(futures)
    merger = _Merger(tasks, count, k, num_threads, split_every)
    for b in range(count):
        local = min(k, int(sizes[b]) - (1 if exclude_self else 0))
        if local >= 1:
            merger.add(b, tasks.submit(_diagonal, futures[b], local, metric, exclude_self,
                                       int(starts[b]), num_threads, pure=False))
    for a in range(count):
        for b in range(a + 1, count):
            pair = tasks.submit(_pair, futures[a], futures[b], k, metric, int(starts[a]),
                                int(starts[b]), num_threads, pure=False)
            merger.add(a, tasks.submit(_part, pair, 0))
            merger.add(b, tasks.submit(_part, pair, 1))
    return [tasks.submit(_finish, merger.result(b), futures[b], metric, num_threads, pure=False)
            for b in range(count)]


def query_lists(tasks, qblocks, blocks, k, metric, num_threads, split_every):
    """Futures of each query block's finished (scores, indices) against the database."""
    merger = _Merger(tasks, len(qblocks.futures), k, num_threads, split_every)
    for q, query in enumerate(qblocks.futures):
        for x, start in zip(blocks.futures, blocks.starts[:-1]):
            merger.add(q, tasks.submit(_queries_block, query, x, k, metric, int(start), num_threads,
                                       pure=False))
    return [tasks.submit(_finish, merger.result(q), query, metric, num_threads, pure=False)
            for q, query in enumerate(qblocks.futures)]


def _as_dask(tasks, lists, sizes, k, dtype):
    """(scores, indices) dask arrays (n, k) over the futures of per-block lists."""
    import dask
    import dask.array as da

    scores, indices, parts = [], [], []
    for future, rows in zip(lists, sizes):
        s = tasks.submit(_part, future, 0)
        i = tasks.submit(_part, future, 1)
        parts += [s, i]
        scores.append(da.from_delayed(dask.delayed(s), shape=(int(rows), k), dtype=dtype))
        indices.append(da.from_delayed(dask.delayed(i), shape=(int(rows), k), dtype=np.int64))
    tasks.wait(parts)  # computed before the intermediate results are let go
    return da.concatenate(scores), da.concatenate(indices)


def knn(x, queries=None, k=10, metric="ip", exclude_self=False, *, num_threads=None, client=None,
        split_every=4):
    """``deepret.knn`` of a dask array on a Dask cluster, exactly.

    Parameters
    ----------
    x : (n, d) dask array, float32 or float64, chunked along rows only
        The database; each row block is one unit of work (see docs/dask.md
        for the memory a task needs: about 3 blocks of rows plus their lists).
        Uneven chunks, and chunks smaller than k, are fine.
    queries : (nq, d) dask array of x's dtype, chunked along rows only, optional
        Default: x itself (all-vs-all, each block pair computed once).
    k, metric, exclude_self
        As in ``deepret.knn``.
    num_threads : int, keyword-only
        Engine threads per task; default ``OMP_NUM_THREADS``, else every CPU
        of the worker process. With several Dask threads or workers per
        machine, set it to cores / (tasks running at once per machine).
    client : distributed.Client or scheduler address, keyword-only
        Default: the current client (``distributed.default_client()``).
    split_every : int, keyword-only
        Lists merged per task of the reduction (at least 2): also the most
        lists of one row block waiting in the workers' memory at a time.

    Returns
    -------
    scores, indices : (nq, k) dask arrays (x's dtype, int64) backed by results
        held on the cluster; ``.compute()`` gathers them. Equal to
        ``deepret.knn`` on the whole array: indices exactly, scores bit for
        bit on workers with the same SIMD path (``deepret.simd_path()``).

    Raises
    ------
    TypeError, ValueError
        As ``deepret.knn``, and for x chunked along d (ValueError), a
        queries dtype other than x's (TypeError), a non-dask input (TypeError).
    RuntimeError, ConnectionError
        No client, or its scheduler unreachable.

    See Also
    --------
    deepret.knn : the same search in one process.
    faiss.IndexFlatIP : exact search, one machine.

    Examples
    --------
    >>> import numpy as np, dask.array as da, deepret, deepret.dask
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0")
    >>> x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> xd = da.from_array(x, chunks=(120, 16))            # uneven last chunk
    >>> scores, ids = deepret.dask.knn(xd, k=5)
    >>> bool((ids.compute() == deepret.knn(x, k=5)[1]).all())
    True
    >>> client.close()
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be 'ip' or 'l2', got {metric!r}")
    split_every = _arrays.positive_int("split_every", split_every)
    if split_every < 2:
        raise ValueError(f"split_every must be at least 2, got {split_every}")
    if queries is not None and exclude_self:
        raise ValueError("exclude_self needs queries=None (the queries are then x's own rows)")
    if queries is not None:
        _check_pair_shape(x, queries)
    tasks = _cluster.Tasks(_cluster.get_client(client))
    threads = _threads(num_threads)
    blocks = _cluster.row_blocks("x", x, tasks)
    if queries is None:
        _cluster.check_magnitude(blocks.largest, blocks.d, blocks.dtype, metric)
        k = _check_k(k, blocks.n - (1 if exclude_self else 0), exclude_self)
        lists = self_lists(tasks, blocks, k, metric, bool(exclude_self), threads, split_every)
        return _as_dask(tasks, lists, blocks.sizes(), k, blocks.dtype)
    qblocks = _cluster.row_blocks("queries", queries, tasks)
    _cluster.check_magnitude(max(blocks.largest, qblocks.largest), blocks.d, blocks.dtype, metric)
    k = _check_k(k, blocks.n, False)
    lists = query_lists(tasks, qblocks, blocks, k, metric, threads, split_every)
    return _as_dask(tasks, lists, qblocks.sizes(), k, blocks.dtype)


def _check_pair_shape(x, queries):
    """dtype and d of queries against x, before any work is submitted."""
    for name, array in (("x", x), ("queries", queries)):
        if not hasattr(array, "dtype") or not hasattr(array, "shape"):
            raise TypeError(f"{name} must be a dask.array.Array, got {type(array).__name__}")
    if queries.dtype != x.dtype:
        raise TypeError(f"queries must have x's dtype {x.dtype}, got {queries.dtype}")
    if len(queries.shape) == 2 and len(x.shape) == 2 and queries.shape[1] != x.shape[1]:
        raise ValueError(f"queries must have d = {x.shape[1]} columns like x, got shape {queries.shape}")
