"""Shared helpers: seeded input generators and the comparison against numpy."""

from __future__ import annotations

import numpy as np

import deepret
from _tolerance import error_bound, float16_rounding, wide_dtype, within_bound

FUNCTIONS = ("convolve", "correlate")
STRING_MODES = ("full", "same", "valid")
INT_MODES = (0, 1, 2)
ALL_MODES = STRING_MODES + INT_MODES

INT_DTYPES = [np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64)]
UINT_DTYPES = [np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64)]
FLOAT_DTYPES = [np.dtype(t) for t in (np.float16, np.float32, np.float64, np.longdouble)]
COMPLEX_DTYPES = [np.dtype(t) for t in (np.complex64, np.complex128, np.clongdouble)]
NATIVE_DTYPES = [np.dtype(np.bool_)] + INT_DTYPES + UINT_DTYPES + FLOAT_DTYPES + COMPLEX_DTYPES

# Mixed pairs and what numpy promotes them to (asserted in the tests too).
MIXED_PAIRS = [
    (np.int8, np.uint8),        # int16
    (np.int64, np.uint64),      # float64
    (np.float32, np.int32),     # float64
    (np.float16, np.int8),      # float16
    (np.float16, np.uint8),     # float16
    (np.float16, np.int16),     # float32
    (np.bool_, np.int8),        # int8
    (np.bool_, np.float32),     # float32
    (np.complex64, np.float64), # complex128
    (np.complex64, np.int16),   # complex64
    (np.uint32, np.int32),      # int64
    (np.int8, np.uint16),       # int32
    (np.uint64, np.float32),    # float64
    (np.longdouble, np.complex64),  # clongdouble
    (np.float64, np.clongdouble),   # clongdouble
    (np.int32, np.longdouble),  # longdouble
    (np.uint16, np.float16),    # float32
    (np.bool_, np.complex128),  # complex128
]


def dtype_id(dtype) -> str:
    return np.dtype(dtype).name


def random_array(rng: np.random.Generator, dtype, n: int) -> np.ndarray:
    """n seeded values of dtype: full-range integers (so that products and
    sums overflow and wrap), both-signed floats of a random scale, booleans of a
    random density (so that or-of-ands gives both values)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(n) < rng.choice([0.01, 0.05, 0.3, 0.7])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=n, dtype=dtype, endpoint=True)
    if dtype == np.float16:
        # |x| <= 2 keeps sums of up to ~8000 products finite in float16.
        return rng.uniform(-2.0, 2.0, n).astype(np.float16)
    if dtype.kind == "f":
        scale = 10.0 ** rng.uniform(-2, 2)
        x = (rng.standard_normal(n) * scale).astype(dtype)
        if dtype == np.longdouble:
            # use the bits beyond float64's 53
            x = x + (rng.standard_normal(n) * scale * 2.0**-58).astype(np.longdouble)
        return x
    if dtype.kind == "c":
        part = np.dtype(dtype.char.lower())  # F->f, D->d, G->g
        out = np.empty(n, dtype=dtype)
        out.real = random_array(rng, part, n)
        out.imag = random_array(rng, part, n)
        return out
    raise AssertionError(f"no generator for {dtype}")


def to_numpy(x):
    """A host copy of a numpy or cupy array."""
    return x if isinstance(x, np.ndarray) else x.get()


def call(fn: str, module, a, v, mode=None, **kwargs):
    f = getattr(module, fn)
    if mode is None:
        return f(a, v, **kwargs)
    return f(a, v, mode, **kwargs)


def as_numpy_input(x) -> np.ndarray:
    """The 1-D array numpy.convolve/correlate builds from an input."""
    return np.array(x, copy=None, ndmin=1)


def assert_values_match(fn, a, v, mode, ours, ref, c=None, check_exact_reference=True):
    """ours against numpy's ref: same dtype and shape; integers and booleans
    exactly equal; floats within the rigorous bound of _tolerance."""
    assert isinstance(ours, np.ndarray), type(ours)
    assert ours.dtype == ref.dtype, (ours.dtype, ref.dtype)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    kind = ref.dtype.kind
    if kind in "biumM":
        np.testing.assert_array_equal(ours, ref)
        return
    if kind not in "fc":  # object and other non-native results: element for element
        assert ours.tolist() == ref.tolist()
        assert [type(x) for x in ours.tolist()] == [type(x) for x in ref.tolist()]
        return
    A = as_numpy_input(a).astype(ref.dtype)
    V = as_numpy_input(v).astype(ref.dtype)
    mode_ = "valid" if mode is None and fn == "correlate" else ("full" if mode is None else mode)
    kwargs = {} if c is None else {"c": c}
    bound = error_bound(fn, A, V, mode_, ref.dtype, **kwargs)
    if ref.dtype == np.float16:
        bound = bound + float16_rounding(ours, ref)
    # Non-finite outputs must agree exactly (same nan/inf, same sign).
    # Complex: which component turns nan after an inf product is up to the
    # complex arithmetic (numpy's BLAS dot gives nan+nanj where C++ may give
    # inf+nanj), so only the set of non-finite outputs must agree.
    finite = np.isfinite(ref) & np.isfinite(ours)
    if not finite.all():
        if kind == "c":
            np.testing.assert_array_equal(np.isfinite(ours), np.isfinite(ref),
                                          err_msg="non-finite outputs differ from numpy's")
        else:
            np.testing.assert_array_equal(ours[~finite], ref[~finite],
                                          err_msg="non-finite outputs differ from numpy's")
    ok = within_bound(ours[finite], ref[finite], bound[finite])
    if not ok.all():
        bad = np.flatnonzero(finite)[~ok][:5]
        raise AssertionError(
            f"{fn}(mode={mode!r}) {ref.dtype}: {int((~ok).sum())} of {ref.size} outputs off numpy "
            f"beyond the bound; first at {bad.tolist()}: ours={ours[bad]!r} numpy={ref[bad]!r} "
            f"bound={bound[bad]!r}"
        )
    if check_exact_reference and finite.all():
        # Sanity: also close to a wide-precision reference of the same inputs.
        wide = wide_dtype(ref.dtype)
        wide_c = np.dtype(np.clongdouble) if kind == "c" else np.dtype(np.longdouble)
        hi = getattr(np, fn)(A.astype(wide_c), V.astype(wide_c), mode_)
        ok_hi = within_bound(ours, hi, bound.astype(wide))
        assert ok_hi.all(), (
            f"{fn} {ref.dtype}: off the long double reference at "
            f"{np.flatnonzero(~ok_hi)[:5].tolist()}"
        )


def assert_matches_numpy(fn, a, v, mode=None, c=None, check_exact_reference=True, **kwargs):
    """Run numpy and deepret on the same inputs and compare; returns ours."""
    ref = call(fn, np, a, v, mode)
    ours = call(fn, deepret, a, v, mode, **kwargs)
    assert_values_match(fn, a, v, mode, ours, ref, c=c, check_exact_reference=check_exact_reference)
    return ours


def outcome(f, *args, **kwargs):
    """('ok', result) or ('raise', exception) of f(*args)."""
    try:
        return "ok", f(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - we compare whatever numpy raises
        return "raise", exc


def assert_same_outcome(fn, *args):
    """deepret.fn(*args) raises exactly what numpy.fn(*args) raises (same
    exception type and message), or returns what numpy returns."""
    kind_np, res_np = outcome(getattr(np, fn), *args)
    kind_dr, res_dr = outcome(getattr(deepret, fn), *args)
    if kind_np == "raise":
        assert kind_dr == "raise", (
            f"numpy raised {type(res_np).__name__}({res_np}) but deepret returned {res_dr!r}"
        )
        assert type(res_dr) is type(res_np), (
            f"numpy raised {type(res_np).__name__}({res_np}); "
            f"deepret raised {type(res_dr).__name__}({res_dr})"
        )
        assert str(res_dr) == str(res_np)
        return res_np
    assert kind_dr == "ok", (
        f"numpy returned {res_np!r} but deepret raised {type(res_dr).__name__}({res_dr})"
    )
    a, v = args[0], args[1]
    mode = args[2] if len(args) > 2 else None
    assert_values_match(fn, a, v, mode, res_dr, res_np, check_exact_reference=False)
    return res_np


def available_simd_paths():
    """The engine names of the CPU SIMD paths this machine can run (portable
    always)."""
    from deepret import _backend

    names = {"portable": "portable", "avx2": "avx2+fma", "avx512": "avx512f"}
    return [names[path] for path in _backend.supported_simd_paths()]


def on_each_simd_path(check):
    """Call check(path) with each SIMD path pinned, restoring the environment's
    path (DEEPRET_SIMD, else detection) even when a check fails (for
    hypothesis tests, which cannot use function-scoped fixtures)."""
    from deepret import _backend

    try:
        for path in available_simd_paths():
            _backend._core._force_simd_path(path)
            check(path)
    finally:
        _backend.pin_simd_from_environment()
