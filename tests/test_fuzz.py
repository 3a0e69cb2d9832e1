"""Fuzzing every public function of deepret (issue 12): random shapes,
dtypes and strides, NaN / Inf / huge finite / subnormal values, empty arrays,
malformed sparse matrices, out= aliasing an input, huge or negative sizes and
parameters of the wrong type.

Each call either raises TypeError, ValueError or MemoryError (anything else,
or a crash, fails the test) or returns a result that agrees with the
reference (numpy / scipy / the slow references of tests/egm_reference.py)
or, where no cheap reference exists, that has the documented shape, dtype
and invariants. Everything runs in-process: a crash takes the test runner
down, loudly. Sizes stay tiny so that the whole file takes a minute or two
on two cores (a few hundred examples per function).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.signal
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import deepret
from deepret import evaluate

import egm_reference as ref
from _helpers import assert_values_match

ACCEPTED = (TypeError, ValueError, MemoryError)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
FEW = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

REAL = [np.float32, np.float64]
NUMERIC = [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.uint64,
           np.bool_, np.complex64, np.complex128]


def attempt(function, *args, **kwargs):
    """function(*args, **kwargs), or None when it raised an accepted error.
    Warnings (ConvergenceWarning and numpy's overflow notes) are allowed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return function(*args, **kwargs)
        except ACCEPTED:
            return None


def reference(function, *args, **kwargs):
    """The reference's result, or None when it raises (any exception) or warns."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return function(*args, **kwargs)
        except Exception:  # noqa: BLE001 - whatever the reference refuses
            return None


def _elements(dtype, hostile):
    dtype = np.dtype(dtype)
    if not hostile:
        if dtype.kind == "f":
            return st.floats(-4, 4, width=min(64, 8 * dtype.itemsize))
        if dtype.kind == "c":
            part = st.floats(-4, 4, width=min(64, 4 * dtype.itemsize))
            return st.builds(complex, part, part)
        if dtype.kind in "iu":
            return st.integers(0 if dtype.kind == "u" else -5, 5)
    return hnp.from_dtype(dtype)  # NaN, Inf, huge, subnormal; every integer


@st.composite
def arrays(draw, dtypes=REAL, min_dims=1, max_dims=2, min_side=0, max_side=6, hostile=None):
    """An array of a drawn dtype and shape, in a drawn memory layout (C, F,
    strided or reversed), with benign or hostile values."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                                  max_side=max_side)) if max_dims > 0 else ()
    if hostile is None:
        hostile = draw(st.booleans())
    a = draw(hnp.arrays(dtype, shape, elements=_elements(dtype, hostile)))
    layout = draw(st.sampled_from(["c", "f", "strided", "reversed"]))
    if a.ndim and layout == "f":
        a = np.asfortranarray(a)
    elif a.ndim and layout == "strided":
        a = np.repeat(a, 2, axis=-1)[..., ::2]
    elif a.ndim and layout == "reversed":
        a = np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    return a


def finite_moderate(*arrays_):
    return all(np.isfinite(np.asarray(a, dtype=np.complex128)).all() and
               (np.abs(np.asarray(a, dtype=np.complex128)) < 1e6).all() for a in arrays_)


bad_ints = st.one_of(st.integers(-3, 12), st.sampled_from([2**31, 2**63, -(2**63), 10**30]),
                     st.sampled_from([1.5, float("nan"), None, "3", True]))
bad_reals = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0, -1, 1e308, None, "x", True]))


# ---------------------------------------------------------------- 1-D and 2-D convolution

@FUZZ
@given(a=arrays(NUMERIC, 0, 2, max_side=9), v=arrays(NUMERIC, 0, 2, max_side=5),
       mode=st.sampled_from(["full", "same", "valid", 0, 1, 2, "f", "nonsense", 3, None]),
       fn=st.sampled_from(["convolve", "correlate"]),
       out=st.sampled_from([None, "fresh", "a", "v"]))
def test_fuzz_convolve_correlate(a, v, mode, fn, out):
    args = (a, v) if mode is None else (a, v, mode)
    expected = reference(getattr(np, fn), *args)
    kwargs = {}
    if out is not None and expected is not None:
        target = {"fresh": np.empty_like(expected), "a": a, "v": v}[out]
        if target.shape != expected.shape or target.dtype != expected.dtype or not target.flags.c_contiguous:
            return
        inputs = (a.copy(), v.copy())
        expected = reference(getattr(np, fn), *inputs, *args[2:])
        kwargs["out"] = target
    ours = attempt(getattr(deepret, fn), *args, **kwargs)
    if expected is None or ours is None:
        return
    if "out" in kwargs:
        assert ours is kwargs["out"]
    if finite_moderate(a, v):
        assert_values_match(fn, inputs[0] if "out" in kwargs else a, inputs[1] if "out" in kwargs else v,
                            mode, ours, expected, check_exact_reference=False)
    else:
        assert ours.shape == expected.shape and ours.dtype == expected.dtype


@FUZZ
@given(a=arrays(NUMERIC, 0, 3, max_side=7), b=arrays(NUMERIC, 0, 3, max_side=4),
       mode=st.sampled_from(["full", "same", "valid", "x", 1]),
       boundary=st.sampled_from(["fill", "wrap", "symm", "circular", "bad"]),
       fillvalue=st.sampled_from([0, 1.5, np.nan, 1e300, 1j, "x"]),
       fn=st.sampled_from(["convolve2d", "correlate2d"]), out=st.sampled_from([None, "fresh", "in1"]))
def test_fuzz_convolve2d_correlate2d(a, b, mode, boundary, fillvalue, fn, out):
    if a.ndim == 2 and b.ndim == 2 and boundary in ("wrap", "symm", "circular") and (a.size == 0 or b.size == 0):
        expected = None  # scipy itself crashes the interpreter on some of these: not called
    elif a.ndim == 2 and b.ndim == 2 and a.dtype.kind in "iufc" and b.dtype.kind in "iufc" \
            and a.dtype != np.float16 and b.dtype != np.float16:
        expected = reference(getattr(scipy.signal, fn), a.copy(), b.copy(), mode, boundary, fillvalue)
    else:
        expected = None
    kwargs = {}
    if out is not None:
        if expected is None:
            return
        target = np.empty_like(expected) if out == "fresh" else a
        if target.shape != expected.shape or target.dtype != expected.dtype or not target.flags.c_contiguous:
            return
        kwargs["out"] = target
    inputs = (a.copy(), b.copy())
    ours = attempt(getattr(deepret, fn), a, b, mode, boundary, fillvalue, **kwargs)
    if ours is None or expected is None:
        return
    assert ours.shape == expected.shape and ours.dtype == expected.dtype
    if finite_moderate(*inputs) and finite_moderate(fillvalue if isinstance(fillvalue, (int, float, complex)) else 0):
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4 * (1 + np.abs(expected).max(initial=0)))


def _conv2d_reference(x, w, b, stride, pad, dilation, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    eh, ew = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    oh, ow = (xp.shape[2] - eh) // stride[0] + 1, (xp.shape[3] - ew) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    per = o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dilation[0]:i * dilation[0] + stride[0] * (oh - 1) + 1:stride[0],
                           j * dilation[1]:j * dilation[1] + stride[1] * (ow - 1) + 1:stride[1]]
                out[:, g * per:(g + 1) * per] += np.einsum("nchw,oc->nohw", patch, w[g * per:(g + 1) * per, :, i, j])
    if b is not None:
        out += b[None, :, None, None]
    return out


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(REAL + [np.float16, np.int32]),
       n=st.integers(0, 2), c=st.integers(0, 4), h=st.integers(0, 7), w=st.integers(0, 7),
       o=st.integers(0, 4), kh=st.integers(0, 4), kw=st.integers(0, 4), groups=st.sampled_from([1, 2, 0, -1]),
       stride=st.sampled_from([1, 2, (1, 3), 0, -1, (1,), 2**40]),
       padding=st.sampled_from([0, 1, (2, 0), "same", "valid", -1, "x", 2**40]),
       dilation=st.sampled_from([1, 2, 0, (1, 2)]), bias=st.booleans(),
       out=st.sampled_from([None, "fresh", "input"]), hostile=st.booleans())
def test_fuzz_conv2d(data, dtype, n, c, h, w, o, kh, kw, groups, stride, padding, dilation, bias, out, hostile):
    cg = c // groups if groups > 0 and c % groups == 0 else max(c, 1)
    x = data.draw(hnp.arrays(dtype, (n, c, h, w), elements=_elements(dtype, hostile)))
    weight = data.draw(hnp.arrays(dtype, (o, cg, kh, kw), elements=_elements(dtype, hostile)))
    b = data.draw(hnp.arrays(dtype, (o,), elements=_elements(dtype, hostile))) if bias else None
    kwargs = {}
    pair = lambda v: v if isinstance(v, tuple) and len(v) == 2 else (v, v)  # noqa: E731
    if out is not None and dtype in REAL:
        shape = None
        if isinstance(padding, int) and isinstance(stride, int) and stride > 0 and padding >= 0 \
                and isinstance(dilation, int) and dilation > 0 and kh and kw:
            oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
            ow = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
            shape = (n, o, oh, ow)
        if shape is None or min(shape) < 0:
            return
        target = np.empty(shape, dtype) if out == "fresh" else x
        if target.shape != shape:
            return
        kwargs["out"] = target
    inputs = (x.copy(), weight.copy(), None if b is None else b.copy())
    ours = attempt(deepret.conv2d, x, weight, b, stride, padding, dilation, groups, **kwargs)
    if ours is None:
        return
    assert dtype in REAL and ours.dtype == dtype
    assert kh > 0 and kw > 0 and o >= groups > 0  # as torch: an empty kernel or o < groups raises
    if isinstance(padding, str):
        return  # shapes and values of "same"/"valid" are covered by test_conv2d.py
    if finite_moderate(*[a for a in inputs if a is not None]):
        expected = _conv2d_reference(inputs[0], inputs[1], inputs[2], pair(stride), pair(padding),
                                     pair(dilation), groups)
        np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-3 * (1 + np.abs(expected).max(initial=0)))


# ---------------------------------------------------------------- kNN and graphs

@FUZZ
@given(x=arrays(REAL + [np.int32], 1, 3, max_side=8), k=bad_ints, metric=st.sampled_from(["ip", "l2", "cos", 1]),
       queries=st.one_of(st.none(), arrays(REAL, 1, 2, max_side=8)), exclude_self=st.booleans(),
       scale=st.sampled_from([1.0, 1e18, 1e150, 1e-300]))
def test_fuzz_knn(x, k, metric, queries, exclude_self, scale):
    with np.errstate(all="ignore"):
        x = x * x.dtype.type(scale) if x.dtype.kind == "f" else x
    result = attempt(deepret.knn, x, queries, k=k, metric=metric, exclude_self=exclude_self)
    if result is None:
        return
    scores, ids = result
    q = x if queries is None else queries
    assert scores.shape == ids.shape == (len(q), k) and ids.dtype == np.int64
    assert ((ids >= 0) & (ids < len(x))).all()  # never uninitialised ids
    assert np.isfinite(scores).all()
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "ip":
        full = q64 @ x64.T
    else:
        full = (q64 ** 2).sum(1)[:, None] + (x64 ** 2).sum(1)[None, :] - 2 * q64 @ x64.T
    if queries is None and exclude_self:
        np.fill_diagonal(full, np.nan)
    picked = np.take_along_axis(full, ids, axis=1)
    assert not np.isnan(picked).any()  # exclude_self: never the point itself
    best = np.sort(np.where(np.isnan(full), np.inf if metric == "l2" else -np.inf, full), axis=1)
    best = best[:, :k] if metric == "l2" else best[:, ::-1][:, :k]
    size = np.abs(full[np.isfinite(full)]).max(initial=0) + 1e-300
    tol = 1e-4 if x.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(picked, best, rtol=tol, atol=tol * size)


@st.composite
def neighbour_lists(draw):
    n = draw(st.integers(0, 12))
    k = draw(st.integers(0, 5))
    dtype = draw(st.sampled_from(REAL + [np.float16, np.int64]))
    hostile = draw(st.booleans())
    scores = draw(hnp.arrays(dtype, (n, k), elements=_elements(dtype, hostile) if hostile or dtype == np.int64
                             else st.floats(-0.5, 1.0, width=16 if dtype == np.float16 else 32)))
    index_dtype = draw(st.sampled_from([np.int64, np.int32, np.uint16, np.float64]))
    low = -3 if draw(st.booleans()) else -1
    indices = draw(hnp.arrays(np.int64, (n, k), elements=st.integers(low, max(n + (2 if hostile else -1), 0))))
    if draw(st.booleans()) and scores.dtype.kind == "f":
        with np.errstate(over="ignore"):
            scores = scores * scores.dtype.type(draw(st.sampled_from([1e20, 1e200, -1.0])))
    return scores, indices.astype(index_dtype) if index_dtype != np.uint16 else np.abs(indices).astype(np.uint16)


def _graph_reference(scores, indices, gamma, mutual, metric, normalize):
    n, k = scores.shape
    s = scores.astype(np.float64)
    s = 1 - s / 2 if metric == "l2" else s
    top = s.max(initial=0)
    s = s / top if top > 1 else s  # overflow-free: the normalized graph does not change
    A = np.zeros((n, n))
    for i in range(n):
        for t in range(k):
            j = int(indices[i, t])
            if j >= 0 and j != i:
                A[i, j] = max(A[i, j], max(0.0, s[i, t]) ** gamma)
    A = np.minimum(A, A.T) if mutual else np.maximum(A, A.T)
    if normalize:
        d = A.sum(1)
        inv = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0)
        A = A * inv[:, None] * inv[None, :]
    return A


@FUZZ
@given(lists=neighbour_lists(), gamma=st.one_of(st.sampled_from([3.0, 1.0, 0.5, 7]), bad_reals),
       mutual=st.booleans(), metric=st.sampled_from(["ip", "l2", "x"]), normalize=st.booleans())
def test_fuzz_graph_from_knn(lists, gamma, mutual, metric, normalize):
    scores, indices = lists
    W = attempt(deepret.graph_from_knn, scores, indices, gamma=gamma, mutual=mutual, metric=metric,
                normalize=normalize)
    if W is None:
        return
    n = scores.shape[0]
    assert W.shape == (n, n) and W.dtype == scores.dtype
    assert np.isfinite(W.data).all()  # never Inf or NaN entries
    _arrays_ok(W)
    dense = W.toarray()
    np.testing.assert_array_equal(dense, dense.T)
    if normalize and 1 <= float(gamma) <= 8 and (np.abs(scores) < 1e6).all():
        expected = _graph_reference(scores, indices, float(gamma), mutual, metric, normalize)
        tol = 1e-5 if scores.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(dense, expected, rtol=tol, atol=tol)


def _arrays_ok(W):
    assert W.indptr[0] == 0 and (np.diff(W.indptr) >= 0).all() and W.indptr[-1] == len(W.indices)
    assert ((W.indices >= 0) & (W.indices < W.shape[1])).all()


@FEW
@given(x=arrays(REAL, 2, 2, min_side=1, max_side=10), k=st.integers(-1, 12), gamma=st.sampled_from([3.0, 0.0, 1e308]),
       metric=st.sampled_from(["ip", "l2"]), mutual=st.booleans())
def test_fuzz_knn_graph(x, k, gamma, metric, mutual):
    W = attempt(deepret.knn_graph, x, k=k, gamma=gamma, metric=metric, mutual=mutual)
    if W is None:
        return
    assert W.shape == (len(x), len(x)) and np.isfinite(W.data).all()
    _arrays_ok(W)


# ---------------------------------------------------------------- diffusion

@st.composite
def graphs(draw):
    """A scipy sparse W, valid or malformed (indices out of range or negative,
    indptr decreasing or inconsistent), of a drawn format and dtype."""
    n = draw(st.integers(0, 12))
    density = draw(st.floats(0, 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = sp.random(n, n, density=density, random_state=rng, format="csr") if n else sp.csr_matrix((0, 0))
    A = (A + A.T) * 0.5
    A = sp.csr_array(A)
    A.data = A.data / max(1.0, float(np.abs(A.toarray()).sum(1).max(initial=1)))  # spectral radius <= 1
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int8, np.complex64, np.bool_]))
    A = A.astype(dtype)
    flaw = draw(st.sampled_from(["none", "none", "none", "index", "negative", "indptr", "length", "nan"]))
    A = sp.csr_array((A.data.copy(), A.indices.copy(), A.indptr.copy()), shape=A.shape)
    if flaw == "index" and A.nnz:
        A.indices[draw(st.integers(0, A.nnz - 1))] = draw(st.sampled_from([n, n + 1000, 2**30]))
    elif flaw == "negative" and A.nnz:
        A.indices[draw(st.integers(0, A.nnz - 1))] = draw(st.sampled_from([-1, -5, -(2**30)]))
    elif flaw == "indptr" and n >= 2:
        A.indptr[draw(st.integers(1, n - 1))] = draw(st.sampled_from([-1, A.nnz + 5, 2**30]))
    elif flaw == "length" and A.nnz:
        A.indices = A.indices[:-1]
    elif flaw == "nan" and A.nnz and dtype in (np.float32, np.float64):
        A.data[0] = np.nan
    else:
        flaw = "none"  # nothing to break in this graph
    fmt = draw(st.sampled_from(["csr", "csr", "coo", "csc", "dense", "matrix"]))
    if fmt == "coo" and flaw == "none":
        A = A.tocoo()
    elif fmt == "csc" and flaw == "none":
        A = A.tocsc()
    elif fmt == "dense":
        A = A.toarray() if flaw == "none" else A
    elif fmt == "matrix" and flaw == "none":
        A = sp.csr_matrix(A)
    return A, flaw


@FUZZ
@given(graph=graphs(), m=st.sampled_from([None, 1, 3, 9, 17]), alpha=st.one_of(st.sampled_from([0.5, 0.99]), bad_reals),
       tol=st.sampled_from([1e-6, 0.0, -1.0, 1e-3]), maxiter=st.one_of(st.sampled_from([1, 5, 30]), bad_ints),
       ydtype=st.sampled_from([np.float32, np.float64, np.int64, np.complex128]),
       yscale=st.sampled_from([1.0, 3e38, 1e300, np.nan]), order=st.sampled_from(["auto", None, "perm", "bad"]),
       function=st.sampled_from(["diffuse", "katz", "locality_order"]))
def test_fuzz_diffusion(graph, m, alpha, tol, maxiter, ydtype, yscale, order, function):
    W, flaw = graph
    n = W.shape[0]
    if function == "locality_order":
        result = attempt(deepret.locality_order, W)
        if result is not None:
            assert flaw in ("none", "nan") and sorted(result.tolist()) == list(range(n))
        return
    if function == "katz":
        result = attempt(deepret.katz, W, alpha, tol, maxiter)
        if result is not None:
            assert flaw == "none" and result.shape == (n,)
        return
    rng = np.random.default_rng(0)
    y = rng.random(n if m is None else (n, m))
    with np.errstate(all="ignore"):
        y = (y * yscale).astype(ydtype)
    if order == "perm":
        order = rng.permutation(n)
    elif order == "bad":
        order = np.zeros(n, dtype=np.int64) + 2**33
    result = attempt(deepret.diffuse, W, y, alpha, tol, maxiter, return_info=True, order=order)
    if result is None:
        return
    f, info = result
    assert flaw == "none" and f.shape == y.shape
    assert info.iterations.shape == info.residuals.shape == ((1,) if m is None else (m,))
    # the residuals are the true ones of the f returned
    Wd = (W.toarray() if sp.issparse(W) else np.asarray(W)).astype(np.float64)
    F = f.astype(np.float64).reshape(n, -1)
    Y = y.astype(np.float64).reshape(n, -1)
    a = float(np.asarray(alpha, dtype=f.dtype))
    with np.errstate(all="ignore"):
        true = np.linalg.norm(Y - (F - a * Wd @ F), axis=0)
        norm = np.linalg.norm(Y, axis=0)
        true = np.where(norm > 0, true / np.where(norm > 0, norm, 1), 0)
    both_nan = np.isnan(true) & np.isnan(info.residuals)
    np.testing.assert_allclose(info.residuals[~both_nan], true[~both_nan], rtol=1e-4, atol=1e-9)


@FEW
@given(x=arrays(REAL, 2, 2, min_side=1, max_side=10, hostile=False), queries=arrays(REAL + [np.int32], 1, 2, max_side=5),
       k=bad_ints, gamma=st.one_of(st.sampled_from([3.0]), bad_reals), scale=st.sampled_from([1.0, 1e15, 1e200]))
def test_fuzz_query_vector(x, queries, k, gamma, scale):
    with np.errstate(all="ignore"):
        queries = queries * scale if queries.dtype.kind == "f" else queries
    y = attempt(deepret.query_vector, x, queries, k=k, gamma=gamma)
    if y is None:
        return
    assert y.shape == (len(x), 1 if queries.ndim == 1 else len(queries))
    assert np.isfinite(y.data).all() and (y.data >= 0).all()


@FEW
@given(x=arrays(REAL, 2, 2, min_side=1, max_side=12), k=st.integers(-1, 6), queries=arrays(REAL, 1, 2, max_side=4),
       topk=bad_ints, truncate=st.sampled_from([None, 3, 8, 0, 100]), alpha=st.sampled_from([0.9, 1.0, 0.0]))
def test_fuzz_diffusion_index(x, k, queries, topk, truncate, alpha):
    index = attempt(deepret.DiffusionIndex, x, k=k, alpha=alpha, truncate=truncate, query_k=3)
    if index is None:
        return
    result = attempt(index.search, queries, topk=topk)
    if result is None:
        return
    scores, ids = result
    assert ids.shape == scores.shape == (1 if queries.ndim == 1 else len(queries), topk)
    assert ((ids >= 0) & (ids < len(x))).all()


# ---------------------------------------------------------------- regions, saliency, pooling

@FUZZ
@given(s=arrays(REAL + [np.int32, np.bool_, np.float16, np.complex64], 1, 4, max_side=6),
       sigma=st.one_of(st.sampled_from([2.5, 1.0]), bad_reals), tau=st.sampled_from([0.55, 0.4, 1.0, np.nan]),
       threshold=st.sampled_from([0.4, 0.0, 1.0, -1.0]), power=st.sampled_from([5.0, 2.0, 0.0, 1e308]),
       max_iter=st.one_of(st.sampled_from([20, 1]), bad_ints), box_scale=st.sampled_from([2.0, 0.0, -1.0, 1e308]))
def test_fuzz_egm(s, sigma, tau, threshold, power, max_iter, box_scale):
    regions = attempt(deepret.egm, s, sigma=sigma, tau=tau, threshold=threshold, power=power, max_iter=max_iter,
                      box_scale=box_scale)
    if regions is None:
        return
    maps = 1 if s.ndim == 2 else len(s)
    assert len(regions.counts) == maps and int(regions.counts.sum()) == len(regions.boxes)
    assert regions.means.shape == (len(regions.boxes), 2) and regions.boxes.shape[1:] == (4,)
    assert np.isfinite(regions.means).all() and np.isfinite(regions.weights).all()
    if s.ndim == 2 and s.size and s.size <= 30 and finite_moderate(s) and power <= 5 and max_iter == 20:
        expected = ref.egm_map(np.asarray(s, np.float64), sigma=float(sigma), tau=float(tau),
                               threshold=float(threshold), power=float(power), max_iter=20,
                               box_scale=float(box_scale))
        assert len(expected["means"]) == len(regions.means)


@FUZZ
@given(a=arrays(REAL + [np.float16, np.int32, np.bool_, np.complex64], 2, 5, max_side=5),
       fn=st.sampled_from(["feature_saliency", "mac", "spoc", "gem", "rmac"]),
       p=st.one_of(st.sampled_from([3.0, 1.0]), bad_reals), levels=st.one_of(st.sampled_from([1, 3]), bad_ints))
def test_fuzz_saliency_and_global_pooling(a, fn, p, levels):
    if fn == "feature_saliency":
        ours = attempt(deepret.feature_saliency, a)
    elif fn == "gem":
        ours = attempt(deepret.gem, a, p=p)
    elif fn == "rmac":
        ours = attempt(deepret.rmac, a, levels=levels)
    else:
        ours = attempt(getattr(deepret, fn), a)
    if ours is None:
        return
    assert np.isfinite(ours).all()
    if not finite_moderate(a) or a.ndim != 3 or a.size == 0:
        return
    x = np.asarray(a, dtype=np.float64)
    expected = {"feature_saliency": lambda: ref.feature_saliency(x), "mac": lambda: ref.mac(x),
                "spoc": lambda: ref.spoc(x), "gem": lambda: ref.gem(x, p=float(p)),
                "rmac": lambda: ref.rmac(x, levels=levels)}[fn]()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


@FUZZ
@given(a=arrays(REAL + [np.int32], 3, 4, min_side=1, max_side=5),
       boxes=st.one_of(hnp.arrays(np.float64, st.tuples(st.integers(0, 4), st.just(4)),
                                  elements=st.one_of(st.floats(-3, 8), st.sampled_from([1e19, -1e19, 1e300, np.nan, np.inf]))),
                       arrays([np.int64, np.float32, np.complex64], 1, 3, max_side=5)),
       counts=st.sampled_from([None, "right", "wrong", "negative"]))
def test_fuzz_regional_max_pool(a, boxes, counts):
    if counts == "right":
        counts = [len(boxes)] + [0] * (len(a) - 1) if a.ndim == 4 else None
    elif counts == "wrong":
        counts = [len(boxes) + 1]
    elif counts == "negative":
        counts = [-1] * (len(a) if a.ndim == 4 else 1)
    ours = attempt(deepret.regional_max_pool, a, boxes, counts=counts, normalize=False)
    if ours is None:
        return
    assert ours.shape == (len(boxes), a.shape[-3]) and np.isfinite(ours).all()
    if a.ndim == 3 and finite_moderate(a):
        np.testing.assert_allclose(ours, _raw_regional(np.asarray(a, np.float64), boxes), rtol=1e-6)


def _raw_regional(a, boxes):
    c, h, w = a.shape
    out = np.empty((len(boxes), c))
    for r, (y0, x0, y1, x1) in enumerate(np.asarray(boxes, np.float64)):
        rows = [i for i in range(h) if y0 <= i <= y1]
        cols = [j for j in range(w) if x0 <= j <= x1]
        out[r] = a[:, rows][:, :, cols].max(axis=(1, 2))
    return out


@FUZZ
@given(h=bad_ints, w=bad_ints, levels=bad_ints, overlap=st.sampled_from([0.4, 0.0, 1.0, np.nan, "x"]))
def test_fuzz_rmac_regions(h, w, levels, overlap):
    boxes = attempt(deepret.rmac_regions, h, w, levels, overlap)
    if boxes is None:
        return
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and boxes.dtype == np.int64
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] < h).all() and (boxes[:, 1] >= 0).all() and (boxes[:, 3] < w).all()
    grid = [(y, x, y + side - 1, x + side - 1) for y, x, side in ref.rmac_regions(h, w, levels, overlap)]
    np.testing.assert_array_equal(boxes, np.array([(0, 0, h - 1, w - 1)] + grid).reshape(-1, 4))


@FEW
@given(a=arrays(REAL + [np.int32], 3, 4, min_side=1, max_side=6),
       method=st.sampled_from(["mac", "spoc", "gem", "rmac", "fs.egm", "nonsense"]))
def test_fuzz_describe(a, method):
    out = attempt(deepret.describe, a, method)
    if out is None:
        return
    assert np.isfinite(np.asarray(out)).all()


# ---------------------------------------------------------------- evaluation, classes, the rest

@FUZZ
@given(n=st.integers(0, 8), nq=st.integers(0, 3), data=st.data(),
       kappas=st.sampled_from([(1, 5, 10), (), (0,), (2**63,), (1.5,), "x"]),
       layout=st.sampled_from(["db_by_query", "query_by_db", "x"]))
def test_fuzz_compute_map(n, nq, data, kappas, layout):
    ranks = data.draw(hnp.arrays(np.int64, (n, nq) if layout != "query_by_db" else (nq, n),
                                 elements=st.integers(-1, n + 1)))
    ranks = ranks.astype(data.draw(st.sampled_from([np.int64, np.int32, np.float64, np.uint8])))
    gnd = [{"ok": data.draw(st.lists(st.integers(-1, n + 1), max_size=3)),
            "junk": data.draw(st.lists(st.integers(0, n), max_size=2))} for _ in range(nq)]
    if data.draw(st.booleans()) and gnd:
        gnd[0] = data.draw(st.sampled_from([{}, {"ok": None}, {"ok": [[1]]}, "x"]))
    result = attempt(evaluate.compute_map, ranks, gnd, kappas, layout=layout)
    if result is None:
        return
    aps = np.asarray(result.aps)
    assert len(aps) == nq
    # NaN only where the reference code gives it: no query with positives
    assert np.all(np.isnan(aps) | ((0 <= aps) & (aps <= 1)))
    assert (0 <= result.map <= 1) or (np.isnan(result.map) and np.isnan(aps).all())
    positions = attempt(evaluate.compute_ap, np.arange(min(n, 3)), max(n, 1))
    assert positions is None or 0 <= positions <= 1


@FEW
@given(k=st.integers(-2, 6), m=st.integers(0, 4))
def test_fuzz_regions_and_info_classes(k, m):
    fields = [np.zeros((max(k, 0), 2)), np.zeros((max(k, 0), 2)), np.zeros(max(k, 0)), np.zeros((max(k, 0), 4)),
              np.array([max(k, 0)])]
    regions = attempt(deepret.Regions, *fields)
    if regions is not None:
        assert len(regions.boxes) == max(k, 0)
        try:
            part = regions[m]
            assert len(part.boxes) == int(regions.counts[m % len(regions.counts)])
        except IndexError:  # the sequence protocol's answer to a map that is not there
            assert m >= len(regions.counts)
    info = deepret.CgInfo(np.zeros(m, np.int64), np.zeros(m))
    assert len(info.iterations) == m


def test_fuzz_every_public_name_is_covered():
    covered = {"convolve", "correlate", "convolve2d", "correlate2d", "conv2d", "knn", "graph_from_knn",
               "knn_graph", "diffuse", "katz", "locality_order", "query_vector", "DiffusionIndex", "egm",
               "feature_saliency", "mac", "spoc", "gem", "rmac", "regional_max_pool", "rmac_regions",
               "describe", "evaluate", "Regions", "CgInfo",
               # fuzzed in test_fuzz_methods.py
               "RegionSet", "ObjectSaliency", "region_graph", "object_saliency", "RegionalDiffusionIndex",
               "crow", "crow_weights", "weighted_sum_pool", "saliency_pool", "graph_eigs", "EigsInfo",
               "SpectralIndex", "average_qe", "alpha_qe", "PCAWhitening",
               # no arguments, or not functions: called or raised here
               "simd_path", "cuda_built", "has_cuda", "ConvergenceWarning", "CudaUnavailableError", "datasets"}
    assert set(deepret.__all__) <= covered, set(deepret.__all__) - covered
    assert deepret.simd_path() in ("portable", "avx2+fma", "avx512f")
    assert isinstance(deepret.cuda_built(), bool) and isinstance(deepret.has_cuda(), bool)
    assert issubclass(deepret.ConvergenceWarning, Warning) and issubclass(deepret.CudaUnavailableError, Exception)
    for name in ("nonsense", None, 3, "../etc/passwd"):
        with pytest.raises(ACCEPTED):
            deepret.datasets.load_ground_truth(name)
