"""_core.top_k: the per-column (and per-row) top-k that DiffusionIndex,
SpectralIndex, RegionalDiffusionIndex and the truncated search read their
rankings with, against numpy's stable descending argsort (ties by the
smaller position, NaN last)."""

import numpy as np
import pytest

import deepret
from deepret import _backend

core = _backend._core


def _reference(f, topk, axis):
    lists = f if axis == 0 else f.T
    order = np.argsort(-lists, axis=0, kind="stable")[:topk].T
    return np.take_along_axis(lists.T, order, axis=1), order


def _values(rng, n, m, dtype, kind):
    if kind == "ties":
        return rng.integers(-2, 3, (n, m)).astype(dtype)
    f = rng.standard_normal((n, m)).astype(dtype)
    if kind == "special":
        for value, share in ((np.nan, 0.2), (np.inf, 0.05), (-np.inf, 0.1), (-0.0, 0.1), (0.0, 0.1)):
            f[rng.random((n, m)) < share] = value
    return f


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["normal", "ties", "special"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_top_k_is_the_stable_descending_argsort(dtype, kind, threads):
    rng = np.random.default_rng([7, threads, len(kind)])
    for n, m in [(1, 1), (5, 1), (1, 40), (37, 3), (300, 17), (64, 200), (2000, 33)]:
        f = _values(rng, n, m, dtype, kind)
        for axis in (0, 1):
            items = n if axis == 0 else m
            for topk in sorted({1, min(2, items), items // 2 + 1, items}):
                scores, ids = core.top_k(f, topk, axis, threads)
                ref_scores, ref_ids = _reference(f, topk, axis)
                assert scores.dtype == f.dtype and ids.dtype == np.int64
                np.testing.assert_array_equal(ids, ref_ids)
                np.testing.assert_array_equal(scores, ref_scores)  # NaN == NaN here


def test_all_nan_lists_keep_the_first_positions():
    f = np.full((10, 3), np.nan, np.float32)
    f[4, 1] = -np.inf
    scores, ids = core.top_k(f, 3, 0, 2)
    np.testing.assert_array_equal(ids, [[0, 1, 2], [4, 0, 1], [0, 1, 2]])
    assert scores[1, 0] == -np.inf and np.isnan(scores[1, 1:]).all()


def test_top_k_rejects_what_it_cannot_read():
    f = np.zeros((4, 3), np.float32)
    for topk in (0, -1, 5):
        with pytest.raises(ValueError, match="topk"):
            core.top_k(f, topk, 0)
    with pytest.raises(ValueError, match="topk"):
        core.top_k(f, 4, 1)
    with pytest.raises(ValueError, match="axis"):
        core.top_k(f, 1, 2)
    with pytest.raises(ValueError, match="2-D"):
        core.top_k(np.zeros(4, np.float32), 1, 0)
    for bad in (np.zeros((4, 3), np.int64), np.zeros((4, 3), np.float16), np.zeros((3, 4), np.float32).T):
        with pytest.raises(TypeError):  # no silent conversion or copy: the callers pass C float arrays
            core.top_k(bad, 1, 0)


def test_diffusion_index_ranks_by_f_with_ties_by_id():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = deepret.DiffusionIndex(x, k=10, query_k=5)
    queries = x[:7] + 0.01
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    scores, ids = index.search(queries, topk=50)
    y = deepret.query_vector(x, queries, k=5, gamma=index.gamma)
    with pytest.warns(deepret.ConvergenceWarning):  # as search's own solve (it keeps last_info)
        f = deepret.diffuse(index.W, y.toarray(), index.alpha, index.tol, index.maxiter)
    ref_scores, ref_ids = _reference(f, 50, 0)
    # f has many exact zeros (items the diffusion never reached): ties by id
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_scores)
