"""hypothesis property tests of deepret.convolve / deepret.correlate.

derandomize=True makes every run draw the same examples (reproducible, no
database); each property is checked on every CPU SIMD path.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deepret
from _helpers import (
    ALL_MODES,
    FUNCTIONS,
    INT_DTYPES,
    NATIVE_DTYPES,
    UINT_DTYPES,
    assert_matches_numpy,
    assert_values_match,
    on_each_simd_path,
)
from _tolerance import error_bound, within_bound

SETTINGS = settings(
    deadline=None,
    max_examples=60,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Elements drawn in a dtype hypothesis knows, then cast (long double types).
_BASE = {
    np.dtype(np.longdouble): np.dtype(np.float64),
    np.dtype(np.clongdouble): np.dtype(np.complex128),
}


def _elements(dtype: np.dtype):
    if dtype.kind in "biu":
        return hnp.from_dtype(dtype)  # full range: wrap-around included
    if dtype == np.float16:
        return st.floats(-2, 2, width=16)
    if dtype == np.float32:
        return st.floats(-1e3, 1e3, width=32)
    if dtype.kind == "f":
        return st.floats(-1e6, 1e6)
    if dtype == np.complex64:
        return st.complex_numbers(max_magnitude=1e3, width=64)
    return st.complex_numbers(max_magnitude=1e6)


@st.composite
def arrays(draw, dtypes=tuple(NATIVE_DTYPES), min_len=1, max_len=48, length=None):
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    n = draw(st.integers(min_len, max_len)) if length is None else length
    base = _BASE.get(dtype, dtype)
    return draw(hnp.arrays(base, n, elements=_elements(dtype))).astype(dtype)


modes = st.sampled_from(ALL_MODES)
functions = st.sampled_from(FUNCTIONS)
REAL_DTYPES = tuple(d for d in NATIVE_DTYPES if d.kind != "c")
WRAPPING = tuple(INT_DTYPES + UINT_DTYPES)


def _equal_or_close(fn, a, v, mode, x, y):
    """x and y, two computations of fn(a, v, mode), agree: exactly for
    integers and bool, within the float bound otherwise."""
    assert x.dtype == y.dtype and x.shape == y.shape
    if x.dtype.kind in "biu":
        np.testing.assert_array_equal(x, y)
        return
    A, V = a.astype(x.dtype), v.astype(x.dtype)
    bound = error_bound(fn, A, V, mode, x.dtype)
    if x.dtype == np.float16:
        from _tolerance import float16_rounding

        bound = bound + float16_rounding(x, y)
    assert within_bound(x, y, bound).all(), (x, y, bound)


@SETTINGS
@given(fn=functions, mode=modes, a=arrays(), v=arrays())
def test_matches_numpy_any_dtypes(fn, mode, a, v):
    on_each_simd_path(lambda _: assert_matches_numpy(fn, a, v, mode))


@SETTINGS
@given(fn=functions, mode=modes, a=arrays(max_len=300), data=st.data())
def test_matches_numpy_same_dtype(fn, mode, a, data):
    v = data.draw(arrays(dtypes=(a.dtype,), max_len=300))
    on_each_simd_path(lambda _: assert_matches_numpy(fn, a, v, mode))


@SETTINGS
@given(mode=modes, data=st.data())
def test_convolve_commutes(mode, data):
    dtype = data.draw(st.sampled_from(NATIVE_DTYPES))
    n = data.draw(st.integers(1, 64))
    a = data.draw(arrays(dtypes=(dtype,), length=n))
    # equal lengths (no swap inside numpy) and arbitrary lengths
    for v in (data.draw(arrays(dtypes=(dtype,), length=n)), data.draw(arrays(dtypes=(dtype,)))):
        def check(_):
            _equal_or_close("convolve", a, v, mode, deepret.convolve(a, v, mode),
                            deepret.convolve(v, a, mode))
        on_each_simd_path(check)


@SETTINGS
@given(fn=functions, mode=modes, data=st.data())
def test_integer_linearity_is_exact(fn, mode, data):
    """Integer convolution is linear modulo 2^bits, wrap-around included."""
    dtype = data.draw(st.sampled_from(WRAPPING))
    n = data.draw(st.integers(1, 64))
    a1 = data.draw(arrays(dtypes=(dtype,), length=n))
    a2 = data.draw(arrays(dtypes=(dtype,), length=n))
    v = data.draw(arrays(dtypes=(dtype,)))
    k = np.array(data.draw(st.integers(0, 255))).astype(dtype)[()]  # wraps for int8

    def check(_):
        f = getattr(deepret, fn)
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(f(a1 + a2, v, mode), f(a1, v, mode) + f(a2, v, mode))
            np.testing.assert_array_equal(f(a1 * k, v, mode), f(a1, v, mode) * k)
    on_each_simd_path(check)


@SETTINGS
@given(fn=functions, mode=modes, data=st.data())
def test_float_linearity_within_bound(fn, mode, data):
    dtype = data.draw(st.sampled_from([np.dtype(np.float64), np.dtype(np.complex128)]))
    n = data.draw(st.integers(1, 64))
    a1 = data.draw(arrays(dtypes=(dtype,), length=n))
    a2 = data.draw(arrays(dtypes=(dtype,), length=n))
    v = data.draw(arrays(dtypes=(dtype,)))

    def check(_):
        f = getattr(deepret, fn)
        lhs = f(a1 + a2, v, mode)
        rhs = f(a1, v, mode) + f(a2, v, mode)
        # three sums of m_eff products plus the rounding of a1 + a2
        mag = np.abs(a1) + np.abs(a2)
        bound = error_bound(fn, mag, np.abs(v), mode, np.float64, c=8) * (2 if dtype.kind == "c" else 1)
        assert within_bound(lhs, rhs, bound).all()
    on_each_simd_path(check)


def _check_convolve_as_correlate(a, v, taps, mode):
    """convolve(a, v) == correlate(a, taps) with taps = conj(v[::-1]).

    numpy's own identity fails in 'same' mode when len(v) > len(a) (numpy
    swaps the arguments and 'same' centres asymmetrically for even lengths);
    there the correlate side is checked against numpy instead.
    """
    conv = deepret.convolve(a, v, mode)
    if mode in ("same", 1) and len(v) > len(a):
        assert_matches_numpy("correlate", a, taps, mode)
        assert_matches_numpy("convolve", a, v, mode)
    else:
        _equal_or_close("convolve", a, v, mode, conv, deepret.correlate(a, taps, mode))


@SETTINGS
@given(mode=modes, a=arrays(dtypes=REAL_DTYPES), data=st.data())
def test_convolve_is_correlate_with_reversed_taps(mode, a, data):
    v = data.draw(arrays(dtypes=(a.dtype,)))

    on_each_simd_path(lambda _: _check_convolve_as_correlate(a, v, v[::-1], mode))


@SETTINGS
@given(mode=modes, a=arrays(dtypes=(np.dtype(np.complex64), np.dtype(np.complex128))), data=st.data())
def test_convolve_is_correlate_with_conjugated_reversed_taps(mode, a, data):
    v = data.draw(arrays(dtypes=(a.dtype,)))

    on_each_simd_path(lambda _: _check_convolve_as_correlate(a, v, v[::-1].conj(), mode))


@SETTINGS
@given(fn=functions, mode=modes, a=arrays(), data=st.data())
def test_out_gives_the_same_values(fn, mode, a, data):
    v = data.draw(arrays(dtypes=(a.dtype,)))

    def check(_):
        f = getattr(deepret, fn)
        plain = f(a, v, mode)
        out = np.empty_like(plain)
        got = f(a, v, mode, out=out)
        assert got is out
        np.testing.assert_array_equal(out, plain)
        assert_values_match(fn, a, v, mode, out, getattr(np, fn)(a, v, mode))
    on_each_simd_path(check)


@SETTINGS
@given(fn=functions, mode=modes, a=arrays(min_len=300, max_len=2000), data=st.data())
def test_num_threads_do_not_change_results(fn, mode, a, data):
    # taps >= 256 make the kernel's grain its minimum (256 outputs), so that
    # these lengths really split over threads
    v = data.draw(arrays(dtypes=(a.dtype,), min_len=256, max_len=400))

    def check(_):
        f = getattr(deepret, fn)
        one = f(a, v, mode, num_threads=1)
        np.testing.assert_array_equal(f(a, v, mode, num_threads=2), one)
        np.testing.assert_array_equal(f(a, v, mode, num_threads=3), one)
    on_each_simd_path(check)
