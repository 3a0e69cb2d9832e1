"""deepret.knn against a float64 numpy brute force: scores to rounding, index
sets equal except where scores tie, ties broken by the smaller index."""

import numpy as np
import pytest

import deepret

RNG_SEED = 20261127


def brute_force(x, queries, k, metric, exclude_self):
    """Reference in float64: full score matrix, stable sort (smaller index first on ties)."""
    x64, q64 = x.astype(np.float64), queries.astype(np.float64)
    ip = q64 @ x64.T
    if metric == "ip":
        key = -ip
    else:
        key = (q64**2).sum(1)[:, None] + (x64**2).sum(1)[None, :] - 2 * ip
    if exclude_self:
        np.fill_diagonal(key, np.inf)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(key, order, axis=1)
    return (-scores if metric == "ip" else np.maximum(scores, 0)), order, key


def tolerance(x, queries, dtype):
    """Rounding bound for one score: d products of magnitude up to |q||x|."""
    eps = np.finfo(dtype).eps
    d = x.shape[1]
    scale = np.abs(queries).max() * np.abs(x).max() * d + (queries**2).sum(1).max() + (x**2).sum(1).max()
    return 4 * d * eps * scale + np.finfo(dtype).tiny


def check_against_reference(x, queries, k, metric, exclude_self, scores, indices):
    ref_scores, _, key = brute_force(x, queries if queries is not None else x, k, metric, exclude_self)
    q = queries if queries is not None else x
    tol = tolerance(x, q, x.dtype)
    assert scores.shape == indices.shape == (q.shape[0], k)
    assert scores.dtype == x.dtype and indices.dtype == np.int64
    # Scores are the k best to rounding.
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=tol)
    # Each returned index carries its own score, and is among the k best up to ties.
    own = np.take_along_axis(key, indices, axis=1)
    own = -own if metric == "ip" else np.maximum(own, 0)
    np.testing.assert_allclose(scores, own, rtol=0, atol=tol)
    kth = ref_scores[:, -1:]
    if metric == "ip":
        must_have = -key > kth + tol  # clearly better than the k-th: must be returned
    else:
        must_have = key < kth - tol
    for row in range(q.shape[0]):
        assert set(np.flatnonzero(must_have[row])) <= set(indices[row].tolist())
        assert len(set(indices[row].tolist())) == k
        if exclude_self:
            assert row not in indices[row]
    # Best first: monotone scores, and equal scores in increasing index order.
    step = np.diff(scores, axis=1)
    assert (step <= 0).all() if metric == "ip" else (step >= 0).all()
    ties = step == 0
    assert (np.diff(indices, axis=1)[ties] > 0).all()


CASES = [
    # n, d, k
    (1, 1, 1),
    (2, 3, 2),
    (7, 1, 3),
    (13, 5, 13),
    (97, 16, 10),
    (101, 17, 1),
    (257, 33, 50),
    (1000, 64, 20),
    (2003, 128, 50),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("n,d,k", CASES)
def test_all_vs_all_matches_brute_force(simd, n, d, k, metric, dtype):
    rng = np.random.default_rng([RNG_SEED, n, d, k])
    x = rng.standard_normal((n, d)).astype(dtype)
    scores, indices = deepret.knn(x, k=k, metric=metric)
    check_against_reference(x, None, k, metric, False, scores, indices)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("n,d,k", [(2, 3, 1), (13, 5, 12), (300, 24, 50), (1500, 96, 7), (2100, 8, 30)])
def test_exclude_self_matches_brute_force(simd, n, d, k, metric, dtype):
    rng = np.random.default_rng([RNG_SEED, 1, n, d, k])
    x = rng.standard_normal((n, d)).astype(dtype)
    scores, indices = deepret.knn(x, k=k, metric=metric, exclude_self=True)
    check_against_reference(x, None, k, metric, True, scores, indices)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("nq", [1, 3, 95, 96, 97, 400])
def test_separate_queries_match_brute_force(simd, nq, metric, dtype):
    rng = np.random.default_rng([RNG_SEED, 2, nq])
    x = rng.standard_normal((3001, 40)).astype(dtype)
    queries = rng.standard_normal((nq, 40)).astype(dtype)
    scores, indices = deepret.knn(x, queries, k=25, metric=metric)
    check_against_reference(x, queries, 25, metric, False, scores, indices)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_exact_ties_on_integer_data_break_by_smaller_index(simd, metric):
    # Small integers: every product and sum is exact in float32, so scores tie
    # exactly and the order must be the stable one, index for index.
    rng = np.random.default_rng(RNG_SEED + 3)
    base = rng.integers(-2, 3, size=(40, 6))
    x = np.concatenate([base, base, base[:7]]).astype(np.float32)  # duplicate points
    for exclude_self in (False, True):
        k = 20
        scores, indices = deepret.knn(x, k=k, metric=metric, exclude_self=exclude_self)
        ref_scores, ref_indices, _ = brute_force(x, x, k, metric, exclude_self)
        np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))
        np.testing.assert_array_equal(indices, ref_indices)


def test_k_equals_n_returns_every_row_once():
    x = np.random.default_rng(RNG_SEED + 4).standard_normal((50, 4))
    _, indices = deepret.knn(x, k=50)
    assert (np.sort(indices, axis=1) == np.arange(50)).all()
    _, indices = deepret.knn(x, k=49, exclude_self=True)
    assert all(set(row) == set(range(50)) - {i} for i, row in enumerate(indices.tolist()))


def test_threads_batches_and_paths_give_identical_results(simd):
    rng = np.random.default_rng(RNG_SEED + 5)
    x = rng.standard_normal((2500, 32)).astype(np.float32)
    one = deepret.knn(x, k=30, exclude_self=True, num_threads=1)
    two = deepret.knn(x, k=30, exclude_self=True, num_threads=2)
    bar = deepret.knn(x, k=30, exclude_self=True, progress=True)
    for other in (two, bar):
        np.testing.assert_array_equal(one[0], other[0])
        np.testing.assert_array_equal(one[1], other[1])
    # Few queries split the database across threads instead: same answer.
    few = deepret.knn(x, x[:5], k=30, num_threads=2)
    all_rows = deepret.knn(x, k=30, num_threads=2)
    np.testing.assert_array_equal(few[0], all_rows[0][:5])
    np.testing.assert_array_equal(few[1], all_rows[1][:5])


def test_real_oxford5k_descriptors(oxford5k_descriptors):
    x = oxford5k_descriptors[:2000]
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    scores, indices = deepret.knn(x, k=50, exclude_self=True)
    check_against_reference(x, None, 50, "ip", True, scores, indices)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(k=0), ValueError, "k must be at least 1"),
        (dict(k=11), ValueError, "larger than n = 10"),
        (dict(k=10, exclude_self=True), ValueError, "larger than n - 1"),
        (dict(k=2.5), TypeError, "k must be an int"),
        (dict(k=True), TypeError, "k must be an int"),
        (dict(metric="cosine"), ValueError, "metric must be 'ip' or 'l2'"),
        (dict(num_threads=0), ValueError, "num_threads"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    x = np.ones((10, 3), np.float32)
    with pytest.raises(error, match=message):
        deepret.knn(x, **{"k": 3, **kwargs})


def test_bad_arrays():
    x = np.ones((10, 3), np.float32)
    with pytest.raises(ValueError, match=r"x must be 2-D \(n, d\), got shape \(3,\)"):
        deepret.knn(np.ones(3, np.float32), k=1)
    with pytest.raises(ValueError, match="x must be non-empty"):
        deepret.knn(np.ones((0, 3), np.float32), k=1)
    with pytest.raises(TypeError, match="x must be float32 or float64, got int64"):
        deepret.knn(np.ones((4, 3), np.int64), k=1)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        deepret.knn(bad, k=1)
    with pytest.raises(ValueError, match="queries contains NaN"):
        deepret.knn(x, bad, k=1)
    with pytest.raises(TypeError, match="queries must have x's dtype"):
        deepret.knn(x, x.astype(np.float64), k=1)
    with pytest.raises(ValueError, match="queries must have d = 3"):
        deepret.knn(x, np.ones((2, 4), np.float32), k=1)
    with pytest.raises(ValueError, match="exclude_self needs queries=None"):
        deepret.knn(x, x, k=1, exclude_self=True)


def test_non_contiguous_inputs():
    rng = np.random.default_rng(RNG_SEED + 6)
    big = rng.standard_normal((400, 20))
    x = big[::2, ::3]
    queries = big[1::7, ::3][::-1]
    scores, indices = deepret.knn(x, queries, k=9, metric="l2")
    check_against_reference(np.ascontiguousarray(x), np.ascontiguousarray(queries), 9, "l2", False,
                            scores, indices)


def _host(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_backends_agree_with_brute_force(xp, metric, dtype, exclude_self):
    # numpy runs the CPU engine; cupy (on a GPU machine) the CUDA engine.
    rng = np.random.default_rng(RNG_SEED + 7)
    x = rng.standard_normal((3000, 72)).astype(dtype)
    scores, indices = deepret.knn(xp.asarray(x), k=40, metric=metric, exclude_self=exclude_self)
    assert type(scores) is type(xp.asarray(x))
    check_against_reference(x, None, 40, metric, exclude_self, _host(scores), _host(indices))
    queries = rng.standard_normal((77, 72)).astype(dtype)
    if not exclude_self:
        scores, indices = deepret.knn(xp.asarray(x), xp.asarray(queries), k=1024 if xp is not np else 40,
                                      metric=metric)
        k = scores.shape[1]
        check_against_reference(x, queries, k, metric, False, _host(scores), _host(indices))


def test_gpu_k_limit(xp):
    if xp is np:
        pytest.skip("the CPU engine has no k limit below n")
    x = xp.ones((2000, 4), dtype=xp.float32)
    with pytest.raises(ValueError, match="GPU top-k's limit of 1024"):
        deepret.knn(x, k=1025)
