"""Array-kind detection (numpy or CuPy, without importing CuPy) and the dtype
policy: which dtypes the native engines compute, and in what."""

from __future__ import annotations

import operator
import sys

import numpy as np


def is_cupy_array(x) -> bool:
    """True for a CuPy ndarray; never imports CuPy."""
    return type(x).__module__.split(".", 1)[0] == "cupy" and hasattr(x, "__cuda_array_interface__")


def cupy_module():
    """The already-imported cupy module (only called once a CuPy array was seen)."""
    return sys.modules["cupy"]


def device_of(function: str, *arrays):
    """'cuda' when every array is a CuPy array, 'cpu' when none is.

    A mix raises TypeError: deepret never copies between host and device
    behind the caller's back.
    """
    on_gpu = [is_cupy_array(x) for x in arrays]
    if all(on_gpu):
        return "cuda"
    if not any(on_gpu):
        return "cpu"
    raise TypeError(
        f"deepret.{function} got both CuPy and host (numpy, list or scalar) inputs; "
        "move them to one device first (cupy.asarray or .get())"
    )


# Kinds the engines compute natively: bool, signed/unsigned int, float, complex.
NATIVE_KINDS = frozenset("biufc")


def is_native(dtype: np.dtype) -> bool:
    """True when the engines compute this dtype themselves (else: object,
    strings, datetimes, which deepret hands to numpy unchanged)."""
    return dtype.kind in NATIVE_KINDS


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a kernel runs in for a native result dtype.

    float16 runs in float32 and is rounded once at the end, as numpy's own
    float16 dot products accumulate in float32. Everything else runs as is
    (integers wrap exactly like numpy's; the engine handles signed integers as
    their unsigned twins, which gives the same bits).
    """
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype


def native_byteorder(dtype: np.dtype) -> np.dtype:
    """numpy's results are in native byte order whatever the inputs'."""
    return dtype.newbyteorder("=")


def positive_int(name: str, value) -> int:
    """value as an int >= 1; TypeError for non-integers (bool included),
    ValueError below 1, both naming the argument."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value
