"""Fuzzing the public names that build on the kernels (object saliency,
regional diffusion, CroW, spectral ranking, query expansion, whitening), in
the manner of test_fuzz.py: hostile shapes, dtypes, strides and values, and
parameters of the wrong type. Each call raises TypeError, ValueError or
MemoryError, or returns a finite result of the documented shape, checked
against numpy where a reference is one line."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, strategies as st

import deepret

from test_fuzz import FEW, FUZZ, REAL, arrays, attempt, bad_ints, bad_reals

ACTIVATION_DTYPES = REAL + [np.float16, np.int32]
# Mostly valid sizes, sometimes hostile: the valid path must be exercised too.
sizes = st.one_of(st.integers(1, 4), bad_ints)


@st.composite
def activation_lists(draw):
    """A list of (C, H, W) maps: sometimes matching channels, sometimes not,
    with non-negative or hostile values."""
    c = draw(st.integers(0, 4))
    maps = []
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            maps.append(draw(arrays(ACTIVATION_DTYPES, 3, 3, max_side=6)))
        else:
            h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
            maps.append(np.abs(np.random.default_rng(draw(st.integers(0, 9))).standard_normal((c, h, w)))
                        .astype(np.float32))
    return maps


@FEW
@given(acts=activation_lists(), dtype=st.sampled_from([np.float32, np.float16, np.int8]),
       threshold=st.one_of(st.sampled_from([0.4, 0.0]), bad_reals))
def test_fuzz_region_set(acts, dtype, threshold):
    rs = attempt(deepret.RegionSet.from_activations, acts, threshold=threshold, dtype=dtype)
    if rs is None:
        return
    d = np.asarray(rs.descriptors, np.float64)
    assert d.ndim == 2 and np.isfinite(d).all()
    norms = np.linalg.norm(d, axis=1)
    assert np.all((norms < 1e-3) | (np.abs(norms - 1) < 1e-2))  # L2-normalized (or all-zero) rows


def _fitted_set(seed, n_images, c=5):
    rng = np.random.default_rng(seed)
    acts = [np.maximum(rng.standard_normal((c, int(rng.integers(3, 7)), int(rng.integers(3, 7)))), 0)
            .astype(np.float32) for _ in range(n_images)]
    return acts, deepret.RegionSet.from_activations(acts)


@FEW
@given(seed=st.integers(0, 5), n_images=st.integers(1, 5), k=sizes, gamma=st.one_of(st.just(3.0), bad_reals),
       centrality=st.sampled_from(["both", "global", "local", "constant", "x"]),
       readout=st.sampled_from(["sum", "weighted", "heaviest", "spatial", None, "x"]),
       query=arrays(ACTIVATION_DTYPES, 3, 4, max_side=5))
def test_fuzz_object_saliency(seed, n_images, k, gamma, centrality, readout, query):
    acts, rs = _fitted_set(seed, n_images)
    model = attempt(deepret.ObjectSaliency, k=k, gamma=gamma, centrality=centrality)
    if model is None or attempt(model.fit, rs) is None:
        return
    for images in (acts[:1], query):
        out = attempt(model.describe, images, readout=readout)
        if out is not None:
            assert np.isfinite(np.asarray(out)).all()
        maps = attempt(model.saliency, images)
        if maps is not None:
            for m in (maps if isinstance(maps, list) else [maps]):
                assert np.all(np.asarray(m) >= 0) and np.isfinite(np.asarray(m)).all()
    graph = attempt(deepret.region_graph, rs, k=k, gamma=gamma)
    if graph is not None:
        assert graph.shape == (len(rs.descriptors),) * 2 and np.isfinite(graph.data).all()


@FEW
@given(seed=st.integers(0, 5), n_images=st.integers(1, 5), k=sizes, topk=sizes,
       pooling=st.sampled_from(["sum", "max", "x"]), queries=arrays(REAL + [np.int32], 1, 3, max_side=6))
def test_fuzz_regional_diffusion_index(seed, n_images, k, topk, pooling, queries):
    _, rs = _fitted_set(seed, n_images)
    index = attempt(deepret.RegionalDiffusionIndex, rs, k=k, pooling=pooling)
    if index is None:
        return
    for q in (rs, queries):
        found = attempt(index.search, q, topk)
        if found is not None:
            scores, ids = found
            assert scores.shape == ids.shape and np.all((ids >= -1) & (ids < n_images))


@FUZZ
@given(a=arrays(ACTIVATION_DTYPES, 2, 5, max_side=5), s=arrays(ACTIVATION_DTYPES, 1, 4, max_side=5),
       fn=st.sampled_from(["crow", "crow_weights", "weighted_sum_pool", "saliency_pool"]),
       readout=st.sampled_from(["sum", "weighted", "heaviest", "spatial", "x"]))
def test_fuzz_crow_and_saliency_pooling(a, s, fn, readout):
    if fn == "crow":
        out = attempt(deepret.crow, a)
    elif fn == "crow_weights":
        out = attempt(deepret.crow_weights, a)
    elif fn == "weighted_sum_pool":
        out = attempt(deepret.weighted_sum_pool, a, s)
    else:
        out = attempt(deepret.saliency_pool, a, s, readout)
    if out is None:
        return
    for part in (out if isinstance(out, tuple) else (out,)):
        assert np.isfinite(np.asarray(part)).all()
    if fn == "weighted_sum_pool" and a.ndim == 3 and s.shape == a.shape[1:]:
        raw = np.tensordot(a.astype(np.float64), s.astype(np.float64), axes=([1, 2], [0, 1]))
        expected = raw / (np.linalg.norm(raw) + 1e-6)
        np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=1e-3, atol=1e-4)


@FUZZ
@given(a=arrays(ACTIVATION_DTYPES, 3, 4, max_side=5), descriptors=arrays(REAL, 1, 2, max_side=5),
       boxes=arrays(REAL + [np.int32], 1, 2, max_side=5), weights=arrays(REAL, 1, 1, max_side=5),
       cover=st.sampled_from(["box", "all", "x"]), valid=st.booleans(), k=st.integers(0, 3))
def test_fuzz_object_saliency_map(a, descriptors, boxes, weights, cover, valid, k):
    if valid and a.ndim == 3:  # descriptors of a's channels, boxes inside the map
        rng = np.random.default_rng(k)
        c, h, w = a.shape
        descriptors = rng.standard_normal((k, c)).astype(np.float32)
        boxes = np.tile([0.0, 0.0, h - 1.0, w - 1.0], (k, 1))
        weights = rng.random(k)
    out = attempt(deepret.object_saliency, a, descriptors, boxes, weights, cover=cover)
    if out is not None:
        assert np.isfinite(np.asarray(out)).all() and np.all(np.asarray(out) >= 0)


@st.composite
def symmetric_graphs(draw):
    n = draw(st.integers(0, 12))
    rng = np.random.default_rng(draw(st.integers(0, 9)))
    a = rng.random((n, n)) * (rng.random((n, n)) < 0.4)
    a = np.triu(a, 1)
    a = a + a.T
    d = a.sum(1)
    inv = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0)
    W = sp.csr_array(inv[:, None] * a * inv[None, :]).astype(draw(st.sampled_from(REAL)))
    if n and draw(st.booleans()):  # malformed
        W.indices[-1:] = draw(st.sampled_from([n, -1, 2**30])) if W.nnz else 0
    return W


@FUZZ
@given(W=symmetric_graphs(), r=bad_ints, tol=st.one_of(st.just(1e-6), bad_reals))
def test_fuzz_graph_eigs(W, r, tol):
    found = attempt(deepret.graph_eigs, W, r, tol=tol, maxiter=50, return_info=True)
    if found is None:
        return
    values, vectors, info = found
    assert isinstance(info, deepret.EigsInfo)
    assert values.shape == (r,) and vectors.shape == (W.shape[0], r)
    dense = W.toarray().astype(np.float64)
    if np.isfinite(dense).all() and info.residuals.max(initial=0) <= 1e-4:
        np.testing.assert_allclose(dense @ vectors, vectors * values, atol=1e-3)


@FEW
@given(x=arrays(REAL, 2, 2, min_side=1, max_side=10), rank=sizes, alpha=st.one_of(st.just(0.99), bad_reals),
       queries=arrays(REAL + [np.int32], 1, 2, max_side=4), topk=sizes, h=st.sampled_from(["diffusion", "x", 3]),
       own_queries=st.booleans())
def test_fuzz_spectral_index(x, rank, alpha, queries, topk, h, own_queries):
    if own_queries:
        queries = x[:2]
    index = attempt(deepret.SpectralIndex, x, rank=rank, alpha=alpha, k=3, h=h)
    if index is None:
        return
    assert np.isfinite(index.embedding).all()
    found = attempt(index.search, queries, topk)
    if found is not None:
        scores, ids = found
        assert scores.shape == ids.shape and np.all((ids >= -1) & (ids < len(x)))


@FUZZ
@given(x=arrays(REAL, 2, 2, min_side=0, max_side=8), queries=arrays(REAL + [np.int32], 1, 2, max_side=5),
       n=sizes, alpha=st.one_of(st.just(3.0), bad_reals), fn=st.sampled_from(["average_qe", "alpha_qe"]),
       own_queries=st.booleans())
def test_fuzz_query_expansion(x, queries, n, alpha, fn, own_queries):
    if own_queries:
        queries = x[:2]
    if fn == "alpha_qe":
        out = attempt(deepret.alpha_qe, queries, x, n, alpha)
    else:
        out = attempt(deepret.average_qe, queries, x, n)
    if out is None:
        return
    out = np.asarray(out, np.float64)
    assert np.isfinite(out).all()
    norms = np.linalg.norm(out.reshape(-1, out.shape[-1]), axis=1)
    # v / (|v| + 1e-6) (cirtorch's l2n): norm |v| / (|v| + 1e-6), in [0, 1),
    # near 1 once |v| >> 1e-6 (a row of 1.2e-7 gives 0.19: not a failure).
    assert np.all(norms < 1 + 1e-6)
    if own_queries and fn == "alpha_qe" and queries.size:
        # Each query q is a database row, so v . q >= |q|^2 (no weight is
        # negative, the largest similarity is at least q's own): |v| >= |q|.
        sizeable = np.abs(np.asarray(queries, np.float64).reshape(len(norms), -1)).max(axis=1) >= 1e-2
        assert np.all(norms[sizeable] > 1 - 1e-3)


@FUZZ
@given(x=arrays(REAL + [np.int32], 1, 3, max_side=8), n_components=st.one_of(st.none(), bad_ints),
       shrinkage=st.one_of(st.just(0.0), bad_reals), y=arrays(REAL, 1, 2, max_side=8))
def test_fuzz_pca_whitening(x, n_components, shrinkage, y):
    model = attempt(deepret.PCAWhitening, n_components, shrinkage=shrinkage)
    if model is None or attempt(model.fit, x) is None:
        return
    out = attempt(model.transform, y)
    if out is not None:
        assert np.isfinite(np.asarray(out)).all()
