"""Issue 12, the boundary half: malformed graphs, overflow-prone finite
input, out= aliasing an input, float -> integer conversions, the true CG
residual and torch's zero-size kernels. Each case raises TypeError /
ValueError or returns the reference's answer; none crashes or returns
uninitialised or NaN values silently."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.signal
import scipy.sparse as sp

import deepret

SEED = 1212


def _graph(n=1000, k=10, dtype=np.float32, seed=SEED):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 16)).astype(dtype)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return deepret.knn_graph(x, k=k)


def _copy(W):
    return sp.csr_array((W.data.copy(), W.indices.copy(), W.indptr.copy()), shape=W.shape)


# ---------------------------------------------------------------- CSR structure

@pytest.mark.parametrize("bad", [2**30, 1000 + 1000, 1000, -5, -1])
@pytest.mark.parametrize("call", ["diffuse", "diffuse8", "katz", "locality_order"])
def test_out_of_range_column_index_raises(bad, call):
    W = _copy(_graph())
    W.indices[17] = bad  # scipy does not look again; the engine would read out of bounds
    with pytest.raises(ValueError, match=rf"W is not a valid CSR structure: column index {bad} outside \[0, 1000\)"):
        if call == "diffuse":
            deepret.diffuse(W, np.ones(1000, np.float32))
        elif call == "diffuse8":
            deepret.diffuse(W, np.ones((1000, 8), np.float32))
        elif call == "katz":
            deepret.katz(W)
        else:
            deepret.locality_order(W)


@pytest.mark.parametrize("call", ["diffuse", "diffuse8", "katz", "locality_order"])
def test_non_monotonic_indptr_raises(call):
    W = _copy(_graph())
    W.indptr[500] = W.indptr[502] + 3  # rows 499 and 500 overlap: heap corruption before
    with pytest.raises(ValueError, match="indptr decreases at row 500"):
        if call == "diffuse":
            deepret.diffuse(W, np.ones(1000, np.float32))
        elif call == "diffuse8":
            deepret.diffuse(W, np.ones((1000, 8), np.float32))
        elif call == "katz":
            deepret.katz(W)
        else:
            deepret.locality_order(W)


@pytest.mark.parametrize("field, value, message", [
    ("first", 3, r"indptr\[0\] must be 0, got 3"),
    ("last", 10**6, r"indptr\[-1\] = 1000000 exceeds the"),
])
def test_inconsistent_indptr_raises(field, value, message):
    W = _copy(_graph())
    W.indptr[0 if field == "first" else -1] = value
    with pytest.raises(ValueError, match=message):
        deepret.diffuse(W, np.ones(1000, np.float32))


def test_indptr_of_the_wrong_length_raises():
    W = _copy(_graph())
    W.indptr = W.indptr[:-1]
    with pytest.raises(ValueError, match="indptr must have rows"):
        deepret.diffuse(W, np.ones(1000, np.float32))


def test_out_of_range_coo_coordinate_raises():
    W = _graph().tocoo()
    W.col[3] = 5000
    with pytest.raises(ValueError, match="COO"):
        deepret.diffuse(W, np.ones(1000, np.float32))


def test_order_outside_the_rows_raises_instead_of_wrapping():
    W = _graph()
    order = np.arange(1000, dtype=np.int64) + 2**32  # int32 of these would be 0..999 again
    with pytest.raises(ValueError, match="order must be a permutation"):
        deepret.diffuse(W, np.ones((1000, 8), np.float32), order=order)


def test_the_caller_graph_is_not_modified():
    W = _graph()
    W = sp.csr_array((W.data, W.indices.astype(np.int64), W.indptr.astype(np.int32)), shape=W.shape)
    W.indices = W.indices.astype(np.int64)
    before = (W.indptr.dtype, W.indices.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepret.ConvergenceWarning)
        deepret.diffuse(W, np.ones(1000, np.float32))
    assert (W.indptr.dtype, W.indices.dtype) == before


def test_diffusion_index_validates_its_graph_once_and_again_after_a_write():
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = deepret.DiffusionIndex(x, k=10)
    # Its graph's index arrays are read-only: no in-place write can go unseen.
    assert not index.W.indices.flags.writeable and not index.W.indptr.flags.writeable
    with pytest.raises(ValueError):
        index.W.indices[0] = 10**6
    scores, ids = index.search(x[:3], topk=5)
    assert ids.shape == (3, 5) and (ids >= 0).all() and (ids < 300).all()
    # Made writable and corrupted: the mark is gone and the check runs again.
    index.W.indices.setflags(write=True)
    index.W.indices[0] = 10**6
    with pytest.raises(ValueError, match="column index 1000000 outside"):
        index.search(x[:3], topk=5)


def test_a_valid_graph_still_agrees_with_scipy():
    W = _graph(300, 8, np.float64)
    y = np.random.default_rng(SEED).random(300)
    f = deepret.diffuse(W, y, alpha=0.5, tol=1e-12, maxiter=500)
    exact = sp.linalg.spsolve(sp.csc_matrix(sp.eye(300) - 0.5 * W), y)
    np.testing.assert_allclose(f, exact, rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- overflow-prone finite input

@pytest.mark.parametrize("value, dtype", [(1.5e19, np.float32), (1e155, np.float64)])
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_knn_huge_finite_values_raise(value, dtype, metric):
    x = np.full((4, 2), value, dtype)
    with pytest.raises(ValueError, match="could overflow"):
        deepret.knn(x, k=2, metric=metric)
    with pytest.raises(ValueError, match="could overflow"):
        deepret.knn(np.ones((4, 2), dtype), np.full((1, 2), value, dtype), k=2, metric=metric)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_knn_just_below_the_bound_is_exact(dtype):
    d = 8
    value = 0.9 * np.sqrt(np.finfo(dtype).max / (4 * d))
    rng = np.random.default_rng(SEED)
    x = (rng.uniform(-1, 1, (20, d)) * value).astype(dtype)
    x[0, :] = value  # the largest magnitude in the bound, in every column
    scores, ids = deepret.knn(x, k=3, metric="l2")
    assert np.isfinite(scores).all() and ((ids >= 0) & (ids < 20)).all()
    exact = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    best = np.sort(exact, axis=1)[:, :3]
    np.testing.assert_allclose(scores, best, rtol=1e-3, atol=1e-3 * float(value) ** 2)


def test_graph_from_knn_huge_scores_have_no_nan():
    rng = np.random.default_rng(SEED)
    n, k = 50, 5
    ids = np.stack([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])
    base = rng.uniform(0.1, 1.0, (n, k)).astype(np.float32)
    for mutual in (True, False):
        expected = deepret.graph_from_knn(base, ids, mutual=mutual)
        huge = deepret.graph_from_knn(base * np.float32(1e20), ids, mutual=mutual)
        assert np.isfinite(huge.data).all() and huge.nnz == expected.nnz
        np.testing.assert_array_equal(huge.indices, expected.indices)
        np.testing.assert_allclose(huge.data, expected.data, rtol=1e-5)
    with pytest.raises(ValueError, match="overflow"):
        deepret.graph_from_knn(base * np.float32(1e20), ids, normalize=False)


def test_graph_from_knn_l2_negative_distances_have_no_nan():
    ids = np.array([[1], [0]])
    W = deepret.graph_from_knn(np.full((2, 1), -1e30, np.float32), ids, metric="l2", mutual=False)
    assert np.isfinite(W.data).all()
    np.testing.assert_allclose(W.toarray(), [[0, 1], [1, 0]], rtol=1e-6)


def test_query_vector_overflowing_weights_raise():
    x = np.eye(4, dtype=np.float32) * np.float32(1e15)
    with pytest.raises(ValueError, match="overflow"):
        deepret.query_vector(x, x[:1], k=2, gamma=3.0)


# ---------------------------------------------------------------- out= overlapping an input

def test_convolve_out_aliasing_the_input():
    rng = np.random.default_rng(SEED)
    y = rng.standard_normal(1000)
    taps = rng.standard_normal(31)
    expected = np.convolve(y, taps, "same")
    assert deepret.convolve(y, taps, "same", out=y) is y
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_correlate_out_aliasing_either_input():
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal(64)
    v = rng.standard_normal(64)
    expected = np.correlate(a, v, "same")
    deepret.correlate(a, v, "same", out=v)
    np.testing.assert_allclose(v, expected, rtol=1e-12, atol=1e-12)
    # out a shifted view of the same buffer
    buffer = rng.standard_normal(200)
    a, out = buffer[:150], buffer[50:150]
    taps = rng.standard_normal(51)
    expected = np.convolve(a, taps, "valid")
    deepret.convolve(a, taps, "valid", out=out)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("function", ["convolve2d", "correlate2d"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
def test_2d_out_aliasing_the_image(function, boundary):
    rng = np.random.default_rng(SEED)
    image = rng.standard_normal((40, 37))
    kernel = rng.standard_normal((5, 7))
    expected = getattr(scipy.signal, function)(image, kernel, "same", boundary)
    result = getattr(deepret, function)(image, kernel, "same", boundary, out=image)
    assert result is image
    np.testing.assert_allclose(image, expected, rtol=1e-12, atol=1e-12)
    # out aliasing both inputs at once
    expected = getattr(scipy.signal, function)(kernel, kernel, "same", boundary)
    getattr(deepret, function)(kernel, kernel, "same", boundary, out=kernel)
    np.testing.assert_allclose(kernel, expected, rtol=1e-12, atol=1e-12)


def _conv2d_reference(x, w, pad):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, o, h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,oc->nohw", xp[:, :, i:i + out.shape[2], j:j + out.shape[3]], w[:, :, i, j])
    return out


def test_conv2d_out_aliasing_the_input():
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((2, 4, 9, 11))
    w = rng.standard_normal((4, 4, 3, 3))
    expected = _conv2d_reference(x, w, 1)
    assert deepret.conv2d(x, w, padding="same", out=x) is x
    np.testing.assert_allclose(x, expected, rtol=1e-10, atol=1e-10)
    x3 = rng.standard_normal((4, 9, 11))  # unbatched, out aliasing a view of the input
    expected = _conv2d_reference(x3[None], w, 1)[0]
    deepret.conv2d(x3, w, padding=1, out=x3)
    np.testing.assert_allclose(x3, expected, rtol=1e-10, atol=1e-10)


def test_out_not_aliasing_is_written_in_place():
    rng = np.random.default_rng(SEED)
    a, v = rng.standard_normal(100), rng.standard_normal(9)
    out = np.empty(108)
    assert deepret.convolve(a, v, out=out) is out
    np.testing.assert_allclose(out, np.convolve(a, v), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- float -> integer

@pytest.mark.parametrize("box", [
    [1e19, 0, 1e19 + 1, 3],
    [0, 1e19, 3, 1e19],
    [-1e19, -1e19, -1e18, -1e18],
    [5, 5, 2, 2],
])
def test_regional_max_pool_boxes_outside_the_map_raise(box):
    a = np.random.default_rng(SEED).random((3, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError):
        deepret.regional_max_pool(a, np.array([box], dtype=np.float64))


def test_regional_max_pool_huge_boxes_clip_to_the_map():
    a = np.random.default_rng(SEED).random((3, 8, 8)).astype(np.float32)
    pooled = deepret.regional_max_pool(a, np.array([[-1e19, -1e300, 1e19, 1e300]]), normalize=False)
    np.testing.assert_array_equal(pooled[0], a.max(axis=(1, 2)))


@pytest.mark.parametrize("box", [[np.nan, 0, 3, 3], [0, 0, np.inf, 3]])
def test_regional_max_pool_non_finite_boxes_raise(box):
    a = np.ones((3, 8, 8), np.float32)
    with pytest.raises(ValueError, match="finite"):
        deepret.regional_max_pool(a, np.array([box]))


@pytest.mark.parametrize("h, w", [(1e19, 5), (5.5, 5), (0, 4), (-3, 4), (True, 4)])
def test_rmac_regions_sizes_are_checked(h, w):
    with pytest.raises((TypeError, ValueError)):
        deepret.rmac_regions(h, w)


def test_egm_max_iter_out_of_the_engine_range():
    with pytest.raises(ValueError, match="max_iter"):
        deepret.egm(np.ones((4, 4)), max_iter=2**40)


# ---------------------------------------------------------------- CgInfo: the true residual

def _true_residual(W, y, f, alpha):
    W64 = W.astype(np.float64)
    y64, f64 = y.astype(np.float64), f.astype(np.float64)
    r = y64 - (f64 - alpha * (W64 @ f64))
    return np.linalg.norm(r.reshape(len(y), -1), axis=0) / np.linalg.norm(y64.reshape(len(y), -1), axis=0)


@pytest.mark.parametrize("m", [1, 5, 16, 21])
def test_cg_residuals_are_the_true_residuals(m):
    W = _graph(500, 10, np.float32)
    y = np.random.default_rng(SEED).random((500, m)).astype(np.float32)
    alpha = 0.999999
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f, info = deepret.diffuse(W, y, alpha=alpha, maxiter=200, return_info=True)
    true = _true_residual(W, y, f, np.float32(alpha))
    np.testing.assert_allclose(info.residuals, true, rtol=1e-6, atol=1e-12)
    # and the warning follows the true residual, not the recursive one
    above = (true >= 1e-6).sum()
    messages = [str(w.message) for w in caught if issubclass(w.category, deepret.ConvergenceWarning)]
    assert (above > 0) == bool(messages)
    if above:
        assert f"{above} of {m} columns ended above tol" in messages[0]


def test_cg_residuals_with_an_order_and_float64():
    W = _graph(400, 8, np.float64)
    y = np.random.default_rng(SEED).random((400, 9))
    order = deepret.locality_order(W)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepret.ConvergenceWarning)
        f, info = deepret.diffuse(W, y, alpha=0.99, maxiter=10, return_info=True, order=order)
    np.testing.assert_allclose(info.residuals, _true_residual(W, y, f, 0.99), rtol=1e-9)


def test_nan_residual_warns():
    W = _graph(300, 8, np.float32)
    y = np.full(300, 3e38, np.float32)
    with pytest.warns(deepret.ConvergenceWarning, match="NaN residual"):
        f, info = deepret.diffuse(W, y, return_info=True)
    assert np.isnan(info.residuals).all()


# ---------------------------------------------------------------- conv2d: as torch

@pytest.mark.parametrize("shape", [(2, 3, 0, 3), (2, 3, 3, 0), (2, 3, 0, 0)])
def test_conv2d_zero_size_kernel_raises(shape):
    x = np.ones((1, 3, 5, 5), np.float32)
    with pytest.raises(ValueError, match="empty kernel"):
        deepret.conv2d(x, np.ones(shape, np.float32))


def test_conv2d_fewer_output_channels_than_groups_raises():
    x = np.ones((1, 4, 5, 5), np.float32)
    with pytest.raises(ValueError, match="expected weight to be at least 2 at dimension 0"):
        deepret.conv2d(x, np.ones((0, 2, 3, 3), np.float32), groups=2)


@pytest.mark.parametrize("function", ["convolve", "correlate"])
def test_misaligned_contiguous_input(function):
    # A contiguous view at a byte offset: typed loads from it were misaligned
    # (UBSan under bench/sanitize.sh); the boundary now copies it aligned.
    buffer = np.zeros(2 * 40 + 1, np.uint8)
    a = buffer[1:].view(np.uint16)
    a[:] = np.arange(40)
    assert not a.flags.aligned and a.flags.c_contiguous
    v = np.array([1, 2, 3], np.uint16)
    np.testing.assert_array_equal(getattr(deepret, function)(a, v), getattr(np, function)(a, v))


def test_gem_with_a_large_power_does_not_overflow():
    """(mean x^p)^(1/p) is computed relative to the channel's largest value:
    3^647 overflows double, the GeM of a constant map is the constant."""
    a = np.full((2, 3, 4), 3.0, np.float32)
    np.testing.assert_allclose(deepret.gem(a, p=647.0, normalize=False), [3.0, 3.0], rtol=1e-6)
    b = np.random.default_rng(0).random((4, 5, 6)) + 0.5
    expected = np.mean(b.reshape(4, -1) ** 40.0, axis=1) ** (1 / 40.0)
    np.testing.assert_allclose(deepret.gem(b, p=40.0, normalize=False), expected, rtol=1e-12)


def test_alpha_qe_with_large_scores_does_not_overflow():
    """Weights s^alpha overflow float32 for s = 4, alpha = 64; the expanded
    query is the same direction as the float64 computation."""
    x = np.array([[2.0, 0.0], [1.9, 0.5], [0.0, 1.0]], np.float32)
    out = deepret.alpha_qe(x[:1], x, n=2, alpha=64.0)
    s = x.astype(np.float64) @ x[0].astype(np.float64)
    top = np.argsort(-s)[:2]
    raw = x[0] + ((s[top] / s[top].max()) ** 64.0) @ x[top] * (s[top].max() ** 64.0 / 1.0)
    expected = raw / np.linalg.norm(raw)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0], expected, rtol=1e-5, atol=1e-6)
