"""The keyword-only extras of deepret: ``out=`` and ``num_threads=``."""

from __future__ import annotations

import numpy as np
import pytest

import deepret
from _helpers import (
    ALL_MODES,
    FUNCTIONS,
    NATIVE_DTYPES,
    STRING_MODES,
    assert_values_match,
    dtype_id,
    random_array,
)


def _garbage(shape, dtype):
    """An out buffer whose every element differs from what will be written."""
    out = np.empty(shape, dtype)
    out.view(np.uint8)[...] = 0xA5
    return out


@pytest.mark.parametrize("dtype", NATIVE_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_out_is_written_and_returned(fn, mode, dtype, simd):
    rng = np.random.default_rng([7, NATIVE_DTYPES.index(dtype), ALL_MODES.index(mode)])
    for n, m in [(1, 1), (300, 13), (13, 300), (64, 64)]:
        a, v = random_array(rng, dtype, n), random_array(rng, dtype, m)
        ref = getattr(np, fn)(a, v, mode)
        out = _garbage(ref.shape, ref.dtype)
        got = getattr(deepret, fn)(a, v, mode, out=out)
        assert got is out
        assert_values_match(fn, a, v, mode, out, ref)
        np.testing.assert_array_equal(out, getattr(deepret, fn)(a, v, mode))


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_out_mixed_dtypes_and_lists(fn, simd):
    a = [1, 2, 3, 4]
    v = np.array([0.5, 0.25], dtype=np.float32)
    ref = getattr(np, fn)(a, v, "full")
    out = _garbage(ref.shape, ref.dtype)
    assert getattr(deepret, fn)(a, v, "full", out=out) is out
    assert_values_match(fn, a, v, "full", out, ref)
    out16 = _garbage((4,), np.float16)
    a16 = np.arange(4, dtype=np.float16)
    assert getattr(deepret, fn)(a16, np.int8([3]), out=out16) is out16
    np.testing.assert_array_equal(out16, getattr(np, fn)(a16, np.int8([3])))


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize(
    "out",
    [
        np.empty(9, np.float64),             # too long
        np.empty(7, np.float64),             # too short
        np.empty((1, 8), np.float64),        # right size, wrong shape
        np.empty((8, 1), np.float64),
        np.empty((), np.float64),
        np.empty(8, np.float32),             # wrong dtype
        np.empty(8, np.complex128),
        np.empty(8, np.longdouble),
        np.empty(8, np.int64),
        np.empty(8, np.dtype(">f8")),        # non-native byte order
        np.empty(16, np.float64)[::2],       # not contiguous
        np.empty(8, np.float64)[::-1],       # negative stride
    ],
    ids=lambda o: f"{o.dtype.str}{o.shape}{'c' if o.flags.c_contiguous else 'nc'}",
)
def test_bad_out_raises_value_error(fn, out):
    a, v = np.arange(5.0), np.arange(4.0)  # full: 8 outputs, float64
    with pytest.raises(ValueError):
        getattr(deepret, fn)(a, v, "full", out=out)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_readonly_out_raises_value_error(fn):
    out = np.empty(8)
    out.flags.writeable = False
    with pytest.raises(ValueError):
        getattr(deepret, fn)(np.arange(5.0), np.arange(4.0), "full", out=out)


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("out", [[0.0] * 8, (0.0,) * 8, 0.0], ids=["list", "tuple", "float"])
def test_out_not_an_array_raises_type_error(fn, out):
    with pytest.raises(TypeError):
        getattr(deepret, fn)(np.arange(5.0), np.arange(4.0), "full", out=out)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_out_on_bool_wrong_dtype(fn):
    a, v = np.array([True, False, True]), np.array([True])
    with pytest.raises(ValueError):
        getattr(deepret, fn)(a, v, "full", out=np.empty(3, np.uint8))
    out = np.empty(3, np.bool_)
    assert getattr(deepret, fn)(a, v, "full", out=out) is out
    np.testing.assert_array_equal(out, [True, False, True])


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int32, np.uint8,
                                   np.bool_, np.float16, np.longdouble], ids=dtype_id)
@pytest.mark.parametrize("n, m", [(100003, 7), (7, 100003), (50021, 257), (6007, 1031)])
def test_num_threads_one_and_two_identical(fn, dtype, n, m, simd):
    rng = np.random.default_rng([8, n, m])
    a, v = random_array(rng, dtype, n), random_array(rng, dtype, m)
    for mode in STRING_MODES:
        one = getattr(deepret, fn)(a, v, mode, num_threads=1)
        two = getattr(deepret, fn)(a, v, mode, num_threads=2)
        default = getattr(deepret, fn)(a, v, mode)
        np.testing.assert_array_equal(two, one)
        np.testing.assert_array_equal(default, one)
        assert one.dtype == two.dtype == np.result_type(a, v)
    # and the threaded result is numpy's
    assert_values_match(fn, a, v, "full", getattr(deepret, fn)(a, v, "full", num_threads=2),
                        getattr(np, fn)(a, v, "full"), check_exact_reference=False)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_out_and_num_threads_together(fn, simd):
    rng = np.random.default_rng(9)
    a, v = random_array(rng, np.float64, 30011), random_array(rng, np.float64, 101)
    ref = getattr(deepret, fn)(a, v, "same", num_threads=1)
    out = _garbage(ref.shape, ref.dtype)
    assert getattr(deepret, fn)(a, v, "same", out=out, num_threads=2) is out
    np.testing.assert_array_equal(out, ref)


BAD_THREADS = [0, -1, -(2**40), 1.5, 2.0, True, False, "2", [2], np.float64(2.0)]


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("num_threads", BAD_THREADS, ids=repr)
def test_bad_num_threads_raises_value_error(fn, num_threads):
    with pytest.raises(ValueError, match="num_threads"):
        getattr(deepret, fn)(np.arange(5.0), np.arange(3.0), num_threads=num_threads)


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("num_threads", [1, 2, 3, 64, None])
def test_good_num_threads(fn, num_threads):
    a, v = np.arange(50.0), np.arange(3.0)
    np.testing.assert_array_equal(getattr(deepret, fn)(a, v, num_threads=num_threads),
                                  getattr(np, fn)(a, v))


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_extras_are_keyword_only(fn):
    with pytest.raises(TypeError):
        getattr(deepret, fn)(np.arange(5.0), np.arange(3.0), "full", np.empty(7))


# Inputs deepret hands to numpy (object dtype) take the same keywords: out= is
# still written and returned, and num_threads= is still validated.

@pytest.mark.parametrize("fn", FUNCTIONS)
def test_out_with_object_input(fn):
    a = np.array([1, 2.5, 3], dtype=object)
    v = [1, 2]
    ref = getattr(np, fn)(a, v, "full")
    out = np.empty(ref.shape, dtype=object)
    got = getattr(deepret, fn)(a, v, "full", out=out)
    assert got is out
    assert out.tolist() == ref.tolist()


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("num_threads", [0, -1, 1.5, True], ids=repr)
def test_bad_num_threads_with_object_input(fn, num_threads):
    with pytest.raises(ValueError, match="num_threads"):
        getattr(deepret, fn)(np.array([1, 2.5, 3], dtype=object), [1, 2], num_threads=num_threads)
