"""deepret.diffuse / katz / query_vector / DiffusionIndex against scipy:
spsolve on (I - alpha W) when converged, scipy's CG iterates otherwise, and
the Oxford5k mAP targets of issue #5."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spl

import deepret
from deepret import evaluate

SEED = 51


def normalized_graph(n, density, seed, isolated=(), blocks=1, dtype=np.float64):
    """A random symmetric normalized affinity D^-1/2 A D^-1/2; optional
    isolated nodes (empty rows) and disconnected diagonal blocks."""
    rng = np.random.default_rng(seed)
    size = n // blocks
    parts = [sp.random(size, size, density=density, random_state=rng) for _ in range(blocks)]
    A = sp.block_diag(parts + ([sp.csr_matrix((n - size * blocks, n - size * blocks))] if n > size * blocks else []))
    A = sp.csr_matrix(A + A.T)
    A.setdiag(0)
    A = A.tolil()
    for i in isolated:
        A[i, :] = 0
        A[:, i] = 0
    A = sp.csr_matrix(A)
    A.eliminate_zeros()
    degrees = np.asarray(A.sum(axis=1)).ravel()
    scale = np.zeros_like(degrees)
    np.divide(1.0, np.sqrt(degrees), out=scale, where=degrees > 0)
    return sp.csr_array(sp.diags(scale) @ A @ sp.diags(scale)).astype(dtype)


def scipy_cg(W, y, alpha, tol, maxiter):
    """scipy's CG on I - alpha W, column by column: (solutions, iterations)."""
    M = sp.eye(W.shape[0], dtype=W.dtype) - alpha * W
    columns, counts = [], []
    for c in range(y.shape[1]):
        count = [0]
        x, _ = spl.cg(M, y[:, c], rtol=tol, atol=0.0, maxiter=maxiter,
                      callback=lambda xk: count.__setitem__(0, count[0] + 1))
        columns.append(x)
        counts.append(count[0])
    return np.stack(columns, axis=1), np.array(counts)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", [1, 7, 500])
@pytest.mark.parametrize("alpha", [0.5, 0.9, 0.99])
def test_converged_agrees_with_spsolve(dtype, m, alpha):
    W = normalized_graph(301, 0.03, SEED + m, isolated=(5, 77), blocks=3, dtype=dtype)
    rng = np.random.default_rng(SEED)
    y = rng.random((301, m)).astype(dtype)
    zero = m > 1
    if zero:
        y[:, 0] = 0  # a zero column: solution 0, no iteration
    # float32 cannot resolve residuals much below its eps times the condition
    # number (1 + alpha) / (1 - alpha): ask for what it can reach.
    tol = 1e-10 if dtype == np.float64 else 1e-6
    f, info = deepret.diffuse(W, y, alpha, tol=tol, maxiter=2000, return_info=True)
    assert f.dtype == dtype and f.shape == y.shape
    exact = spl.spsolve(sp.csc_matrix(sp.eye(301) - alpha * W.astype(np.float64)), y.astype(np.float64))
    exact = exact.reshape(301, m)
    scale = np.abs(exact).max(axis=0) + (np.abs(exact).max(axis=0) == 0)
    error = np.abs(f - exact).max(axis=0) / scale
    assert (error < 1e-5).all()
    # info.residuals is the true |y - (I - alpha W) f| / |y|; in float32 it
    # cannot go much below eps times the condition number (1 + alpha) /
    # (1 - alpha), whatever the recursive residual that stopped CG says.
    floor = 0.0 if dtype == np.float64 else 2 * np.finfo(dtype).eps * (1 + alpha) / (1 - alpha)
    assert (info.residuals < tol + floor).all()
    if zero:
        assert info.iterations[0] == 0 and info.residuals[0] == 0
        np.testing.assert_array_equal(f[:, 0], 0)


@pytest.mark.parametrize("maxiter", [1, 2, 3, 7, 20])
def test_iterates_match_scipy_cg(maxiter):
    W = normalized_graph(400, 0.02, SEED, isolated=(3,), blocks=2)
    rng = np.random.default_rng(SEED + 1)
    y = rng.standard_normal((400, 6))
    y[:, 2] = 0
    y[:, 4] = 0
    y[10, 4] = 1.0  # one-hot, as a query's y can be
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepret.ConvergenceWarning)
        f, info = deepret.diffuse(W, y, 0.95, tol=1e-6, maxiter=maxiter, return_info=True)
    reference, counts = scipy_cg(W, y, 0.95, 1e-6, maxiter)
    np.testing.assert_allclose(f, reference, rtol=0, atol=1e-10 * np.abs(reference).max())
    np.testing.assert_array_equal(info.iterations, counts)


def test_float32_iterates_close_to_scipy():
    W = normalized_graph(300, 0.03, SEED + 2, dtype=np.float32)
    y = np.random.default_rng(SEED + 2).random((300, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepret.ConvergenceWarning)
        f = deepret.diffuse(W, y, 0.99, maxiter=20)
    reference, _ = scipy_cg(W.astype(np.float64), y.astype(np.float64), 0.99, 1e-6, 20)
    assert np.abs(f - reference).max() / np.abs(reference).max() < 1e-5


def test_vector_and_sparse_right_hand_sides():
    W = normalized_graph(200, 0.05, SEED + 3)
    y = np.zeros(200)
    y[[4, 9, 150]] = [1.0, 0.5, 0.25]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepret.ConvergenceWarning)
        f_vector = deepret.diffuse(W, y)
        f_sparse = deepret.diffuse(W, sp.csc_array(y[:, None]))
    assert f_vector.shape == (200,)
    assert f_sparse.shape == (200, 1)
    np.testing.assert_array_equal(f_vector, f_sparse[:, 0])


def test_warning_only_when_maxiter_stops_above_tol():
    W = normalized_graph(200, 0.05, SEED + 4)
    y = np.random.default_rng(SEED).random(200)
    with pytest.warns(deepret.ConvergenceWarning, match="ended above tol=1e-06 after at most maxiter=2"):
        deepret.diffuse(W, y, 0.99, maxiter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", deepret.ConvergenceWarning)
        deepret.diffuse(W, y, 0.5, tol=1e-6, maxiter=500)


@pytest.mark.parametrize("m", [9, 41])  # float64 panels of 8 columns: 2 and 6 of them
def test_threads_do_not_change_the_answer(m):
    W = normalized_graph(3000, 0.002, SEED + 5)
    y = np.random.default_rng(SEED).random((3000, m))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepret.ConvergenceWarning)
        one = deepret.diffuse(W, y, num_threads=1)
        for threads in (2, 4):  # panels per thread, and panels left over for row blocks
            np.testing.assert_array_equal(deepret.diffuse(W, y, num_threads=threads), one)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [1, 7, 16, 37])
def test_spmm_matches_scipy(m, dtype, index_dtype):
    """The batched product (column blocks of one cache line, leftovers one by one)."""
    W = sp.csr_array(normalized_graph(500, 0.03, SEED + m, isolated=(4,), dtype=dtype))
    x = np.random.default_rng(SEED).random((500, m)).astype(dtype)
    out = np.empty_like(x)
    deepret._backend._core.spmm(500, 500, W.indptr.astype(index_dtype), W.indices.astype(index_dtype),
                                W.data, x, out, 2)
    np.testing.assert_allclose(out, W @ x, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_locality_order_is_a_permutation_used_only_where_it_helps():
    path = sp.diags([np.ones(1999), np.ones(1999)], [-1, 1], format="csr")  # a path graph ...
    shuffle = np.random.default_rng(SEED).permutation(2000)
    path = sp.csr_matrix(path[shuffle][:, shuffle])  # ... in a random order
    order = deepret.locality_order(path)
    np.testing.assert_array_equal(np.sort(order), np.arange(2000))
    position = np.empty_like(order)
    position[order] = np.arange(2000)
    rows, cols = path.nonzero()
    assert np.abs(position[rows] - position[cols]).max() <= 2
    assert deepret.diffusion._auto_order(path) is not None
    expander = normalized_graph(20000, 0.0005, SEED)  # random: no order makes it local
    assert deepret.diffusion._auto_order(expander) is None
    y = np.random.default_rng(SEED).random((2000, 9))
    W = normalized_graph(2000, 0.01, SEED + 9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepret.ConvergenceWarning)
        plain = deepret.diffuse(W, y, order=None)
        for order in ("auto", deepret.locality_order(W)):
            np.testing.assert_allclose(deepret.diffuse(W, y, order=order), plain, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="permutation"):
        deepret.diffuse(W, y, order=np.zeros(2000, dtype=np.int64))


def test_katz_solves_the_centrality_system():
    W = normalized_graph(250, 0.04, SEED + 6, isolated=(0,))
    g = deepret.katz(W, alpha=0.9, tol=1e-10, maxiter=1000)
    exact = spl.spsolve(sp.csc_matrix(sp.eye(250) - 0.9 * W), np.full(250, 0.1))
    np.testing.assert_allclose(g, exact, rtol=1e-7)
    assert g[0] == pytest.approx(0.1)  # an isolated node keeps (1 - alpha)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda W, y: deepret.diffuse(W, y, alpha=0.0), ValueError, r"alpha must be in \(0, 1\)"),
        (lambda W, y: deepret.diffuse(W, y, alpha=1.0), ValueError, r"alpha must be in \(0, 1\)"),
        (lambda W, y: deepret.diffuse(W, y, alpha=-0.5), ValueError, r"alpha must be in \(0, 1\)"),
        (lambda W, y: deepret.diffuse(W, y[:-1]), ValueError, r"y must have shape \(10,\) or \(10, m\)"),
        (lambda W, y: deepret.diffuse(W[:, :-1], y), ValueError, "W must be square"),
        (lambda W, y: deepret.diffuse(W.toarray(), y), TypeError, "W must be a scipy.sparse"),
        (lambda W, y: deepret.diffuse(W, y, maxiter=0), ValueError, "maxiter must be at least 1"),
        (lambda W, y: deepret.diffuse(W, y, tol=0), ValueError, "tol must be positive"),
        (lambda W, y: deepret.diffuse(W, np.full(10, np.nan)), ValueError, "y contains NaN"),
        (lambda W, y: deepret.diffuse(W, y.astype(complex)), TypeError, "y must be real"),
    ],
)
def test_bad_input(call, error, message):
    W = normalized_graph(10, 0.3, SEED)
    with pytest.raises(error, match=message):
        call(sp.csr_array(W), np.ones(10))


def test_query_vector_marks_the_nearest_items():
    rng = np.random.default_rng(SEED + 7)
    x = rng.standard_normal((500, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    queries = x[:3] + 0.01
    y = deepret.query_vector(x, queries, k=10, gamma=3.0)
    assert y.shape == (500, 3)
    scores, ids = deepret.knn(x, queries, k=10)
    for q in range(3):
        column = y[:, [q]].toarray().ravel()
        assert set(np.flatnonzero(column)) <= set(ids[q])
        np.testing.assert_allclose(column[ids[q]], np.maximum(scores[q], 0) ** 3, rtol=1e-6)


@pytest.fixture(scope="module")
def oxford():
    data = deepret.datasets.load_oxford5k()
    x = data.descriptors / np.linalg.norm(data.descriptors, axis=1, keepdims=True)
    return x, x[data.query_indices], data.gnd


def test_oxford5k_defaults_beat_cosine_and_best_setting_reaches_043(oxford):
    x, queries, gnd = oxford
    cosine = evaluate.compute_map(np.argsort(-(x @ queries.T), axis=0, kind="stable"), gnd)[0]
    assert round(cosine, 3) == 0.403
    _, ids = deepret.DiffusionIndex(x).search(queries, topk=len(x))
    defaults = evaluate.compute_map(ids.T, gnd)[0]
    assert defaults > cosine
    _, ids = deepret.DiffusionIndex(x, k=30, alpha=0.9).search(queries, topk=len(x))
    assert evaluate.compute_map(ids.T, gnd)[0] >= 0.43


def test_truncation_to_the_whole_database_is_plain_diffusion(oxford):
    x, queries, _ = oxford
    x, queries = x[:1500], queries[:5]
    plain = deepret.DiffusionIndex(x, k=20, alpha=0.9, tol=1e-8, maxiter=300)
    truncated = deepret.DiffusionIndex(x, k=20, alpha=0.9, truncate=len(x), tol=1e-8, maxiter=300)
    scores, ids = plain.search(queries, topk=50)
    t_scores, t_ids = truncated.search(queries, topk=50)
    np.testing.assert_allclose(t_scores, scores, rtol=1e-4, atol=1e-7)
    assert (t_ids[:, :20] == ids[:, :20]).mean() > 0.95
    with pytest.raises(ValueError, match="topk .* must be at most truncate"):
        deepret.DiffusionIndex(x, truncate=30).search(queries, topk=31)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_matches_cpu(dtype):
    cp = pytest.importorskip("cupy")
    cupyx_sparse = pytest.importorskip("cupyx.scipy.sparse")
    if not deepret.has_cuda():
        pytest.skip("deepret has no CUDA engine or no GPU is visible")
    W = normalized_graph(2000, 0.005, SEED + 9, isolated=(1,), dtype=dtype)
    y = np.random.default_rng(SEED).random((2000, 33)).astype(dtype)
    y[:, 3] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepret.ConvergenceWarning)
        f_cpu, info_cpu = deepret.diffuse(W, y, 0.95, return_info=True)
        f_gpu, info_gpu = deepret.diffuse(cupyx_sparse.csr_matrix(sp.csr_matrix(W)), cp.asarray(y), 0.95,
                                          return_info=True)
    assert type(f_gpu) is cp.ndarray
    np.testing.assert_allclose(f_gpu.get(), f_cpu, rtol=0, atol=(1e-4 if dtype == np.float32 else 1e-10))
    np.testing.assert_array_equal(info_gpu.iterations.get(), info_cpu.iterations)


@pytest.mark.gpu
def test_gpu_diffusion_index_and_query_vector_match_cpu():
    # The same DiffusionIndex code on CuPy arrays: graph, right-hand sides,
    # CG and ranking on the GPU, the result the CPU engine's.
    cp = pytest.importorskip("cupy")
    if not deepret.has_cuda():
        pytest.skip("deepret has no CUDA engine or no GPU is visible")
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((3000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    queries = x[:40] + 0.05 * rng.standard_normal((40, 32)).astype(np.float32)
    y_cpu = deepret.query_vector(x, queries, k=10)
    y_gpu = deepret.query_vector(cp.asarray(x), cp.asarray(queries), k=10)
    np.testing.assert_allclose(y_gpu.get().toarray(), y_cpu.toarray(), rtol=1e-5, atol=1e-7)
    cpu = deepret.DiffusionIndex(x, k=20).search(queries, topk=50)
    gpu = deepret.DiffusionIndex(cp.asarray(x), k=20).search(cp.asarray(queries), topk=50)
    assert type(gpu[0]) is cp.ndarray and type(gpu[1]) is cp.ndarray
    np.testing.assert_allclose(gpu[0].get(), cpu[0], rtol=1e-4, atol=1e-6)
    agree = np.mean([len(set(a) & set(b)) / 50 for a, b in zip(gpu[1].get(), cpu[1])])
    assert agree > 0.99, agree  # ranks may swap only where scores tie to float32 rounding
    W = deepret.knn_graph(x, k=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepret.ConvergenceWarning)
        g_cpu = deepret.katz(W)
        g_gpu = deepret.katz(deepret.knn_graph(cp.asarray(x), k=20))
    assert type(g_gpu) is cp.ndarray
    np.testing.assert_allclose(g_gpu.get(), g_cpu, rtol=1e-4, atol=1e-6)
    with pytest.raises(TypeError, match="CuPy"):
        deepret.DiffusionIndex(cp.asarray(x), k=20).search(queries, topk=5)  # host queries: no silent copy
    with pytest.raises(ValueError, match="CPU engine only"):
        deepret.DiffusionIndex(cp.asarray(x), k=20, truncate=100)


def test_gpu_input_without_cuda_engine_or_mixed(monkeypatch):
    class FakeCupyArray:
        __module__ = "cupy"
        __cuda_array_interface__ = {}
    FakeCupyArray.__module__ = "cupy"
    monkeypatch.setattr(deepret._backend, "_core_cuda", None)
    W = normalized_graph(10, 0.3, SEED)
    with pytest.raises(deepret.CudaUnavailableError):
        deepret.diffuse(W, FakeCupyArray())


@pytest.mark.parametrize("n, topk", [(50, 3), (1000, 10), (1000, 200), (7, 7)])
def test_top_selection_equals_a_stable_descending_sort(n, topk):
    from deepret.diffusion import _top

    rng = np.random.default_rng(n + topk)
    f = rng.integers(0, 6, size=(n, 5)).astype(np.float32)  # many ties, also at the cut
    f[:, 4] = 0  # a column of equal scores
    scores, ids = _top(f, topk)
    expected = np.argsort(-f, axis=0, kind="stable")[:topk].T
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(scores, np.take_along_axis(f.T, expected, axis=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [1, 5, 16, 37])
def test_every_simd_path_matches_scipy_and_is_thread_independent(simd, dtype, m):
    """Each SIMD path (pinned by the fixture) gives scipy's CG iterates and
    the same bits on 1 and 3 threads, on a graph without locality whose rows
    are long enough for the prefetch of gathered rows to run across rows and
    past the end of each block (kGatherAhead)."""
    W = normalized_graph(1500, 0.04, SEED + m, isolated=(7,), dtype=dtype)  # ~60 entries a row
    y = np.random.default_rng(SEED + m).random((1500, m)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepret.ConvergenceWarning)
        one = deepret.diffuse(W, y, 0.9, tol=1e-6, maxiter=12, order=None, num_threads=1)
        np.testing.assert_array_equal(deepret.diffuse(W, y, 0.9, tol=1e-6, maxiter=12, order=None,
                                                      num_threads=3), one)
    reference, _ = scipy_cg(W.astype(np.float64), y.astype(np.float64), 0.9, 1e-6, 12)
    bound = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(one - reference).max() / np.abs(reference).max() < bound
    x = np.ascontiguousarray(y)
    out = np.empty_like(x)
    deepret._backend._core.spmm(1500, 1500, W.indptr, W.indices, W.data, x, out, 2)
    np.testing.assert_allclose(out, W @ x, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)
