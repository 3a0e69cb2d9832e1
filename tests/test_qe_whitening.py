"""average_qe / alpha_qe and PCAWhitening against plain numpy versions of
their definitions (the reference codes' formulas); bad input; save/load."""

from __future__ import annotations

import numpy as np
import pytest

import deepret


def unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def qe_reference(Q, X, n, alpha):
    """For each query: its n most similar database rows (stable order), weights
    max(0, s)^alpha (1 for AQE), added to the query, L2-normalized (+1e-6)."""
    out = []
    for q in Q:
        s = X @ q
        top = np.argsort(-s, kind="stable")[:n]
        w = np.ones(n) if alpha == 0 else np.maximum(s[top], 0) ** alpha
        v = q + (w[:, None] * X[top]).sum(axis=0)
        out.append(v / (np.linalg.norm(v) + 1e-6))
    return np.array(out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 3, 10, 57])
def test_qe_matches_numpy(dtype, n):
    rng = np.random.default_rng(n)
    X = unit(rng.standard_normal((211, 19))).astype(dtype)
    Q = unit(rng.standard_normal((13, 19))).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    got = deepret.alpha_qe(Q, X, n=n)
    assert got.dtype == dtype and got.shape == Q.shape
    np.testing.assert_allclose(got, qe_reference(Q.astype(np.float64), X.astype(np.float64), n, 3.0),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(deepret.average_qe(Q, X, n=n),
                               qe_reference(Q.astype(np.float64), X.astype(np.float64), n, 0.0),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(deepret.alpha_qe(Q, X, n=n, alpha=0), deepret.average_qe(Q, X, n=n))
    np.testing.assert_allclose(deepret.alpha_qe(Q, X, n=n, alpha=1.5),
                               qe_reference(Q.astype(np.float64), X.astype(np.float64), n, 1.5),
                               rtol=tol, atol=tol)


def test_alpha_qe_with_an_alpha_near_the_float64_limit():
    # Similarities above 1 (rows not normalized) and alpha = 4.6e307: alpha *
    # log(s) overflows, and the weights relative to the largest must not turn
    # into inf - inf (the fuzz test found NaN). The largest similarity
    # dominates: the expansion is the direction of its database row.
    x = np.array([[4, 4, 4], [1, 0, 0]], np.float32)
    got = deepret.alpha_qe(x[:1], x, n=2, alpha=4.643760760024995e307)
    np.testing.assert_allclose(got, unit(x[:1]), rtol=1e-5)
    big = deepret.alpha_qe(x, x, n=2, alpha=1e300)
    assert np.isfinite(big).all()
    np.testing.assert_allclose(big[1], unit(x[:1])[0], rtol=1e-5)  # s = 4 beats s = 1


def test_qe_single_query_and_database_queries():
    rng = np.random.default_rng(1)
    X = unit(rng.standard_normal((100, 8)))
    one = deepret.alpha_qe(X[5], X, n=4)
    assert one.shape == (8,)
    np.testing.assert_allclose(one, deepret.alpha_qe(X[5:6], X, n=4)[0])
    np.testing.assert_allclose(np.linalg.norm(deepret.average_qe(X, X, n=5), axis=1), 1, atol=1e-5)


def test_qe_bad_input():
    X = unit(np.random.default_rng(0).standard_normal((20, 4)))
    with pytest.raises(ValueError, match="n .* is larger than the database"):
        deepret.alpha_qe(X[:2], X, n=21)
    with pytest.raises(ValueError, match="n must be at least 1"):
        deepret.average_qe(X[:2], X, n=0)
    with pytest.raises(ValueError, match="queries must be"):
        deepret.alpha_qe(X[:2, :3], X)
    with pytest.raises(ValueError, match="alpha must be"):
        deepret.alpha_qe(X[:2], X, alpha=-1)
    with pytest.raises(TypeError, match="alpha must be a real number"):
        deepret.alpha_qe(X[:2], X, alpha="3")
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        deepret.alpha_qe(X[:2], X.astype(np.int64))


def whiten_reference(X, Z, dims=None, shrinkage=0.0):
    """cirtorch's pcawhitenlearn (learned on X) and whitenapply (to Z), on rows,
    with optional shrinkage of the covariance."""
    m = X.mean(axis=0)
    Xc = X - m
    C = Xc.T @ Xc / len(X)
    if shrinkage:
        C = (1 - shrinkage) * C + shrinkage * np.trace(C) / C.shape[0] * np.eye(C.shape[0])
    val, vec = np.linalg.eig(C)
    order = np.argsort(val)[::-1]
    val, vec = val[order].real, vec[:, order].real
    P = np.diag(1 / np.sqrt(val)) @ vec.T
    Y = (Z - m) @ P[: dims or P.shape[0]].T
    return Y / (np.linalg.norm(Y, axis=1, keepdims=True) + 1e-6)


@pytest.mark.parametrize("dims,shrinkage", [(None, 0.0), (7, 0.0), (12, 0.3), (1, 0.0)])
def test_whitening_matches_cirtorch_formula(dims, shrinkage):
    rng = np.random.default_rng(3)
    X = unit(rng.standard_normal((300, 12)) * np.linspace(3, 0.2, 12))
    Z = unit(rng.standard_normal((40, 12)))
    got = deepret.PCAWhitening(dims, shrinkage=shrinkage).fit(X).transform(Z)
    want = whiten_reference(X, Z, dims, shrinkage)
    assert got.shape == want.shape == (40, dims or 12)
    # Eigenvector signs are arbitrary in the reference: compare each dimension up to its sign.
    signs = np.sign((got * want).sum(axis=0))
    np.testing.assert_allclose(got, want * signs, rtol=1e-7, atol=1e-9)


def test_whitening_whitens_and_float32(tmp_path):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((500, 10)) @ rng.standard_normal((10, 10))
    w = deepret.PCAWhitening().fit(X)
    raw = (X - w.mean_) @ w.projection_.T  # before the L2 normalization: identity covariance
    np.testing.assert_allclose(raw.T @ raw / len(X), np.eye(10), atol=1e-8)
    w32 = deepret.PCAWhitening(5).fit(X.astype(np.float32))
    out = w32.transform(X[:3].astype(np.float32))
    assert out.dtype == np.float32 and out.shape == (3, 5)
    path = tmp_path / "w.npz"
    w32.save(path)
    again = deepret.PCAWhitening.load(path)
    np.testing.assert_array_equal(again.transform(X[:3].astype(np.float32)), out)
    assert again.n_components == 5
    np.testing.assert_allclose(w.transform(X[0]), w.transform(X[:1])[0])


def test_whitening_bad_input():
    with pytest.raises(ValueError, match="shrinkage"):
        deepret.PCAWhitening(shrinkage=2)
    with pytest.raises(ValueError, match="n_components must be at least 1"):
        deepret.PCAWhitening(0)
    with pytest.raises(ValueError, match="before fit"):
        deepret.PCAWhitening().transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="n >= 2"):
        deepret.PCAWhitening().fit(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="larger than d"):
        deepret.PCAWhitening(5).fit(np.random.default_rng(0).standard_normal((10, 3)))
    X = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match="NaN"):
        deepret.PCAWhitening().fit(np.where(X > 1, np.nan, X))
    w = deepret.PCAWhitening().fit(X)
    with pytest.raises(ValueError, match=r"x must be \(n, 3\)"):
        w.transform(np.zeros((2, 4)))


# ------------------------------------------------------------------ whitening inside an index

def _clustered(n=600, d=24, seed=7):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, d))
    x = centres[rng.integers(0, 12, n)] + 0.3 * rng.standard_normal((n, d))
    x *= np.linspace(0.2, 3.0, d)  # anisotropic: whitening changes the neighbours
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_diffusion_index_whitens_database_and_queries():
    x = _clustered()
    q = x[:7] + 0.01
    w = deepret.PCAWhitening(n_components=16).fit(x)
    index = deepret.DiffusionIndex(x, k=10, whitening=w)
    plain = deepret.DiffusionIndex(w.transform(x), k=10)
    got, want = index.search(q, topk=20), plain.search(w.transform(q), topk=20)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
    assert index.whitening is w and index.x.shape == (600, 16) and index.x.dtype == np.float32
    # an unfitted whitening is learned on the database itself
    fitted_here = deepret.DiffusionIndex(x, k=10, whitening=deepret.PCAWhitening(n_components=16))
    np.testing.assert_array_equal(fitted_here.search(q, topk=20)[1], got[1])
    with pytest.raises(TypeError, match="PCAWhitening"):
        deepret.DiffusionIndex(x, k=10, whitening="pca")


def test_spectral_index_saves_and_loads_its_whitening(tmp_path):
    x = _clustered()
    q = x[10:15] + 0.01
    w = deepret.PCAWhitening(n_components=16, shrinkage=0.1).fit(x)
    index = deepret.SpectralIndex(x, rank=60, alpha=0.9, k=10, whitening=w)
    plain = deepret.SpectralIndex(w.transform(x), rank=60, alpha=0.9, k=10)
    np.testing.assert_array_equal(index.search(q, topk=10)[1], plain.search(w.transform(q), topk=10)[1])
    index.save(tmp_path / "white.npz")
    loaded = deepret.SpectralIndex.load(tmp_path / "white.npz")
    np.testing.assert_array_equal(loaded.whitening.projection_, w.projection_)
    got, want = loaded.search(q, topk=10), index.search(q, topk=10)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
    # an index saved without whitening loads without one
    plain.save(tmp_path / "plain.npz")
    assert deepret.SpectralIndex.load(tmp_path / "plain.npz").whitening is None
    with pytest.raises(ValueError, match="needs the descriptors"):
        deepret.SpectralIndex(None, rank=5, graph=index.W, whitening=w)
