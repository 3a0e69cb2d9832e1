"""deepret.convolve2d / correlate2d against scipy.signal: values on seeded
random data of awkward shapes for every mode, boundary and dtype, result
dtypes, and scipy's exceptions for bad arguments."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.signal

import deepret
from _helpers import dtype_id, random_array, to_numpy
from _tolerance import EPS, wide_dtype

FUNCTIONS = ("convolve2d", "correlate2d")
MODES = ("full", "same", "valid")
BOUNDARIES = ("fill", "wrap", "symm")
FLOAT_DTYPES = [np.dtype(t) for t in (np.float32, np.float64, np.longdouble)]
COMPLEX_DTYPES = [np.dtype(t) for t in (np.complex64, np.complex128, np.clongdouble)]
INT_DTYPES = [np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                    np.int64, np.uint64)]
SHAPES = [((1, 1), (1, 1)), ((5, 7), (3, 3)), ((17, 40), (2, 5)), ((64, 33), (7, 4)),
          ((3, 100), (9, 9)), ((31, 29), (20, 3)), ((4, 6), (11, 13)), ((1, 50), (1, 7)),
          ((50, 1), (6, 1))]


def random2d(rng, dtype, shape):
    return random_array(rng, dtype, int(np.prod(shape))).reshape(shape)


def _modulus(x, wide):
    if x.dtype.kind == "c":
        return np.abs(x.real).astype(wide) + np.abs(x.imag).astype(wide)
    return np.abs(x).astype(wide)


def assert_matches(fn, a, b, mode, boundary, fillvalue, ours, ref):
    """Integers exactly; floats within c * taps * eps * (|a| fn |b|), the sum
    of absolute products each output adds (fill included)."""
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    if ref.dtype.kind in "iu":
        np.testing.assert_array_equal(ours, ref)
        return
    wide = wide_dtype(ref.dtype)
    a_, b_ = a.astype(ref.dtype), b.astype(ref.dtype)
    fill = abs(complex(np.asarray(fillvalue, dtype=ref.dtype).reshape(-1)[0]))
    if ref.dtype.kind == "c":
        f = np.asarray(fillvalue, dtype=ref.dtype).reshape(-1)[0]
        fill = abs(f.real) + abs(f.imag)
    scale = getattr(scipy.signal, fn)(_modulus(a_, wide), _modulus(b_, wide), mode, boundary,
                                      fill)
    terms = b.size * (2 if ref.dtype.kind == "c" else 1)
    bound = wide.type(3 * max(terms, 1)) * wide.type(EPS[ref.dtype]) * scale
    for part in ((lambda z: z.real, lambda z: z.imag) if ref.dtype.kind == "c" else (lambda z: z,)):
        diff = np.abs(part(ours).astype(wide) - part(ref).astype(wide))
        bad = ~(diff <= bound)
        assert not bad.any(), f"{bad.sum()} outputs off, worst {diff.max()} (bound {bound.max()})"


def run_both(fn, a, b, mode, boundary, fillvalue=0, xp=np):
    ref = getattr(scipy.signal, fn)(a, b, mode, boundary, fillvalue)
    ours = getattr(deepret, fn)(xp.asarray(a), xp.asarray(b), mode, boundary, fillvalue)
    assert isinstance(ours, xp.ndarray)
    assert_matches(fn, a, b, mode, boundary, fillvalue, to_numpy(ours), ref)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_float_shapes(simd, fn, mode, boundary):
    rng = np.random.default_rng([1, MODES.index(mode), BOUNDARIES.index(boundary)])
    for dtype in (np.float32, np.float64):
        for s1, s2 in SHAPES:
            for x, y in ((s1, s2), (s2, s1)):
                if mode == "valid" and not (all(p >= q for p, q in zip(x, y))
                                            or all(p <= q for p, q in zip(x, y))):
                    continue
                a, b = random2d(rng, dtype, x), random2d(rng, dtype, y)
                run_both(fn, a, b, mode, boundary, rng.uniform(-2, 2))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + COMPLEX_DTYPES + INT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_dtypes(xp, fn, dtype):
    if xp is not np and dtype in (np.longdouble, np.clongdouble):
        pytest.skip("no long double on the GPU")
    rng = np.random.default_rng([2, (FLOAT_DTYPES + COMPLEX_DTYPES + INT_DTYPES).index(dtype)])
    for (s1, s2), mode, boundary in zip(SHAPES, MODES * 3, BOUNDARIES * 3):
        a, b = random2d(rng, dtype, s1), random2d(rng, dtype, s2)
        fill = 3 if dtype.kind in "iu" else (1.5 - 2j if dtype.kind == "c" else -0.5)
        run_both(fn, a, b, "full" if mode == "valid" else mode, boundary, fill, xp)


MIXED = [(np.int8, np.uint8), (np.float32, np.int32), (np.bool_, np.int8), (np.complex64, np.float64),
         (np.int64, np.uint64), (np.float16, np.float32), (np.uint32, np.int32), (np.int16, np.float32)]


@pytest.mark.parametrize("pair", MIXED, ids=lambda p: f"{np.dtype(p[0]).name}-{np.dtype(p[1]).name}")
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_mixed_dtypes(fn, pair):
    rng = np.random.default_rng(3)
    a = random2d(rng, pair[0], (9, 12))
    b = random2d(rng, pair[1], (4, 3))
    for mode in MODES:
        run_both(fn, a, b, mode, "symm")


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_large_threads_and_paths(simd, fn):
    """Sizes that split into many parallel tasks with interior and edges."""
    rng = np.random.default_rng(4)
    a = random2d(rng, np.float32, (301, 257))
    for k in ((3, 3), (5, 5), (7, 7), (15, 15), (4, 9)):
        b = random2d(rng, np.float32, k)
        for mode, boundary in (("same", "fill"), ("full", "wrap"), ("valid", "symm")):
            ref = getattr(scipy.signal, fn)(a, b, mode, boundary, 0.25)
            for threads in (1, 2, 3):
                ours = getattr(deepret, fn)(a, b, mode, boundary, 0.25, num_threads=threads)
                assert_matches(fn, a, b, mode, boundary, 0.25, ours, ref)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_non_contiguous_and_valid_swap(fn):
    rng = np.random.default_rng(5)
    big = random2d(rng, np.complex128, (40, 60))
    small = random2d(rng, np.complex128, (8, 10))
    for a, b in ((big[::2, ::3], small.T), (big.T, small[::-1]), (small[:, ::2], big[::3, ::-2])):
        for mode in MODES:
            run_both(fn, a, b, mode, "fill", 2 + 1j)
            run_both(fn, b, a, mode, "wrap")


def test_valid_swap_result_is_scipys_view():
    rng = np.random.default_rng(6)
    a, b = random2d(rng, np.float64, (3, 4)), random2d(rng, np.float64, (7, 9))
    ref = scipy.signal.correlate2d(a, b, "valid")
    ours = deepret.correlate2d(a, b, "valid")
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
    out = np.empty_like(ref)
    assert deepret.correlate2d(a, b, "valid", out=out) is out
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_inf_nan_fill_and_kernel():
    a = np.ones((5, 6))
    b = np.ones((3, 3))
    b[1, 1] = np.inf
    for mode in MODES:
        for fill in (0, np.nan, np.inf):
            ref = scipy.signal.convolve2d(a, b, mode, "fill", fill)
            np.testing.assert_array_equal(deepret.convolve2d(a, b, mode, "fill", fill), ref)


def test_out_and_num_threads():
    rng = np.random.default_rng(7)
    a, b = random2d(rng, np.float32, (20, 30)), random2d(rng, np.float32, (3, 5))
    out = np.empty((20, 30), np.float32)
    assert deepret.convolve2d(a, b, "same", out=out, num_threads=2) is out
    assert_matches("convolve2d", a, b, "same", "fill", 0, out,
                   scipy.signal.convolve2d(a, b, "same"))
    with pytest.raises(ValueError, match="out must have shape"):
        deepret.convolve2d(a, b, "full", out=out)
    with pytest.raises(ValueError, match="num_threads"):
        deepret.convolve2d(a, b, num_threads=0)


# ------------------------------------------------------------------- errors
def outcome(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = call()
        except Exception as error:  # noqa: BLE001 - comparing exceptions is the point
            return type(error), str(error)
    return "ok", np.asarray(result).dtype, np.asarray(result).shape


A = np.arange(12.0).reshape(3, 4)
K = np.ones((2, 2))
BAD_CALLS = [
    ("1-D in1", (A[0], K), {}),
    ("3-D in2", (A, K[None]), {}),
    ("scalar in1", (1.0, K), {}),
    ("valid sizes", (np.ones((3, 5)), np.ones((4, 2)), "valid"), {}),
    ("mode FULL", (A, K, "FULL"), {}),
    ("mode int", (A, K, 2), {}),
    ("mode None", (A, K, None), {}),
    ("boundary reflect", (A, K), {"boundary": "reflect"}),
    ("boundary FILL", (A, K), {"boundary": "FILL"}),
    ("boundary None", (A, K), {"boundary": None}),
    ("bool", (A > 3, K > 0), {}),
    ("float16", (A.astype(np.float16), K.astype(np.float16)), {}),
    ("object", (A.astype(object), K), {}),
    ("string", (A.astype("U3"), K.astype("U3")), {}),
    ("datetime", (A.astype("M8[s]"), K.astype("M8[s]")), {}),
    ("list input", ([[1, 2], [3, 4]], [[1]]), {}),
]
FILLS = [0, 1.5, 2 + 3j, np.array([1]), np.array([[1]]), np.array([1, 2]), np.array([]), "x",
         None, [1], np.nan, 1e300, True, np.float64(1.5), np.int64(7), np.complex128(1j),
         np.array(2.5, np.float32)]
FILL_DTYPES = [np.float64, np.int32, np.complex64, np.float32, np.uint8]


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("case", BAD_CALLS, ids=lambda c: c[0])
def test_errors_match_scipy(fn, case):
    _, args, kwargs = case
    ref = outcome(lambda: getattr(scipy.signal, fn)(*args, **kwargs))
    ours = outcome(lambda: getattr(deepret, fn)(*args, **kwargs))
    assert ours == ref


@pytest.mark.parametrize("dtype", FILL_DTYPES, ids=dtype_id)
def test_fillvalue_rules_match_scipy(dtype):
    a = np.arange(12).reshape(3, 4).astype(dtype)
    k = np.ones((2, 2), dtype)
    for fill in FILLS:
        for boundary in ("fill", "wrap"):
            ref = outcome(lambda: scipy.signal.convolve2d(a, k, boundary=boundary, fillvalue=fill))
            ours = outcome(lambda: deepret.convolve2d(a, k, boundary=boundary, fillvalue=fill))
            assert ours == ref, (fill, boundary)
            if ref[0] == "ok":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    np.testing.assert_array_equal(
                        deepret.correlate2d(a, k, boundary=boundary, fillvalue=fill),
                        scipy.signal.correlate2d(a, k, boundary=boundary, fillvalue=fill))


def test_empty_inputs():
    for s1, s2, mode in [((0, 5), (1, 2), "full"), ((3, 5), (0, 2), "full"), ((3, 5), (0, 2), "same"),
                         ((3, 5), (0, 2), "valid"), ((3, 0), (2, 2), "full"), ((0, 5), (1, 2), "same")]:
        a, b = np.ones(s1), np.ones(s2)
        for fn in FUNCTIONS:
            ref = getattr(scipy.signal, fn)(a, b, mode, "fill", 2.0)
            np.testing.assert_array_equal(getattr(deepret, fn)(a, b, mode, "fill", 2.0), ref)
    with pytest.raises(ValueError, match="non-empty image"):
        deepret.convolve2d(np.ones((3, 0)), np.ones((2, 2)), boundary="wrap")
