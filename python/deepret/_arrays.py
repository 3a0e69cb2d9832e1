"""Array-kind detection (numpy or CuPy, without importing CuPy) and the dtype
policy: which dtypes the native engines compute, and in what."""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np


def is_cupy_array(x) -> bool:
    """True for a CuPy ndarray; never imports CuPy."""
    if type(x) is np.ndarray:  # the common case, first: these checks run several times per call
        return False
    return type(x).__module__.split(".", 1)[0] == "cupy" and hasattr(x, "__cuda_array_interface__")


def cupy_module() -> Any:
    """The already-imported cupy module (only called once a CuPy array was seen)."""
    return sys.modules["cupy"]


def device_of(function: str, *arrays):
    """'cuda' when every array is a CuPy array, 'cpu' when none is.

    A mix raises TypeError: deepret never copies between host and device
    behind the caller's back.
    """
    if all(type(x) is np.ndarray for x in arrays):
        return "cpu"
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


def _int_at_least(name: str, value, low: int) -> int:
    """value as an int >= low; TypeError for non-integers (bool included),
    ValueError below low, both naming the argument."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r}") from None
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    return value


def positive_int(name: str, value) -> int:
    """value as an int >= 1 (TypeError for non-integers, bool included)."""
    return _int_at_least(name, value, 1)


def nonnegative_int(name: str, value) -> int:
    """value as an int >= 0 (TypeError for non-integers, bool included)."""
    return _int_at_least(name, value, 0)


def aligned_contiguous(x, dtype, xp=np):
    """x as a C-contiguous, aligned array of dtype: numpy views may be
    contiguous yet misaligned (a byte offset into a buffer), which the
    engine's typed loads must not see (undefined behaviour, found by UBSan)."""
    if xp is np:
        if type(x) is np.ndarray and x.ndim:  # (np.require says the same in microseconds, every call)
            y = np.ascontiguousarray(x, dtype=dtype)  # a copy it makes is aligned
            return y if y.flags.aligned else y.copy()
        return np.require(x, dtype=dtype, requirements=("C", "A"))
    return xp.ascontiguousarray(x, dtype=dtype)


# ---------------------------------------------------------------- out= aliasing

def output_target(out, *inputs, xp=np):
    """Where a kernel should write a result that the caller asked for in `out`.

    `out` itself when it shares no memory with any of the arrays the kernel
    reads; else None, and the caller computes into a fresh array and copies
    it into `out` afterwards (numpy's own answer to overlapping outputs:
    buffer, never an error). ``may_share_memory`` compares the arrays'
    bounds only (O(1)); a false positive costs one copy, never a wrong
    value.
    """
    if out is None:
        return None
    for array in inputs:
        if array is not None and xp.may_share_memory(out, array):
            return None
    return out


# ---------------------------------------------------------------- CSR structure

# Index arrays of graphs deepret built and then made read-only
# (trust_csr): id(indices) -> (indptr, indices) weak references and the shape.
_TRUSTED_CSR: dict = {}


def _trusted(shape, indptr, indices) -> bool:
    entry = _TRUSTED_CSR.get(id(indices))
    if entry is None:
        return False
    indptr_ref, indices_ref, trusted_shape = entry
    return (indptr_ref() is indptr and indices_ref() is indices and trusted_shape == shape
            and not indptr.flags.writeable and not indices.flags.writeable)


def trust_csr(W) -> None:
    """Mark a graph that deepret built and validated (e.g. DiffusionIndex's)
    so that check_csr need not read it again: its index arrays become
    read-only, and the mark holds only while they stay the same objects and
    stay read-only (writing to them needs ``setflags(write=True)`` first,
    which withdraws the mark). A numpy array has no version counter, so a
    user's own graph is checked on every call instead (one pass over the
    indices: about 0.5 ms per 10^6 nonzeros)."""
    import weakref

    W.indptr.setflags(write=False)
    W.indices.setflags(write=False)
    key = id(W.indices)

    def forget(_, key=key):
        _TRUSTED_CSR.pop(key, None)

    _TRUSTED_CSR[key] = (weakref.ref(W.indptr, forget), weakref.ref(W.indices, forget), W.shape)


def check_csr(name: str, shape, indptr, indices, data, xp=np) -> None:
    """ValueError unless (indptr, indices, data) is a well-formed CSR
    structure of `shape` that the engines may index by: indptr 1-D with
    rows + 1 entries, starting at 0, non-decreasing, its last entry at most
    len(indices) = len(data), and every column index in [0, cols).

    Vectorized (a few reductions over the index arrays, numpy or CuPy: no
    Python loop); graphs marked by trust_csr are not read again.
    """
    rows, cols = shape
    if indptr.ndim != 1 or indices.ndim != 1 or data.ndim != 1:
        raise ValueError(f"{name} is not a valid CSR structure: indptr, indices and data must be 1-D, "
                         f"got shapes {indptr.shape}, {indices.shape}, {data.shape}")
    if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        raise TypeError(f"{name}'s indptr and indices must be integers, got {indptr.dtype} and {indices.dtype}")
    if xp is np and _trusted(shape, indptr, indices):
        return
    if len(indptr) != rows + 1:
        raise ValueError(f"{name} is not a valid CSR structure: indptr must have rows + 1 = {rows + 1} "
                         f"entries, got {len(indptr)}")
    if len(indices) != len(data):
        raise ValueError(f"{name} is not a valid CSR structure: indices and data must have the same "
                         f"length, got {len(indices)} and {len(data)}")
    first, last = int(indptr[0]), int(indptr[-1])
    if first != 0:
        raise ValueError(f"{name} is not a valid CSR structure: indptr[0] must be 0, got {first}")
    if last > len(indices):
        raise ValueError(f"{name} is not a valid CSR structure: indptr[-1] = {last} exceeds the "
                         f"{len(indices)} stored indices")
    if rows > 0 and bool((indptr[1:] < indptr[:-1]).any()):
        row = int(xp.flatnonzero(indptr[1:] < indptr[:-1])[0])
        raise ValueError(f"{name} is not a valid CSR structure: indptr decreases at row {row} "
                         f"({int(indptr[row])} -> {int(indptr[row + 1])})")
    if last:
        used = indices[:last]
        low, high = int(used.min()), int(used.max())
        if low < 0 or high >= cols:
            bad = low if low < 0 else high
            raise ValueError(f"{name} is not a valid CSR structure: column index {bad} outside "
                             f"[0, {cols})")


# ---------------------------------------------------------------- torch tensors

def is_torch_tensor(x) -> bool:
    """True for a torch tensor; never imports torch."""
    if type(x) is np.ndarray:
        return False
    return type(x).__module__.split(".", 1)[0] == "torch" and hasattr(x, "__dlpack__")


# Argument types that are never, and never hold, a torch tensor: checked first,
# because every call of a wrapped function tests each of its arguments.
_PLAIN_TYPES = frozenset({np.ndarray, type(None), bool, int, float, str})


def _holds_torch(value) -> bool:
    if type(value) in _PLAIN_TYPES:
        return False
    if isinstance(value, (list, tuple)):
        return any(is_torch_tensor(v) for v in value)
    if hasattr(value, "_map_arrays"):  # a Regions: its arrays
        return is_torch_tensor(value.means)
    return is_torch_tensor(value)


def _from_torch(tensor):
    """The tensor's memory as a numpy (CPU) or CuPy (CUDA) array: no copy."""
    tensor = tensor.detach()  # the same memory; autograd does not reach deepret's kernels
    if tensor.device.type == "cpu":
        return tensor.resolve_conj().resolve_neg().numpy()
    if tensor.device.type == "cuda":
        try:
            import cupy  # the CUDA engine reads device memory through CuPy arrays
        except ImportError:
            raise TypeError("deepret got a torch CUDA tensor, which it reads through CuPy; "
                            "install cupy (cupy-cuda12x or cupy-cuda13x)") from None
        return cupy.from_dlpack(tensor)
    raise TypeError(f"deepret got a torch tensor on device {tensor.device}; it reads CPU and CUDA tensors only")


def _convert_in(value, seen):
    if isinstance(value, (list, tuple)) and _holds_torch(value):
        return type(value)(_convert_in(v, seen) for v in value)
    if hasattr(value, "_map_arrays") and _holds_torch(value):
        return value._map_arrays(lambda a: _convert_in(a, seen))
    if is_torch_tensor(value):
        array = _from_torch(value)
        seen.append((array, value))
        return array
    return value


def _convert_out(value, torch, seen):
    for array, tensor in seen:
        if value is array:  # an input (or out=) handed back: the caller's own tensor
            return tensor
    if isinstance(value, tuple):
        items = [_convert_out(v, torch, seen) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, list):
        return [_convert_out(v, torch, seen) for v in value]
    if isinstance(value, dict):  # e.g. compute_map_revisited's protocol -> MapResult
        return {key: _convert_out(v, torch, seen) for key, v in value.items()}
    if hasattr(value, "_map_arrays"):  # a Regions: its arrays as tensors
        return value._map_arrays(lambda a: _convert_out(a, torch, seen))
    if isinstance(value, np.ndarray) and value.dtype.kind in NATIVE_KINDS:
        import warnings

        with warnings.catch_warnings():  # a read-only result stays read-only memory: no copy
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(value)
    if is_cupy_array(value):
        return torch.from_dlpack(value)
    return value


_Function = TypeVar("_Function", bound=Callable[..., Any])


def torch_interop(function: _Function) -> _Function:
    """Lets `function` take torch tensors wherever it takes arrays.

    CPU tensors are read as numpy arrays and CUDA tensors as CuPy arrays on
    the same memory (``Tensor.numpy()``, DLPack: no copy), the function runs
    as for those, and every array in its result comes back as a torch tensor
    on the same device (the caller's own tensor where the result is an
    input or ``out=``; a tensor on the same memory where it is a view).
    Without a torch tensor among the arguments nothing changes; torch is
    never imported (a tensor's presence means it is).
    """
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        for value in (*args, *kwargs.values()):
            if _holds_torch(value):
                break
        else:  # no tensor: the plain call (a loop, not any(): this runs on every call)
            return function(*args, **kwargs)
        seen = []
        args = tuple(_convert_in(a, seen) for a in args)
        kwargs = {k: _convert_in(v, seen) for k, v in kwargs.items()}
        return _convert_out(function(*args, **kwargs), sys.modules["torch"], seen)

    return cast(_Function, wrapper)


def host_array(value: Any) -> Any:
    """value itself, or a CuPy array's copy in host memory (for code that
    works on the host only, such as the evaluation's bookkeeping)."""
    return value.get() if is_cupy_array(value) else value
