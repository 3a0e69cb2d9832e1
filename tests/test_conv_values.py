"""Hand-picked cases against numpy: known values, conjugation, argument
swapping, python scalars and lists, 0-d arrays, promotion, wrap-around,
booleans, non-finite values, default modes."""

from __future__ import annotations

import numpy as np
import pytest

import deepret
from _helpers import (
    ALL_MODES,
    COMPLEX_DTYPES,
    FUNCTIONS,
    NATIVE_DTYPES,
    STRING_MODES,
    assert_matches_numpy,
    dtype_id,
    random_array,
)


def test_numpy_docstring_examples(simd):
    np.testing.assert_array_equal(deepret.convolve([1, 2, 3], [0, 1, 0.5]), [0.0, 1.0, 2.5, 4.0, 1.5])
    np.testing.assert_array_equal(deepret.convolve([1, 2, 3], [0, 1, 0.5], "same"), [1.0, 2.5, 4.0])
    np.testing.assert_array_equal(deepret.convolve([1, 2, 3], [0, 1, 0.5], "valid"), [2.5])
    np.testing.assert_array_equal(deepret.correlate([1, 2, 3], [0, 1, 0.5]), [3.5])
    np.testing.assert_array_equal(deepret.correlate([1, 2, 3], [0, 1, 0.5], "same"), [2.0, 3.5, 3.0])
    np.testing.assert_array_equal(deepret.correlate([1, 2, 3], [0, 1, 0.5], "full"),
                                  [0.5, 2.0, 3.5, 3.0, 0.0])
    np.testing.assert_array_equal(deepret.correlate([1 + 1j, 2, 3 - 1j], [0, 1, 0.5j], "full"),
                                  [0.5 - 0.5j, 1.0 + 0j, 1.5 - 1.5j, 3.0 - 1j, 0.0 + 0j])
    np.testing.assert_array_equal(deepret.correlate([0, 1, 0.5j], [1 + 1j, 2, 3 - 1j], "full"),
                                  [0.0 + 0j, 3.0 + 1j, 1.5 + 1.5j, 1.0 + 0j, 0.5 + 0.5j])


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_default_mode(fn, simd):
    rng = np.random.default_rng(1)
    a, v = rng.standard_normal(50), rng.standard_normal(7)
    ours = assert_matches_numpy(fn, a, v)  # no mode argument
    assert ours.shape == ((56,) if fn == "convolve" else (44,))


@pytest.mark.parametrize("dtype", COMPLEX_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("mode", STRING_MODES)
@pytest.mark.parametrize("n, m", [(9, 4), (4, 9), (6, 6), (1, 5), (5, 1)])
def test_correlate_conjugates_v(dtype, mode, n, m, simd):
    rng = np.random.default_rng([2, n, m])
    a, v = random_array(rng, dtype, n), random_array(rng, dtype, m)
    ours = assert_matches_numpy("correlate", a, v, mode)
    # the definition: c[k] = sum_n a[n + k] conj(v[n]), not the unconjugated sum
    unconj = np.correlate(a, v.conj(), mode)
    assert not np.allclose(ours, unconj)
    # convolve does not conjugate
    assert_matches_numpy("convolve", a, v, mode)


@pytest.mark.parametrize("mode", STRING_MODES)
def test_correlate_swapped_arguments_reverse_and_conjugate(mode, simd):
    """numpy: correlate(v, a) is the time-reversed conjugate of correlate(a, v)
    in 'full' mode; both orders must match numpy in every mode."""
    rng = np.random.default_rng(3)
    a, v = random_array(rng, np.complex128, 11), random_array(rng, np.complex128, 4)
    forward = assert_matches_numpy("correlate", a, v, mode)
    backward = assert_matches_numpy("correlate", v, a, mode)
    if mode == "full":
        np.testing.assert_allclose(backward, forward[::-1].conj(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("n, m", [(1, 7), (2, 7), (3, 8), (4, 8), (6, 7), (7, 6), (8, 3), (8, 4)])
def test_both_argument_orders_even_and_odd(fn, mode, n, m, simd):
    """Length parities decide numpy's 'same' offset and the swap."""
    a = np.arange(1, n + 1, dtype=np.int64) * 10 ** np.arange(n) % 1000003
    v = np.arange(3, m + 3, dtype=np.int64) ** 3
    assert_matches_numpy(fn, a, v, mode)
    assert_matches_numpy(fn, v, a, mode)


# ---------------------------------------------------------- scalars and lists

@pytest.mark.parametrize(
    "a, v",
    [
        (3, 4),
        (3, [1, 2, 3]),
        ([1, 2, 3], 4),
        (2.5, [1, 2]),
        (True, [True, False]),
        (1j, [1, 2j]),
        (np.float32(2.5), np.float32(3)),
        (np.int8(100), np.int8(100)),
        (np.uint64(2**64 - 1), [2]),
        (np.array(2.0), [1.0, 2.0, 3.0]),
        ([1.0, 2.0, 3.0], np.array(2.0)),
        (np.array(3, dtype=np.int16), np.array(4, dtype=np.int16)),
        (np.array(1 + 2j), np.array([1j, 2])),
        (np.array(True), np.array(True)),
        ([2**63, 1], [3]),          # uint64 list
        ([-(2**63), 1], [3, 5]),    # int64 list, wraps
        ([1, 2.5, 3], [1, 2]),      # float list
        ([1, 2j], [3.0, 4.0]),      # complex list
        ([True, False, True], [True]),
        ([1, 2, 3], [np.float16(1.5)]),
        ((1, 2, 3), (4, 5)),        # tuples
    ],
    ids=repr,
)
@pytest.mark.parametrize("mode", STRING_MODES)
def test_convolve_scalars_lists_0d(a, v, mode, simd):
    assert_matches_numpy("convolve", a, v, mode)


@pytest.mark.parametrize(
    "a, v",
    [([1, 2, 3], [4, 5]), ([1.5, 2.5], [1, 2, 3, 4]), ((1, 2j), [3]), ([2**63, 7], [3, 2]),
     ([True, False], [True, True, False])],
    ids=repr,
)
@pytest.mark.parametrize("mode", STRING_MODES)
def test_correlate_lists(a, v, mode, simd):
    assert_matches_numpy("correlate", a, v, mode)


# ------------------------------------------------------------------- dtypes

@pytest.mark.parametrize(
    "ta, tb, expected",
    [
        (np.int8, np.uint8, np.int16),
        (np.int64, np.uint64, np.float64),
        (np.float32, np.int32, np.float64),
        (np.float16, np.int8, np.float16),
        (np.bool_, np.int8, np.int8),
        (np.complex64, np.float64, np.complex128),
        (np.float16, np.int16, np.float32),
        (np.bool_, np.bool_, np.bool_),
        (np.longdouble, np.complex64, np.clongdouble),
    ],
    ids=lambda t: getattr(t, "__name__", str(t)),
)
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_promotion(ta, tb, expected, fn, simd):
    rng = np.random.default_rng(4)
    a, v = random_array(rng, ta, 37), random_array(rng, tb, 5)
    for x, y in ((a, v), (v, a)):
        ours = assert_matches_numpy(fn, x, y, "full")
        assert ours.dtype == np.dtype(expected)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_integer_wraparound_known_values(fn, simd):
    a = np.array([127, 127, -128], dtype=np.int8)
    v = np.array([127], dtype=np.int8)
    ours = assert_matches_numpy(fn, a, v, "full")
    # 127*127 = 16129 = 63*256 + 1 -> 1 ; -128*127 = -16256 = -64*256 + 128 -> -128
    np.testing.assert_array_equal(ours, np.array([1, 1, -128], dtype=np.int8))
    u = np.full(300, 2**64 - 1, dtype=np.uint64)
    ours = assert_matches_numpy(fn, u, u[:200], "valid")
    # (2^64-1)^2 = 1 mod 2^64, summed 200 times
    np.testing.assert_array_equal(ours, np.full(101, 200, dtype=np.uint64))


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("mode", STRING_MODES)
def test_bool_is_or_of_ands(fn, mode, simd):
    rng = np.random.default_rng(5)
    for n, m in [(1, 1), (50, 3), (3, 50), (1000, 37), (37, 1000), (200, 200)]:
        a = rng.random(n) < 0.03
        v = rng.random(m) < 0.1
        ours = assert_matches_numpy(fn, a, v, mode)
        assert ours.dtype == np.bool_
        # definition in integers: any product nonzero
        ints = getattr(np, fn)(a.astype(np.int64), v.astype(np.int64), mode)
        np.testing.assert_array_equal(ours, ints != 0)
    # all-true inputs: no carry into other bits (bytes hold 0 or 1 only)
    ours = deepret.convolve(np.ones(300, bool), np.ones(300, bool), mode)
    assert ours.view(np.uint8).max() == 1


@pytest.mark.parametrize("dtype", NATIVE_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_zeros_and_ones(dtype, fn, simd):
    for n, m in [(1, 1), (70, 9), (9, 70), (1200, 600)]:
        a, v = np.ones(n, dtype), np.zeros(m, dtype)
        for mode in STRING_MODES:
            ours = assert_matches_numpy(fn, a, v, mode)
            assert not ours.any()
            ours = assert_matches_numpy(fn, a, np.ones(m, dtype), mode)


# --------------------------------------------------------- non-finite values

NONFINITE_CASES = [
    ([1.0, 2.0, 3.0], [np.inf, 1.0]),
    ([1.0, 2.0, 3.0], [1.0, np.inf]),
    ([1.0, 2.0, 3.0], [np.nan, 1.0]),
    ([np.inf, 1.0, 2.0], [1.0, 1.0]),
    ([1.0, 2.0], [1.0, np.inf, 3.0]),
    ([1.0, 2.0], [np.nan, 1.0, 1.0]),
    (list(range(1, 41)), [np.inf, 1.0, 1.0]),
    (list(range(1, 41)), [1.0, 1.0, -np.inf]),
    ([1.0, -np.inf, np.inf, 4.0], [2.0, 3.0]),
    ([1.0, 2.0, 3.0, 4.0, 5.0], [0.0, np.nan, 0.0]),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.longdouble, np.complex128, np.float16])
@pytest.mark.parametrize("mode", STRING_MODES)
@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("case", range(len(NONFINITE_CASES)))
def test_nonfinite_like_numpy(case, fn, mode, dtype, simd):
    """inf/nan reach exactly the outputs whose products include them in
    numpy's sum (taps outside the signal are not multiplied at all)."""
    a, v = NONFINITE_CASES[case]
    a, v = np.array(a, dtype=dtype), np.array(v, dtype=dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        assert_matches_numpy(fn, a, v, mode)
        assert_matches_numpy(fn, v, a, mode)
