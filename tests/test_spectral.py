"""graph_eigs against scipy.sparse.linalg.eigsh and numpy.linalg.eigh on the
same graphs (eigenvalues to 1e-5, residuals |W u - lambda u| <= 1e-4 |u|),
on synthetic graphs and the bundled Oxford5k descriptors; SpectralIndex
against diffusion by spsolve (rank = n), its embedding, save/load; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

import deepret
from deepret import datasets


def clustered(rng, n, d, centres=5, spread=0.6):
    c = rng.standard_normal((centres, d))
    x = c[rng.integers(0, centres, n)] + spread * rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def connected_graph(n, d=16, k=12, seed=0):
    """A kNN graph with one component (eigsh misses repeated eigenvalues, so
    the comparison with eigsh uses graphs whose top eigenvalue is simple)."""
    rng = np.random.default_rng(seed)
    x = clustered(rng, n, d, spread=1.5)
    W = deepret.knn_graph(x, k=k, mutual=False).astype(np.float64)
    assert csgraph.connected_components(W)[0] == 1
    return W


def check_pairs(W, lam, U, want):
    assert lam.shape == want.shape and U.shape == (W.shape[0], len(lam))
    np.testing.assert_allclose(lam, want, atol=1e-5, rtol=0)
    assert (np.diff(lam) <= 1e-12).all()
    res = np.linalg.norm(W @ U - U * lam, axis=0) / np.linalg.norm(U, axis=0)
    assert res.max() <= 1e-4
    np.testing.assert_allclose(U.T @ U, np.eye(len(lam)), atol=1e-8)


@pytest.mark.parametrize("n,r", [(300, 1), (300, 17), (1031, 60)])
def test_graph_eigs_equals_eigsh(n, r):
    W = connected_graph(n, seed=n + r)
    lam, U, info = deepret.graph_eigs(W, r, return_info=True)
    want = np.sort(spla.eigsh(W, k=r, which="LA", tol=1e-12)[0])[::-1]
    check_pairs(W, lam, U, want)
    assert info.residuals.shape == (r,) and (info.residuals <= 1e-6).all()
    assert info.iterations >= 1 and info.products > 0


def test_graph_eigs_repeated_eigenvalues_match_dense():
    # Several components: eigenvalue 1 repeated once per component, which
    # ARPACK (eigsh) may report fewer times; the dense eigh is the reference.
    rng = np.random.default_rng(4)
    x = clustered(rng, 400, 12, centres=12, spread=0.3)
    W = deepret.knn_graph(x, k=8).astype(np.float64)
    components = csgraph.connected_components(W)[0]
    assert components > 1
    r = 40
    lam, U = deepret.graph_eigs(W, r)
    want = np.linalg.eigvalsh(W.toarray())[::-1][:r]
    check_pairs(W, lam, U, want)


def test_graph_eigs_oxford5k():
    data = datasets.load_oxford5k()
    x = data.descriptors / np.linalg.norm(data.descriptors, axis=1, keepdims=True)
    W = deepret.knn_graph(x, k=50)
    r = 40
    lam, U, info = deepret.graph_eigs(W, r, return_info=True)
    W64 = W.astype(np.float64)
    # The Oxford graph has one large component and two isolated images: the
    # top eigenvalue is simple, so eigsh finds the same pairs.
    want = np.sort(spla.eigsh(W64, k=r, which="LA", tol=1e-12)[0])[::-1]
    check_pairs(W64, lam, U, want)


def test_graph_eigs_deterministic_and_float32_graph():
    W = connected_graph(300, seed=3)
    a = deepret.graph_eigs(W, 20)
    b = deepret.graph_eigs(W, 20)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = deepret.graph_eigs(W.astype(np.float32), 20)  # computed in float64 from the float32 values
    np.testing.assert_allclose(c[0], a[0], atol=1e-6)
    e = deepret.graph_eigs(W, 20, seed=1)
    np.testing.assert_allclose(e[0], a[0], atol=1e-9)


def test_graph_eigs_full_rank_is_exact():
    W = connected_graph(80, seed=9)
    lam, U = deepret.graph_eigs(W, 80)
    check_pairs(W, lam, U, np.linalg.eigvalsh(W.toarray())[::-1])


def test_filter_degrees_lower_only_for_nearly_converged_wanted_pairs():
    from deepret.spectral import _filter_degrees
    values = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.5, 0.4, 0.3])
    residuals = np.array([0, 1e-12, 1e-3, 1e-9, 1e-2, 1e-1, 1e-3, 1e-3])
    d = _filter_degrees(values, residuals, locked=1, r=6, degree=12, lo=-0.5, hi=0.3, target=1e-8)
    assert d.shape == (7,) and d.dtype == np.int64
    # Below the target already: degree 1. Otherwise the smallest d with
    # exp(-d g) rho <= target, g = arccosh((theta - c) / e), c = -0.1, e = 0.4,
    # at most 12; guard vectors (index >= r) get 12.
    g = np.arccosh((values[1:6] + 0.1) / 0.4)
    need = np.ceil(np.log(np.maximum(residuals[1:6], 1e-8) / 1e-8) / g)
    np.testing.assert_array_equal(d[:5], np.clip(need, 1, 12))
    np.testing.assert_array_equal(d, [1, 8, 1, 11, 12, 12, 12])


def test_graph_eigs_many_groups_match_dense():
    """r above the sparse products' column group (128), so that the filter,
    the Rayleigh-Ritz products and the locking run over several groups."""
    W = connected_graph(600, d=24, k=10, seed=4)
    lam, U, info = deepret.graph_eigs(W, 200, return_info=True)
    check_pairs(W, lam, U, np.linalg.eigvalsh(W.toarray())[::-1][:200])
    assert info.residuals.max() <= 1e-6


def test_graph_eigs_bad_input():
    W = connected_graph(100, seed=1)
    with pytest.raises(ValueError, match="r must be at most n"):
        deepret.graph_eigs(W, 101)
    with pytest.raises(ValueError, match="r must be at least 1"):
        deepret.graph_eigs(W, 0)
    with pytest.raises(TypeError, match="W must be a scipy.sparse"):
        deepret.graph_eigs(W.toarray(), 3)
    with pytest.raises(ValueError, match="block must lie"):
        deepret.graph_eigs(W, 10, block=5)
    with pytest.raises(ValueError, match="tol must be"):
        deepret.graph_eigs(W, 10, tol=0)
    bad = W.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        deepret.graph_eigs(bad, 3)


def test_graph_eigs_warns_when_not_converged():
    W = connected_graph(400, seed=2)
    with pytest.warns(deepret.ConvergenceWarning, match="graph_eigs"):
        lam, U, info = deepret.graph_eigs(W, 30, maxiter=1, return_info=True)
    assert info.iterations == 1 and (info.residuals > 1e-6).any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_spectral_index_full_rank_equals_diffusion(dtype):
    rng = np.random.default_rng(7)
    n, alpha = 90, 0.9
    x = clustered(rng, n, 10).astype(dtype)
    queries = clustered(rng, 4, 10).astype(dtype)
    index = deepret.SpectralIndex(x, rank=n, alpha=alpha, k=8)
    scores, ids = index.search(queries, topk=n)
    y = deepret.query_vector(x, queries, 10, 3.0).toarray().astype(np.float64)
    L = sp.csc_matrix(sp.eye(n) - alpha * index.W.astype(np.float64))
    f = (1 - alpha) * spla.spsolve(L, y)
    tol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(np.take_along_axis(f.T, ids, axis=1), scores, atol=tol * np.abs(f).max())
    order = np.argsort(-f, axis=0, kind="stable").T
    top = np.take_along_axis(f.T, order, axis=1)
    np.testing.assert_allclose(scores, top, atol=tol * np.abs(f).max())


def test_spectral_index_embedding_and_low_rank():
    rng = np.random.default_rng(8)
    x = clustered(rng, 400, 16).astype(np.float32)
    queries = clustered(rng, 5, 16).astype(np.float32)
    index = deepret.SpectralIndex(x, rank=30, alpha=0.99, k=10)
    V = index.embedding
    assert V.shape == (400, 30) and V.dtype == np.float32
    lam, U = index.eigenvalues, index.eigenvectors
    np.testing.assert_allclose(V, U * np.sqrt(0.01 / (1 - 0.99 * lam)), rtol=1e-5, atol=1e-7)
    # The scores are U h(L) U^T y, and any dot-product search over the embedding gives them.
    y = deepret.query_vector(x, queries, 10, 3.0).toarray().astype(np.float64)
    want = (U * (0.01 / (1 - 0.99 * lam))) @ (U.T @ y)
    scores, ids = index.search(queries, topk=20)
    np.testing.assert_allclose(scores, np.take_along_axis(want.T, ids, axis=1), rtol=1e-4, atol=1e-7)
    z = index.query_embedding(queries)
    s2, i2 = deepret.knn(V, z, k=20)
    np.testing.assert_allclose(s2, scores, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(index.query_embedding(y=y), z, rtol=1e-4, atol=1e-7)


def test_spectral_index_from_graph_callable_h_and_save_load(tmp_path):
    rng = np.random.default_rng(10)
    x = clustered(rng, 200, 12)
    W = deepret.knn_graph(x, k=10)
    heat = lambda lam: np.exp(2.0 * (lam - 1))  # noqa: E731 - a heat-kernel filter
    index = deepret.SpectralIndex(None, rank=20, graph=W, h=heat)
    np.testing.assert_allclose(index.embedding, index.eigenvectors * np.sqrt(heat(index.eigenvalues)))
    y = np.zeros(200)
    y[[3, 17]] = 1
    s, i = index.search(y=y, topk=5)
    assert s.shape == (1, 5)
    with pytest.raises(ValueError, match="built from a graph"):
        index.search(x[:2], topk=5)
    a = deepret.SpectralIndex(x, rank=15, alpha=0.95, k=10)
    path = tmp_path / "spectral.npz"
    a.save(path)
    b = deepret.SpectralIndex.load(path)
    np.testing.assert_array_equal(a.embedding, b.embedding)
    np.testing.assert_array_equal(a.search(x[:3], 10)[1], b.search(x[:3], 10)[1])
    index.save(tmp_path / "callable.npz")
    with pytest.raises(ValueError, match="callable h"):
        deepret.SpectralIndex.load(tmp_path / "callable.npz")


def test_spectral_index_bad_input():
    x = clustered(np.random.default_rng(0), 50, 8)
    with pytest.raises(ValueError, match="alpha"):
        deepret.SpectralIndex(x, rank=5, alpha=1.0, k=5)
    with pytest.raises(ValueError, match="h must be"):
        deepret.SpectralIndex(x, rank=5, k=5, h="heat")
    with pytest.raises(ValueError, match="non-negative"):
        deepret.SpectralIndex(x, rank=5, k=5, h=lambda lam: lam - 2)
    with pytest.raises(ValueError, match="needs x or graph"):
        deepret.SpectralIndex(None, rank=5)
    with pytest.raises(ValueError, match="topk"):
        deepret.SpectralIndex(x, rank=5, k=5).search(x[:1], topk=51)


def test_graph_eigs_progress_bar(capsys):
    W = connected_graph(200, seed=5)
    lam, U = deepret.graph_eigs(W, 5, progress=True)
    assert "graph_eigs" in capsys.readouterr().err
    np.testing.assert_allclose(lam, np.linalg.eigvalsh(W.toarray())[::-1][:5], atol=1e-8)


def _exact_diffusion(W, y, alpha):
    L = sp.csc_matrix(sp.eye(W.shape[0]) - alpha * W.astype(np.float64))
    return (1 - alpha) * spla.spsolve(L, y)


def _all_scores(index, queries=None, y=None, correction=False):
    """(nq, n) scores of every database item, ordered by item id."""
    n = index.embedding.shape[0]
    scores, ids = index.search(queries, topk=n, y=y, correction=correction)
    out = np.empty_like(scores)
    np.put_along_axis(out, ids, scores, axis=1)
    return out


def test_sparse_correction_shrinks_the_low_rank_error():
    # The left-out spectrum's filter replaced by its tangent at 0: the error
    # against exact diffusion drops (here 2.8x at rank 20, lambda_r = 0.76; 5.3x at 60, 0.58;
    # 9.2x at 150, 0.22: the smaller the left-out eigenvalues, the better the tangent) and the
    # scores equal U (h - c0 - c1 L) U^T y + c0 y + c1 W y written out.
    rng = np.random.default_rng(11)
    x = clustered(rng, 500, 16, centres=8).astype(np.float32)
    queries = clustered(rng, 6, 16, centres=8).astype(np.float32)
    alpha = 0.99
    y = deepret.query_vector(x, queries, 10, 3.0).toarray().astype(np.float64)
    for rank in (20, 60):
        index = deepret.SpectralIndex(x, rank=rank, alpha=alpha, k=10)
        exact = _exact_diffusion(index.W, y, alpha).T
        plain = _all_scores(index, queries)
        corrected = _all_scores(index, queries, correction=True)
        error = lambda s: np.linalg.norm(s - exact) / np.linalg.norm(exact)  # noqa: E731
        assert error(corrected) < error(plain) / 2, (rank, error(corrected), error(plain))
        lam, U = index.eigenvalues, index.eigenvectors
        c0, c1 = 1 - alpha, alpha * (1 - alpha)
        want = (U * ((1 - alpha) / (1 - alpha * lam) - c0 - c1 * lam)) @ (U.T @ y) + c0 * y \
            + c1 * (index.W.astype(np.float64) @ y)
        np.testing.assert_allclose(corrected, want.T, rtol=1e-4, atol=1e-6 * np.abs(want).max())


def test_sparse_correction_vanishes_at_full_rank_and_survives_save_load(tmp_path):
    rng = np.random.default_rng(12)
    n = 80
    x = clustered(rng, n, 8)
    index = deepret.SpectralIndex(x, rank=n, alpha=0.9, k=8)
    y = np.zeros((n, 2))
    y[[1, 5], 0] = 1
    y[7, 1] = 2
    np.testing.assert_allclose(_all_scores(index, y=y, correction=True), _all_scores(index, y=y),
                               atol=1e-10)
    # a callable h: the tangent by a central difference (here h = diffusion's, so it matches)
    same = deepret.SpectralIndex(None, rank=30, graph=index.W, h=lambda lam: 0.1 / (1 - 0.9 * lam))
    low = deepret.SpectralIndex(None, rank=30, graph=index.W, alpha=0.9)
    np.testing.assert_allclose(_all_scores(same, y=y, correction=True),
                               _all_scores(low, y=y, correction=True), rtol=1e-6, atol=1e-9)
    path = tmp_path / "spectral.npz"
    low.save(path)
    back = deepret.SpectralIndex.load(path)
    np.testing.assert_allclose(_all_scores(back, y=y, correction=True),
                               _all_scores(low, y=y, correction=True), atol=1e-12)
    # a file saved without the graph (older files): the correction says why it cannot run
    with np.load(path) as f:
        np.savez(tmp_path / "old.npz", **{k: f[k] for k in f.files if not k.startswith("graph_")})
    old = deepret.SpectralIndex.load(tmp_path / "old.npz")
    np.testing.assert_array_equal(old.search(y=y, topk=5)[1], low.search(y=y, topk=5)[1])
    with pytest.raises(ValueError, match="needs the graph"):
        old.search(y=y, topk=5, correction=True)
