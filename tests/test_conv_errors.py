"""numpy's exceptions and messages, in numpy's order of checks, and numpy's
results for the dtypes deepret hands to numpy (object, strings, datetimes).

Every case calls numpy and deepret on the same arguments: deepret must raise
the same exception type with the same message, or return what numpy returns.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

import deepret
from _helpers import FUNCTIONS, assert_same_outcome

# Inputs numpy rejects (or, for some functions, accepts): empty, too deep,
# too shallow.  Pairs (a, v), given by name for readable ids.
BAD_INPUTS = {
    "empty_a": ([], [1]),
    "empty_v": ([1], []),
    "empty_both": ([], []),
    "empty_a_long_v": ([], [1, 2, 3]),
    "empty_v_long_a": ([1, 2, 3], []),
    "empty_float_array_a": (np.array([], dtype=np.float64), np.ones(4)),
    "empty_2d_a": (np.empty((0, 3)), [1.0]),
    "empty_2d_v_long_a": ([1.0, 2.0], np.empty((0, 3))),
    "2d_array_a": (np.ones((2, 2)), [1.0]),
    "2d_array_v": ([1.0], np.ones((2, 2))),
    "2d_array_a_short": (np.ones((1, 3)), [1.0, 2.0, 3.0, 4.0]),
    "2d_array_both": (np.ones((2, 2)), np.ones((3, 3))),
    "nested_list_a": ([[1, 2]], [1]),
    "nested_list_v": ([1, 2], [[1]]),
    "nested_list_both": ([[1, 2], [3, 4]], [[1]]),
    "ragged_list": ([1, [2, 3]], [1]),
    "0d_array_a": (np.array(1.0), [1.0, 2.0]),
    "0d_array_v": ([1.0, 2.0], np.array(2.0)),
    "scalar_a": (3, [1, 2]),
    "scalar_v": ([1, 2], 3),
    "scalars": (2.5, 4),
    "0d_and_empty": (np.array(1.0), []),
    "empty_and_2d": ([], np.ones((2, 2))),
}

MODES = [
    "full", "same", "valid", 0, 1, 2,
    "xyz", "", "v", "FULL", "S", "Valid", "f",
    3, -1, True, False, 1.0, b"full", None, np.int64(2), np.int8(1), np.bool_(True),
    2**70, -(2**70), 2**31, [1], "\u00e9",
]


def _mode_id(mode):
    return f"{type(mode).__name__}:{mode!r}"


@pytest.mark.parametrize("mode", MODES, ids=_mode_id)
@pytest.mark.parametrize("name", list(BAD_INPUTS))
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_bad_inputs_and_modes_like_numpy(fn, name, mode):
    a, v = BAD_INPUTS[name]
    assert_same_outcome(fn, a, v, mode)


@pytest.mark.parametrize("name", list(BAD_INPUTS))
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_bad_inputs_default_mode_like_numpy(fn, name):
    a, v = BAD_INPUTS[name]
    assert_same_outcome(fn, a, v)


@pytest.mark.parametrize("mode", MODES, ids=_mode_id)
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_modes_on_good_input_like_numpy(fn, mode):
    assert_same_outcome(fn, [1.0, 2.0, 3.0], [0.5, 1.0], mode)
    assert_same_outcome(fn, [1, 2], [3, 4, 5], mode)


# The messages the issue names explicitly, as numpy 2.4 words them, to pin them
# down. Older numpy releases word (and order) some of them differently; there
# deepret gives that release's messages, which the like-numpy tests above check.
@pytest.mark.skipif(np.lib.NumpyVersion(np.__version__) < "2.4.0",
                    reason="the pinned messages are numpy 2.4's; the like-numpy tests cover this numpy")
@pytest.mark.parametrize(
    "fn, a, v, mode, exc, message",
    [
        ("convolve", [], [1], "full", ValueError, "a cannot be empty"),
        ("convolve", [1], [], "full", ValueError, "v cannot be empty"),
        ("correlate", [], [1], "valid", ValueError, "first array argument cannot be empty"),
        ("correlate", [1], [], "valid", ValueError, "second array argument cannot be empty"),
        ("convolve", np.ones((2, 2)), [1], "full", ValueError, "object too deep for desired array"),
        ("correlate", np.array(1.0), [1], "valid", ValueError,
         "object of too small depth for desired array"),
        ("convolve", [1], [1], "xyz", ValueError,
         "mode must be one of 'valid', 'same', or 'full' (got 'xyz')"),
        ("convolve", [1], [1], "FULL", ValueError,
         "Use one of 'valid', 'same', or 'full' for convolve/correlate mode"),
        ("correlate", [1], [1], 3, ValueError, "integer convolve/correlate mode must be 0, 1, or 2"),
        ("correlate", [1], [1], None, TypeError, "convolve/correlate mode not understood"),
        ("convolve", np.array(["a", "b"]), [1], "full", ValueError, "data type must provide an itemsize"),
    ],
)
def test_named_messages(fn, a, v, mode, exc, message):
    expected = assert_same_outcome(fn, a, v, mode)
    assert type(expected) is exc and str(expected) == message  # numpy's own
    with pytest.raises(exc) as info:
        getattr(deepret, fn)(a, v, mode)
    assert str(info.value) == message


# ----------------------------------------------- dtypes handed to numpy as is

NON_NATIVE = {
    "str": (np.array(["a", "b", "c"]), [1, 2]),
    "str_both": (np.array(["a", "b"]), np.array(["c"])),
    "bytes": (np.array([b"a", b"b"]), np.array([b"c"])),
    "str_list": (["a", "b"], ["c"]),
    "object_numbers": (np.array([1, 2.5, 3], dtype=object), [1, 2]),
    "object_both": (np.array([1, 2.5, 3], dtype=object), np.array([2, 1j], dtype=object)),
    "object_v_longer": ([1, 2], np.array([1, 2.5, 3], dtype=object)),
    "object_fractions": (np.array([Fraction(1, 3), Fraction(1, 2)], dtype=object), [1, 2, 3]),
    "object_decimal": (np.array([Decimal("1.1"), Decimal("2.2")], dtype=object),
                       np.array([Decimal("3"), Decimal("0.5"), Decimal("1")], dtype=object)),
    "object_bigint": ([2**70, 1, -(2**65)], [3, 2**64]),
    "object_python_scalar": (2**70, [1, 2]),
    "object_strided": (np.array([1, 2.5, 3, 4, 5], dtype=object)[::-2], np.array([1, 3], dtype=object)),
    "object_0d": (np.array(2, dtype=object), [1, 2]),
    "object_empty": (np.array([], dtype=object), [1]),
    "object_2d": (np.array([[1]], dtype=object), [1]),
    "datetime": (np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]"), [1]),
    "datetime_both": (np.array(["2020-01-01"], dtype="datetime64[D]"),
                      np.array(["2020-01-02"], dtype="datetime64[D]")),
    "timedelta_int": (np.array([1, 2, 3], dtype="m8[s]"), [1, 2]),
    "timedelta_both": (np.array([1, 2], dtype="m8[s]"), np.array([3], dtype="m8[s]")),
    "timedelta_float": (np.array([1, 2], dtype="m8[s]"), [1.5]),
    "structured": (np.zeros(2, dtype=[("x", "i4")]), np.zeros(1, dtype=[("x", "i4")])),
    "void": (np.zeros(2, dtype="V4"), np.zeros(2, dtype="V4")),
    "str_and_2d": (np.array(["a"]), np.ones((2, 2))),
    "str_empty": (np.array([], dtype="U1"), [1]),
}


@pytest.mark.parametrize("mode", ["full", "same", "valid", 1, "xyz", None], ids=_mode_id)
@pytest.mark.parametrize("name", list(NON_NATIVE))
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_non_native_dtypes_like_numpy(fn, name, mode):
    a, v = NON_NATIVE[name]
    assert_same_outcome(fn, a, v, mode)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_object_result_is_numpys(fn):
    a = np.array([Fraction(1, 3), 2, Fraction(5, 7), 4], dtype=object)
    v = np.array([Fraction(1, 2), 3], dtype=object)
    for mode in ("full", "same", "valid"):
        ref = getattr(np, fn)(a, v, mode)
        ours = getattr(deepret, fn)(a, v, mode)
        assert type(ours) is np.ndarray and ours.dtype == object
        assert ours.tolist() == ref.tolist()
        assert all(type(x) is type(y) for x, y in zip(ours.tolist(), ref.tolist()))
