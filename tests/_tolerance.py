"""Rigorous per-output error bounds for floating-point convolve/correlate.

Both numpy and deepret compute each output as a sum of ``k`` products
``a[i] * v[j]`` (``k <= m_eff = min(len(a), len(v))``), only in different
orders (and deepret may use fused multiply-adds).  Whatever the order, the
classical bound for a recursively or blockwise summed dot product is

    |computed - exact| <= k * u * sum |a[i] * v[j]|   (u = eps / 2, first order)

so two such computations differ by at most ``k * eps * S[o]`` where
``S = |a| conv |v|`` (the same convolution/correlation of the absolute values).
We allow ``c * m_eff * eps * S[o]`` with ``c`` a small constant (default 3) for
slack.  Complex outputs are sums of ``2k`` real products per component, bounded
by ``(|re a| + |im a|) conv (|re v| + |im v|)``, so complex counts ``2 * m_eff``
terms against that L1-modulus sum.

float16: numpy (HALF_dot) and deepret both accumulate in float32 and round
once to float16 at the end.  The two float32 sums differ by at most the bound
above with ``eps = eps(float32)``; each is then rounded to float16, which moves
it by at most half an ulp of float16, so the float16 results differ by at most
the float32 bound plus half an ulp of each result, i.e. one float16 ulp of the
larger magnitude.
"""

from __future__ import annotations

import numpy as np

# eps of the arithmetic each result dtype is accumulated in.
EPS = {
    np.dtype(np.float16): float(np.finfo(np.float32).eps),  # accumulated in float32
    np.dtype(np.float32): float(np.finfo(np.float32).eps),
    np.dtype(np.float64): float(np.finfo(np.float64).eps),
    np.dtype(np.longdouble): np.finfo(np.longdouble).eps,
    np.dtype(np.complex64): float(np.finfo(np.float32).eps),
    np.dtype(np.complex128): float(np.finfo(np.float64).eps),
    np.dtype(np.clongdouble): np.finfo(np.longdouble).eps,
}

DEFAULT_C = 3


def wide_dtype(dtype) -> np.dtype:
    """The real dtype the reference sums are computed in (float64, or
    longdouble for the long double types)."""
    dtype = np.dtype(dtype)
    if dtype in (np.dtype(np.longdouble), np.dtype(np.clongdouble)):
        return np.dtype(np.longdouble)
    return np.dtype(np.float64)


def _modulus(x: np.ndarray, wide: np.dtype) -> np.ndarray:
    if x.dtype.kind == "c":
        return np.abs(x.real).astype(wide) + np.abs(x.imag).astype(wide)
    return np.abs(x).astype(wide)


def abs_sum(fn: str, a: np.ndarray, v: np.ndarray, mode, dtype) -> np.ndarray:
    """S[o] = (|a| fn |v|)[o] in float64/longdouble; a and v already in the
    result dtype (conjugating v does not change its modulus)."""
    wide = wide_dtype(dtype)
    return getattr(np, fn)(_modulus(a, wide), _modulus(v, wide), mode)


def error_bound(fn: str, a: np.ndarray, v: np.ndarray, mode, dtype, c: float = DEFAULT_C) -> np.ndarray:
    """Per-output bound on |ours - numpy| (before float16's final rounding)."""
    dtype = np.dtype(dtype)
    terms = min(len(a), len(v)) * (2 if dtype.kind == "c" else 1)
    eps = EPS[dtype]
    wide = wide_dtype(dtype)
    # Relative rounding error vanishes below the normal range: each product and
    # sum may also be off by half the spacing of subnormals (gradual underflow).
    part = np.dtype(dtype.char.lower()) if dtype.kind == "c" else dtype
    tiny = wide.type(np.finfo(part).smallest_subnormal) if part.kind == "f" else wide.type(0)
    return (wide.type(c * terms) * wide.type(eps) * abs_sum(fn, a, v, mode, dtype)
            + wide.type(2 * terms) * tiny)


def float16_rounding(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Half a float16 ulp of each of the two results: one ulp of the larger."""
    big = np.maximum(np.abs(ours), np.abs(ref)).astype(np.float16)
    return np.spacing(big).astype(np.float64)


def within_bound(ours: np.ndarray, ref: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Boolean mask of outputs (per real component) that satisfy the bound."""
    wide = bound.dtype
    if ref.dtype.kind == "c":
        ok_re = np.abs(ours.real.astype(wide) - ref.real.astype(wide)) <= bound
        ok_im = np.abs(ours.imag.astype(wide) - ref.imag.astype(wide)) <= bound
        return ok_re & ok_im
    return np.abs(ours.astype(wide) - ref.astype(wide)) <= bound
