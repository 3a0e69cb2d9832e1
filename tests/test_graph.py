"""deepret.graph_from_knn / knn_graph against a straightforward scipy.sparse
construction (the reference diffusion code's way): W from the kNN lists as a
sparse matrix, W.minimum(W.T) (mutual) or W.maximum(W.T), the power, and
D^-1/2 A D^-1/2 with zeros for isolated nodes. kNN lists come from a float64
numpy brute force here, so the tests need neither faiss nor deepret.knn.
"""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp

import deepret
from deepret import _backend

RTOL = {np.float32: 2e-5, np.float64: 1e-12}


# ---------------------------------------------------------------- references
def brute_knn(x, k, metric="ip"):
    """Each row's k nearest other rows in float64, best first (ties: smaller
    index), padded with (-inf or inf, -1) when there are fewer than k others."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if metric == "ip":
        key = -(x @ x.T)
    else:
        sq = (x * x).sum(1)
        key = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)
    key[np.arange(n), np.arange(n)] = np.inf
    if k < n - 1:  # the k smallest keys, then sorted by (key, index)
        part = np.sort(np.argpartition(key, k - 1, axis=1)[:, :k], axis=1)
        order = np.take_along_axis(part, np.argsort(np.take_along_axis(key, part, 1), axis=1,
                                                    kind="stable"), 1)
    else:
        order = np.argsort(key, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(key, order, 1)
    scores = -scores if metric == "ip" else scores
    indices = order.astype(np.int64)
    if k > n - 1:  # the point itself (and nothing else) is left: "no neighbour"
        indices[:, n - 1:] = -1
        scores[:, n - 1:] = -np.inf if metric == "ip" else np.inf
    return scores, indices


def reference_graph(scores, indices, gamma=3.0, mutual=True, metric="ip", normalize=True):
    """The scipy.sparse pipeline, in float64; duplicate columns keep their max."""
    scores = np.asarray(scores, dtype=np.float64)
    indices = np.asarray(indices, dtype=np.int64)
    n, k = scores.shape
    rows = np.repeat(np.arange(n), k)
    cols = indices.ravel()
    s = scores.ravel()
    if metric == "l2":
        s = 1 - s / 2
    keep = (cols >= 0) & (cols != rows)
    rows, cols, s = rows[keep], cols[keep], s[keep]
    a = np.maximum(s, 0) ** gamma
    # Duplicates: keep the largest (scipy would sum them).
    order = np.lexsort((-a, cols, rows))
    rows, cols, a = rows[order], cols[order], a[order]
    first = np.ones(len(rows), bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    W = sp.csr_array((a[first], (rows[first], cols[first])), shape=(n, n))
    A = W.minimum(W.T) if mutual else W.maximum(W.T)
    A = sp.csr_array(A)
    A.eliminate_zeros()
    if normalize:
        d = np.asarray(A.sum(axis=1)).ravel()
        with np.errstate(divide="ignore"):
            dinv = np.where(d > 0, 1 / np.sqrt(d), 0)
        A = sp.csr_array(sp.diags_array(dinv) @ A @ sp.diags_array(dinv))
        A.eliminate_zeros()
    A.sort_indices()
    return A


def check_graph(G, scores, dtype=None, **options):
    """G equals the reference: structure exactly, values to rounding; and is
    a well-formed symmetric CSR."""
    dtype = np.dtype(dtype or np.asarray(scores).dtype)
    n = np.asarray(scores).shape[0]
    assert isinstance(G, sp.csr_array)
    assert G.shape == (n, n)
    assert G.dtype == dtype
    assert G.has_sorted_indices
    assert G.indices.dtype == G.indptr.dtype == np.int32
    for i in range(0, n, max(1, n // 50)):  # sorted, no duplicates, no self loop
        row = G.indices[G.indptr[i]:G.indptr[i + 1]]
        assert np.all(np.diff(row) > 0)
        assert i not in row
    assert np.all(G.data != 0) and np.all(np.isfinite(G.data))
    T = sp.csr_array(G.T)
    T.sort_indices()
    assert np.array_equal(G.indptr, T.indptr) and np.array_equal(G.indices, T.indices)
    assert np.array_equal(G.data, T.data), "not symmetric bit for bit"
    R = reference_graph(scores, options.pop("indices"), **options)
    assert np.array_equal(G.indptr, R.indptr)
    assert np.array_equal(G.indices, R.indices)
    np.testing.assert_allclose(G.data, R.data, rtol=RTOL[dtype.type], atol=0)


def unit_rows(rng, n, d, dtype=np.float64):
    x = rng.standard_normal((n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(dtype)


OPTIONS = [dict(mutual=m, normalize=z) for m in (True, False) for z in (True, False)]
OPTION_IDS = [f"{'mutual' if o['mutual'] else 'union'}-{'norm' if o['normalize'] else 'raw'}" for o in OPTIONS]
SIZES = [(1, 1), (2, 1), (3, 2), (5, 4), (7, 3), (13, 12), (31, 5), (101, 10), (211, 50)]


# ---------------------------------------------------------------- values
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n,k", SIZES)
def test_matches_scipy_reference(n, k, dtype, metric, options):
    rng = np.random.default_rng([n, k])
    x = unit_rows(rng, n, 8)
    scores, indices = brute_knn(x, k, metric)
    scores = scores.astype(dtype)
    if n == 1:  # nothing but "no neighbour" entries: scores are placeholders
        scores[:] = 0
    G = deepret.graph_from_knn(scores, indices, metric=metric, **options)
    check_graph(G, scores, indices=indices, metric=metric, **options)


@pytest.mark.parametrize("gamma", [0.5, 1, 2, 2.5, 3, 7, 64, 100.0])
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_gamma(gamma, options):
    rng = np.random.default_rng(5)
    scores, indices = brute_knn(unit_rows(rng, 97, 4), 9)
    G = deepret.graph_from_knn(scores, indices, gamma=gamma, **options)
    check_graph(G, scores, indices=indices, gamma=gamma, **options)


def test_l2_equals_ip_on_unit_vectors():
    rng = np.random.default_rng(1)
    x = unit_rows(rng, 300, 16)
    s_ip, i_ip = brute_knn(x, 20, "ip")
    s_l2, i_l2 = brute_knn(x, 20, "l2")
    assert np.array_equal(i_ip, i_l2)
    a = deepret.graph_from_knn(s_ip, i_ip)
    b = deepret.graph_from_knn(s_l2, i_l2, metric="l2")
    assert np.array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-9)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_duplicate_points(options):
    """Many exact ties: the graph is defined by the given lists, whatever they are."""
    rng = np.random.default_rng(2)
    base = unit_rows(rng, 20, 3)
    x = base[rng.integers(0, 20, 200)]
    scores, indices = brute_knn(x, 15)
    G = deepret.graph_from_knn(scores, indices, **options)
    check_graph(G, scores, indices=indices, **options)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_negative_scores_minus_one_self_and_duplicates(options):
    rng = np.random.default_rng(3)
    n, k = 60, 8
    scores = rng.uniform(-1, 1, (n, k))
    indices = rng.integers(-1, n, (n, k))
    indices[::7, 0] = np.arange(0, n, 7)  # self loops: dropped
    indices[1::5, 2] = indices[1::5, 1]   # duplicate columns: max
    for dtype in (np.float32, np.float64):
        G = deepret.graph_from_knn(scores.astype(dtype), indices, **options)
        check_graph(G, scores.astype(dtype), indices=indices, **options)


def test_isolated_nodes_have_empty_rows():
    # 0 <-> 1 mutual; 2 lists 0 (not mutual); 3 lists 1 with a negative score;
    # 4 lists nobody (-1).
    scores = np.array([[0.9], [0.9], [0.5], [-0.5], [0.7]], np.float32)
    indices = np.array([[1], [0], [0], [1], [-1]])
    for normalize in (True, False):
        G = deepret.graph_from_knn(scores, indices, normalize=normalize)
        assert G.nnz == 2 and np.all(np.diff(G.indptr)[2:] == 0)
        assert np.all(np.isfinite(G.data))
        if normalize:
            np.testing.assert_allclose(G.toarray()[0, 1], 1.0, rtol=1e-6)
        U = deepret.graph_from_knn(scores, indices, mutual=False, normalize=normalize)
        assert U.nnz == 4 and np.diff(U.indptr)[3:].tolist() == [0, 0]
        assert np.all(np.isfinite(U.data))


def test_all_scores_negative_gives_empty_graph():
    scores = -np.ones((10, 3))
    indices = np.tile(np.arange(3), (10, 1))
    for mutual in (True, False):
        G = deepret.graph_from_knn(scores, indices, mutual=mutual)
        assert G.nnz == 0 and G.shape == (10, 10) and np.all(G.indptr == 0)


def test_empty_inputs():
    G = deepret.graph_from_knn(np.zeros((0, 5), np.float32), np.zeros((0, 5), np.int64))
    assert G.shape == (0, 0) and G.nnz == 0 and G.dtype == np.float32
    G = deepret.graph_from_knn(np.zeros((4, 0)), np.zeros((4, 0), np.int32))
    assert G.shape == (4, 4) and G.nnz == 0 and G.dtype == np.float64


def test_float32_underflow_drops_entries():
    # a = s^gamma underflows to 0 in float32 for one pair: it is dropped, not stored.
    scores = np.array([[1e-20, 0.5], [1e-20, 0.5], [0.5, 0.5]], np.float32)
    indices = np.array([[1, 2], [0, 2], [0, 1]])
    G = deepret.graph_from_knn(scores, indices, gamma=3)
    assert np.all(G.data != 0)
    assert G.nnz == 4 and G.dtype == np.float32  # the pair (0, 1) is gone
    assert sorted(zip(*G.nonzero())) == [(0, 2), (1, 2), (2, 0), (2, 1)]
    assert np.array_equal(G.toarray(), G.toarray().T)


def test_row_order_does_not_matter():
    rng = np.random.default_rng(4)
    scores, indices = brute_knn(unit_rows(rng, 150, 6), 12)
    perm = np.argsort(rng.random(indices.shape), axis=1)
    for mutual in (True, False):
        a = deepret.graph_from_knn(scores, indices, mutual=mutual)
        b = deepret.graph_from_knn(np.take_along_axis(scores, perm, 1),
                                   np.take_along_axis(indices, perm, 1), mutual=mutual)
        assert np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64, np.int16, np.uint32, np.uint64])
def test_index_dtypes_and_non_contiguous(index_dtype):
    rng = np.random.default_rng(6)
    scores, indices = brute_knn(unit_rows(rng, 120, 5), 10)
    ref = deepret.graph_from_knn(scores, indices)
    G = deepret.graph_from_knn(scores, indices.astype(index_dtype))
    assert np.array_equal(G.indices, ref.indices) and np.array_equal(G.data, ref.data)
    wide_s = np.zeros((120, 20)); wide_s[:, ::2] = scores
    wide_i = np.zeros((120, 20), np.int64); wide_i[:, ::2] = indices
    G = deepret.graph_from_knn(wide_s[:, ::2], wide_i[:, ::2])
    assert np.array_equal(G.indices, ref.indices) and np.array_equal(G.data, ref.data)
    G = deepret.graph_from_knn(scores.tolist(), indices.tolist())  # array_like
    assert np.array_equal(G.data, ref.data)


@pytest.mark.parametrize("mutual", [True, False])
def test_threads_give_identical_bits(mutual):
    rng = np.random.default_rng(7)
    scores, indices = brute_knn(unit_rows(rng, 2000, 8), 20)
    scores = scores.astype(np.float32)
    one = deepret.graph_from_knn(scores, indices, mutual=mutual, num_threads=1)
    for threads in (2, 3, None):
        G = deepret.graph_from_knn(scores, indices, mutual=mutual, num_threads=threads)
        assert np.array_equal(G.indptr, one.indptr) and np.array_equal(G.indices, one.indices)
        assert np.array_equal(G.data, one.data)


@pytest.mark.parametrize("bucket_width", [1, 7, 64, 0])
@pytest.mark.parametrize("mutual", [True, False])
def test_two_level_transpose(mutual, bucket_width):
    """The engine's two-level counting sort (used from n = 2^18 on) gives the
    bits of the one-level one: forced here on small inputs, with duplicates,
    self loops, -1 and negative scores, and any thread count."""
    rng = np.random.default_rng(12)
    n, k = 3001, 17
    scores = rng.uniform(-0.3, 1, (n, k)).astype(np.float32)
    indices = (np.arange(n)[:, None] + rng.integers(-40, 41, (n, k))) % n
    indices[::3, 5] = rng.integers(-1, n, len(indices[::3]))
    indices[1::4, 6] = indices[1::4, 7]
    one = _backend._core.graph_from_knn(scores, indices, 3.0, mutual, False, True, 1)
    for threads in (1, 2, 3):
        two = _backend._core.graph_from_knn(scores, indices, 3.0, mutual, False, True, threads,
                                            two_level_from=0, bucket_width=bucket_width)
        for a, b in zip(one, two):
            assert np.array_equal(a, b)
    G = deepret.graph_from_knn(scores, indices, mutual=mutual)
    check_graph(G, scores, indices=indices, mutual=mutual)


# ---------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def oxford_knn(oxford5k_descriptors):
    x = oxford5k_descriptors.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return brute_knn(x, 50)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_oxford5k(oxford_knn, options):
    scores, indices = oxford_knn
    assert scores.shape == (5063, 50)
    for dtype in (np.float32, np.float64):
        G = deepret.graph_from_knn(scores.astype(dtype), indices, **options)
        check_graph(G, scores.astype(dtype), indices=indices, **options)
        if options["normalize"]:  # spectral radius of D^-1/2 A D^-1/2 is 1
            assert G.sum(axis=1).max() < 60


# ---------------------------------------------------------------- bad input
def _good():
    return np.ones((4, 2), np.float32), np.array([[1, 2], [0, 2], [0, 1], [0, -1]])


@pytest.mark.parametrize("change,error,match", [
    (lambda s, i: (s[0], i), ValueError, r"scores must be 2-D \(n, k\), got shape \(2,\)"),
    (lambda s, i: (s, i[0]), ValueError, r"indices must be 2-D"),
    (lambda s, i: (s[:, :1], i), ValueError, "same shape"),
    (lambda s, i: (s[:3], i), ValueError, "same shape"),
    (lambda s, i: (s.astype(np.int32), i), TypeError, "scores must be float32 or float64"),
    (lambda s, i: (s.astype(np.float16), i), TypeError, "scores must be float32 or float64"),
    (lambda s, i: (s.astype(np.complex64), i), TypeError, "scores must be float32 or float64"),
    (lambda s, i: (s, i.astype(np.float64)), TypeError, "indices must be an integer array"),
    (lambda s, i: (s, np.where(i == 2, 4, i)), ValueError, r"indices must lie in \[-1, n\) = \[-1, 4\), got 4"),
    (lambda s, i: (s, np.where(i == 2, -2, i)), ValueError, r"got -2 at \[0, 1\]"),
    (lambda s, i: (s, np.where(i == 2, 4, i).astype(np.uint8)), ValueError, "indices must lie in"),
    (lambda s, i: (np.where(i == 0, np.nan, s).astype(np.float32), i), ValueError, "scores must be finite"),
    (lambda s, i: (np.where(i == 0, np.inf, s), i), ValueError, r"scores must be finite, got inf at \[1, 0\]"),
])
def test_bad_arrays(change, error, match):
    s, i = change(*_good())
    with pytest.raises(error, match=match):
        deepret.graph_from_knn(s, i)


def test_non_finite_score_of_ignored_entry_is_still_an_error():
    s, i = _good()
    s[3, 1] = np.nan  # its index is -1
    with pytest.raises(ValueError, match="finite"):
        deepret.graph_from_knn(s, i)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(gamma=0), ValueError, "gamma must be a finite number > 0, got 0"),
    (dict(gamma=-1.5), ValueError, "gamma"),
    (dict(gamma=float("nan")), ValueError, "gamma"),
    (dict(gamma=float("inf")), ValueError, "gamma"),
    (dict(gamma="3"), TypeError, "gamma must be a real number, got str"),
    (dict(gamma=True), TypeError, "gamma"),
    (dict(metric="cosine"), ValueError, "metric must be 'ip' or 'l2', got 'cosine'"),
    (dict(metric=None), ValueError, "metric"),
    (dict(num_threads=0), ValueError, "num_threads"),
    (dict(num_threads=1.5), ValueError, "num_threads"),
])
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        deepret.graph_from_knn(*_good(), **kwargs)


def test_numpy_integer_and_float_gamma_accepted():
    a = deepret.graph_from_knn(*_good(), gamma=np.int64(3))
    b = deepret.graph_from_knn(*_good(), gamma=np.float32(3.0))
    assert np.array_equal(a.data, b.data)


# ---------------------------------------------------------------- knn_graph
def _fake_knn_module(calls):
    module = types.ModuleType("deepret.knn")

    def knn(x, queries=None, k=10, metric="ip", exclude_self=False, *, progress=False, num_threads=None):
        calls.append(dict(k=k, metric=metric, exclude_self=exclude_self, progress=progress,
                          num_threads=num_threads))
        scores, indices = brute_knn(x, k, metric)
        return scores.astype(np.asarray(x).dtype), indices

    module.knn = knn
    return module


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_knn_graph_wiring(monkeypatch, metric):
    calls = []
    monkeypatch.setitem(sys.modules, "deepret.knn", _fake_knn_module(calls))
    x = unit_rows(np.random.default_rng(8), 90, 6, np.float32)
    G = deepret.knn_graph(x, k=7, gamma=2.0, mutual=False, metric=metric, normalize=False,
                          progress=True, num_threads=2)
    assert calls == [dict(k=7, metric=metric, exclude_self=True, progress=True, num_threads=2)]
    scores, indices = brute_knn(x, 7, metric)
    check_graph(G, scores.astype(np.float32), indices=indices, gamma=2.0, mutual=False, metric=metric,
                normalize=False)


def test_knn_graph_checks_options_before_searching(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "deepret.knn", _fake_knn_module(calls))
    with pytest.raises(ValueError, match="metric"):
        deepret.knn_graph(np.ones((3, 2)), k=1, metric="cos")
    with pytest.raises(ValueError, match="gamma"):
        deepret.knn_graph(np.ones((3, 2)), k=1, gamma=0)
    assert calls == []


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_knn_graph_with_deepret_knn(options):
    if not hasattr(deepret, "knn"):
        pytest.skip("deepret.knn is not in this build yet")
    x = unit_rows(np.random.default_rng(9), 400, 16)  # random data: no ties
    for dtype in (np.float32, np.float64):
        G = deepret.knn_graph(x.astype(dtype), k=10, **options)
        scores, indices = brute_knn(x, 10)
        check_graph(G, scores.astype(dtype), indices=indices, **options)


# ---------------------------------------------------------------- devices
class FakeCupyArray:
    __module__ = "cupy"
    __cuda_array_interface__ = {}

    def __init__(self, data):
        self._host = np.asarray(data)


def test_cupy_input_without_cuda_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", types.ModuleType("cupy"))
    monkeypatch.setattr(_backend, "_core_cuda", None)
    s, i = _good()
    with pytest.raises(deepret.CudaUnavailableError, match="deepret.graph_from_knn"):
        deepret.graph_from_knn(FakeCupyArray(s), FakeCupyArray(i))
    with pytest.raises(TypeError, match="both CuPy and host"):
        deepret.graph_from_knn(FakeCupyArray(s), i)


@pytest.mark.gpu
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_cupy_matches_cpu(options, dtype):
    xp = pytest.importorskip("cupy")
    if not deepret.has_cuda():
        pytest.skip("deepret has no CUDA engine or no GPU is visible")
    import cupyx.scipy.sparse

    rng = np.random.default_rng(10)
    cases = [brute_knn(unit_rows(rng, n, 8), k) for n, k in [(1, 1), (2, 1), (13, 12), (500, 20)]]
    scores = rng.uniform(-1, 1, (60, 8)); indices = rng.integers(-1, 60, (60, 8))
    indices[1::5, 2] = indices[1::5, 1]
    cases.append((scores, indices))
    for scores, indices in cases:
        scores = scores.astype(dtype)
        if len(scores) == 1:
            scores[:] = 0
        cpu = deepret.graph_from_knn(scores, indices, **options)
        gpu = deepret.graph_from_knn(xp.asarray(scores), xp.asarray(indices), **options)
        assert isinstance(gpu, cupyx.scipy.sparse.csr_matrix) and gpu.dtype == dtype
        assert np.array_equal(gpu.indptr.get(), cpu.indptr)
        assert np.array_equal(gpu.indices.get(), cpu.indices)
        np.testing.assert_allclose(gpu.data.get(), cpu.data, rtol=RTOL[np.dtype(dtype).type])
    with pytest.raises(ValueError, match="indices must lie"):
        deepret.graph_from_knn(xp.ones((3, 1), dtype), xp.full((3, 1), 3))
