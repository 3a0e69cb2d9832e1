"""Truncated diffusion in both modes (DiffusionIndex(truncate=T,
truncation=...)) against a straightforward scipy reference: per query the
top-T database items by cosine, the subgraph renormalized from the
affinities or restricted from the normalized graph, solved by
scipy.sparse.linalg (spsolve, and cg with the same stopping rule); and the
reference k convention (k_includes_self)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import deepret


def unit_rows(rng, n, d, dtype=np.float64):
    x = rng.standard_normal((n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(dtype)


def clustered(rng, n, d, centres=6, spread=0.35, dtype=np.float64):
    c = rng.standard_normal((centres, d))
    x = c[rng.integers(0, centres, n)] + spread * rng.standard_normal((n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(dtype)


def reference(x, queries, k, gamma, alpha, T, query_k, mode, solver):
    """One query at a time, every step spelled out with numpy/scipy."""
    scores, ids = deepret.knn(x, k=k, exclude_self=True)
    A = deepret.graph_from_knn(scores, ids, gamma=gamma, normalize=False).astype(np.float64)
    d = np.asarray(A.sum(axis=1)).ravel()
    s = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0)
    W = sp.diags(s) @ A @ sp.diags(s)
    out = []
    for q in queries:
        sims = x.astype(np.float64) @ q.astype(np.float64)
        top = np.argsort(-sims, kind="stable")[:T]
        if mode == "renormalize":
            sub = A[top][:, top]
            dd = np.asarray(sub.sum(axis=1)).ravel()
            ss = np.where(dd > 0, 1 / np.sqrt(np.where(dd > 0, dd, 1)), 0)
            sub = sp.diags(ss) @ sub @ sp.diags(ss)
        else:
            sub = W[top][:, top]
        L = sp.eye(T) - alpha * sub
        y = np.zeros(T)
        y[:query_k] = np.maximum(sims[top[:query_k]], 0) ** gamma
        f = spla.spsolve(sp.csc_matrix(L), y) if solver == "spsolve" else \
            spla.cg(L, y, rtol=1e-6, atol=0, maxiter=20)[0]
        out.append((top, f))
    return out


@pytest.mark.parametrize("mode", ["renormalize", "restrict"])
@pytest.mark.parametrize("n,T", [(97, 40), (300, 113), (64, 64)])
def test_truncated_equals_spsolve(mode, n, T):
    rng = np.random.default_rng(n + T)
    x = clustered(rng, n, 16)
    queries = clustered(rng, 7, 16)
    index = deepret.DiffusionIndex(x, k=10, alpha=0.9, truncate=T, truncation=mode, query_k=5,
                                   tol=1e-13, maxiter=2000)
    scores, ids = index.search(queries, topk=T)
    for q, (top, f) in enumerate(reference(x, queries, 10, 3.0, 0.9, T, 5, mode, "spsolve")):
        dense = np.zeros(n)
        dense[ids[q]] = scores[q]
        want = np.zeros(n)
        want[top] = f
        np.testing.assert_allclose(dense, want, rtol=1e-9, atol=1e-12 * np.abs(f).max())
        assert set(ids[q]) == set(top)
    assert (index.last_info.residuals < 1e-10).all()


@pytest.mark.parametrize("mode", ["renormalize", "restrict"])
def test_truncated_same_iterates_as_scipy_cg(mode):
    # alpha = 0.99 and 20 iterations: far from converged, so the iterates themselves are compared.
    rng = np.random.default_rng(5)
    x = clustered(rng, 400, 24)
    queries = x[rng.choice(400, 9, replace=False)]
    index = deepret.DiffusionIndex(x, k=15, alpha=0.99, truncate=150, truncation=mode)
    scores, ids = index.search(queries, topk=150)
    for q, (top, f) in enumerate(reference(x, queries, 15, 3.0, 0.99, 150, 10, mode, "cg")):
        got = dict(zip(ids[q].tolist(), scores[q].tolist()))
        np.testing.assert_allclose([got[i] for i in top], f, rtol=1e-8, atol=1e-12)
    assert (index.last_info.iterations <= 20).all()


def test_truncated_float32_close_to_float64():
    rng = np.random.default_rng(8)
    x = clustered(rng, 500, 32)
    queries = x[:6] + 0.01 * rng.standard_normal((6, 32))
    for mode in ("renormalize", "restrict"):
        a = deepret.DiffusionIndex(x.astype(np.float32), k=12, truncate=200, truncation=mode)
        b = deepret.DiffusionIndex(x, k=12, truncate=200, truncation=mode)
        sa, ia = a.search(queries.astype(np.float32), topk=200)
        sb, ib = b.search(queries, topk=200)
        assert sa.dtype == np.float32 and sb.dtype == np.float64
        for q in range(6):
            da = dict(zip(ia[q].tolist(), sa[q].tolist()))
            np.testing.assert_allclose([da[i] for i in ib[q]], sb[q], rtol=2e-3, atol=1e-4 * sb[q].max())


def test_restrict_differs_from_renormalize():
    rng = np.random.default_rng(9)
    x = clustered(rng, 300, 16)
    q = x[:3]
    a = deepret.DiffusionIndex(x, k=10, truncate=50, truncation="renormalize").search(q, 50)[0]
    b = deepret.DiffusionIndex(x, k=10, truncate=50, truncation="restrict").search(q, 50)[0]
    assert not np.allclose(a, b)


def test_truncation_bad_input():
    x = unit_rows(np.random.default_rng(0), 50, 8)
    with pytest.raises(ValueError, match="truncation must be"):
        deepret.DiffusionIndex(x, k=5, truncate=20, truncation="both")
    with pytest.raises(ValueError, match="truncate .* must be at least query_k"):
        deepret.DiffusionIndex(x, k=5, truncate=5)


def test_k_includes_self_is_the_reference_convention():
    rng = np.random.default_rng(3)
    x = clustered(rng, 120, 12)
    x[7] = x[3]  # an exact duplicate: it may take the point's own place, as in the references
    ours = deepret.knn_graph(x, k=10, k_includes_self=True)
    # The reference codes: the k nearest rows with the point itself, self pairs dropped.
    sims = x @ x.T
    nn = np.argsort(-sims, axis=1, kind="stable")[:, :10]
    knn_sets = [set(r.tolist()) for r in nn]
    A = np.zeros((120, 120))
    for i in range(120):
        for j in nn[i]:
            if j != i and i in knn_sets[j]:
                A[i, j] = max(sims[i, j], 0) ** 3
    d = A.sum(axis=1)
    s = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0)
    np.testing.assert_allclose(ours.toarray(), s[:, None] * A * s[None, :], rtol=1e-10, atol=1e-14)
    # Without duplicates the reference k is deepret's k - 1.
    y = np.delete(x, 7, axis=0)
    np.testing.assert_array_equal(deepret.knn_graph(y, k=10, k_includes_self=True).toarray(),
                                  deepret.knn_graph(y, k=9).toarray())
    idx = deepret.DiffusionIndex(x, k=10, k_includes_self=True)
    np.testing.assert_allclose(idx.W.toarray(), ours.toarray())
