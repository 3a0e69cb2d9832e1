"""The engine pieces a split all-vs-all is built from (deepret.dask uses
them; here without dask): search_pair's two directions, knn_merge, raw L2
keys and knn_finish_distances, graph_block and normalize_block. Compared
with the single-call engine on the whole array."""

from __future__ import annotations

import numpy as np
import pytest

import deepret
from deepret import _backend
from deepret.graph import _csr_cpu

core = _backend._core
METRIC = {"ip": 0, "l2": 1}


def database(x):
    return (core.KnnDatabaseF32 if x.dtype == np.float32 else core.KnnDatabaseF64)(x, 0)


def split_knn(x, cuts, k, metric):
    """deepret.knn(x, k, exclude_self=True) from block pieces, as deepret.dask does."""
    starts = np.r_[0, cuts, len(x)]
    blocks = [x[a:b] for a, b in zip(starts[:-1], starts[1:])]
    lists = [[] for _ in blocks]
    for i, block in enumerate(blocks):
        local = min(k, len(block) - 1)
        if local >= 1:
            s = np.empty((len(block), local), x.dtype)
            ids = np.empty((len(block), local), np.int64)
            database(block).search_self(block, local, METRIC[metric], True, s, ids, 0, None, raw=True)
            lists[i].append((s, ids + starts[i]))
    for i in range(len(blocks)):
        for j in range(i + 1, len(blocks)):
            a, b = blocks[i], blocks[j]
            ka, kb = min(k, len(b)), min(k, len(a))
            sa, ia = np.empty((len(a), ka), x.dtype), np.empty((len(a), ka), np.int64)
            sb, ib = np.empty((len(b), kb), x.dtype), np.empty((len(b), kb), np.int64)
            database(b).search_pair(a, b, ka, kb, METRIC[metric], sa, ia, sb, ib, 0)
            lists[i].append((sa, ia + starts[j]))
            lists[j].append((sb, ib + starts[i]))
    out_s, out_i = [], []
    for i, block in enumerate(blocks):
        s, ids = lists[i][0]
        for s2, i2 in lists[i][1:]:
            width = min(k, s.shape[1] + s2.shape[1])
            ms, mi = np.empty((len(block), width), x.dtype), np.empty((len(block), width), np.int64)
            core.knn_merge(s, ids, s2, i2, width, ms, mi, 0)
            s, ids = ms, mi
        if metric == "l2":
            core.knn_finish_distances(s, block, 0)
        out_s.append(s)
        out_i.append(ids)
    return np.concatenate(out_s), np.concatenate(out_i), starts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("cuts", [[700], [3, 1200, 1201], [2100]])
def test_split_knn_equals_whole(dtype, metric, cuts):
    # Blocks of one row, of fewer rows than k, and of several 512-row tiles.
    rng = np.random.default_rng(len(cuts))
    x = rng.standard_normal((2400, 16)).astype(dtype)
    scores, ids, _ = split_knn(x, cuts, 12, metric)
    want_scores, want_ids = deepret.knn(x, k=12, metric=metric, exclude_self=True)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)


def test_split_knn_ties():
    rng = np.random.default_rng(2)
    x = rng.integers(-1, 2, size=(300, 3)).astype(np.float32)  # exact scores, many ties
    for metric in ("ip", "l2"):
        scores, ids, _ = split_knn(x, [17, 150], 20, metric)
        want_scores, want_ids = deepret.knn(x, k=20, metric=metric, exclude_self=True)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(scores, want_scores)


@pytest.mark.parametrize("mutual", [True, False])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_graph_blocks_equal_graph_from_knn(mutual, metric):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((500, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scores, ids = deepret.knn(x, k=9, metric=metric, exclude_self=True)
    starts = np.array([0, 130, 131, 500])
    pieces, degrees = [], []
    for a, b in zip(starts[:-1], starts[1:]):
        sources = np.repeat(np.arange(500), 9)
        targets = ids.ravel()
        inside = (targets >= a) & (targets < b)
        data, cols, indptr, deg = core.graph_block(
            np.ascontiguousarray(scores[a:b]), np.ascontiguousarray(ids[a:b]), int(a), 500,
            np.ascontiguousarray(sources[inside]), np.ascontiguousarray(targets[inside]),
            np.ascontiguousarray(scores.ravel()[inside]), 3.0, mutual, metric == "l2")
        pieces.append((data, cols, indptr))
        degrees.append(deg)
    A = _csr_cpu(np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces]),
                 np.concatenate([[0]] + [p[2][1:] + sum(len(q[0]) for q in pieces[:i])
                                         for i, p in enumerate(pieces)]), 500)
    want_A = deepret.graph_from_knn(scores, ids, mutual=mutual, metric=metric, normalize=False)
    np.testing.assert_array_equal(A.indptr, want_A.indptr)
    np.testing.assert_array_equal(A.indices, want_A.indices)
    np.testing.assert_array_equal(A.data, want_A.data)
    # degrees: each row summed in double in column order (a sequential cumsum)
    row_sums = [np.cumsum(want_A.data[lo:hi].astype(np.float64))[-1] if hi > lo else 0.0
                for lo, hi in zip(want_A.indptr[:-1], want_A.indptr[1:])]
    np.testing.assert_array_equal(np.concatenate(degrees), row_sums)
    all_degrees = np.concatenate(degrees)
    want_W = deepret.graph_from_knn(scores, ids, mutual=mutual, metric=metric)
    for (data, cols, indptr), a, b in zip(pieces, starts[:-1], starts[1:]):
        data, cols, indptr = data.copy(), cols.copy(), indptr.copy()
        nnz = core.normalize_block(indptr, cols, data, int(a), all_degrees)
        lo, hi = want_W.indptr[a], want_W.indptr[b]
        np.testing.assert_array_equal(data[:nnz], want_W.data[lo:hi])
        np.testing.assert_array_equal(cols[:nnz], want_W.indices[lo:hi])


def test_graph_block_rejects_pairs_outside_the_block():
    s = np.ones((2, 1), np.float32)
    i = np.array([[1], [0]], np.int64)
    with pytest.raises(ValueError, match="in-pair"):
        core.graph_block(s, i, 0, 4, np.array([3], np.int64), np.array([3], np.int64),
                         np.ones(1, np.float32), 3.0, True, False)
