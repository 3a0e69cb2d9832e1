"""Backends: numpy arrays on the CPU engine, CuPy arrays on the CUDA engine.

The cupy variants carry the ``gpu`` marker and skip unless cupy imports and
deepret has a CUDA engine with a visible GPU; the CudaUnavailableError and
mixed-device checks run everywhere with a fake CuPy array.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import deepret
from deepret import _backend
from _helpers import (
    FUNCTIONS,
    STRING_MODES,
    assert_values_match,
    dtype_id,
    random_array,
    to_numpy,
)

# dtypes the CUDA engine computes (float16 through float32, as numpy does).
DEVICE_DTYPES = [np.dtype(t) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                                       np.uint16, np.uint32, np.uint64, np.float16, np.float32,
                                       np.float64, np.complex64, np.complex128)]


@pytest.mark.parametrize("dtype", DEVICE_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("mode", STRING_MODES + (0, 2))
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_backend_matches_numpy(xp, fn, mode, dtype):
    rng = np.random.default_rng([11, DEVICE_DTYPES.index(dtype)])
    for n, m in [(1, 1), (2, 3), (101, 13), (13, 101), (1009, 1009), (20011, 31), (257, 4099)]:
        a, v = random_array(rng, dtype, n), random_array(rng, dtype, m)
        ref = getattr(np, fn)(a, v, mode)
        ours = getattr(deepret, fn)(xp.asarray(a), xp.asarray(v), mode)
        assert isinstance(ours, xp.ndarray)
        assert_values_match(fn, a, v, mode, to_numpy(ours), ref)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_backend_strided_and_mixed(xp, fn):
    rng = np.random.default_rng(12)
    a = random_array(rng, np.float32, 3000)
    v = random_array(rng, np.int16, 90)
    for x, y in ((a[::3], v[::-1]), (a[::-2], v), (v[::2], a)):
        ref = getattr(np, fn)(x, y, "same")
        ours = getattr(deepret, fn)(xp.asarray(x), xp.asarray(y), "same")
        assert isinstance(ours, xp.ndarray)
        assert_values_match(fn, x, y, "same", to_numpy(ours), ref)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_backend_out(xp, fn):
    rng = np.random.default_rng(13)
    a, v = random_array(rng, np.complex64, 777), random_array(rng, np.complex64, 31)
    ref = getattr(np, fn)(a, v, "full")
    out = xp.zeros(ref.shape, ref.dtype)
    assert getattr(deepret, fn)(xp.asarray(a), xp.asarray(v), "full", out=out) is out
    assert_values_match(fn, a, v, "full", to_numpy(out), ref)
    with pytest.raises(ValueError):
        getattr(deepret, fn)(xp.asarray(a), xp.asarray(v), "full", out=xp.zeros(5, ref.dtype))


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_backend_errors_like_numpy(xp, fn):
    one = xp.asarray(np.ones(3))
    for args in [(xp.asarray(np.ones(0)), one), (one, xp.asarray(np.ones(0))),
                 (xp.asarray(np.ones((2, 2))), one), (one, one, "xyz"), (one, one, 3),
                 (one, one, None)]:
        host = tuple(to_numpy(x) if hasattr(x, "shape") else x for x in args)
        with pytest.raises(Exception) as expected:
            getattr(np, fn)(*host)
        with pytest.raises(type(expected.value)) as got:
            getattr(deepret, fn)(*args)
        assert type(got.value) is type(expected.value)
        assert str(got.value) == str(expected.value)


@pytest.mark.gpu
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_real_cupy_mixed_with_numpy_raises_type_error(fn):
    cp = pytest.importorskip("cupy")
    if not deepret.has_cuda():
        pytest.skip("deepret has no CUDA engine or no GPU is visible")
    with pytest.raises(TypeError):
        getattr(deepret, fn)(cp.ones(4), np.ones(2))
    with pytest.raises(TypeError):
        getattr(deepret, fn)(np.ones(4), cp.ones(2))


# ------------------------------------------------ fake CuPy arrays, no GPU


class FakeCupyArray:
    """Looks like a CuPy array to deepret: type(x).__module__ == 'cupy' and
    a __cuda_array_interface__; holds its data on the host."""

    __module__ = "cupy"

    def __init__(self, data):
        self._host = np.asarray(data)

    @property
    def __cuda_array_interface__(self):
        return {"shape": self._host.shape, "typestr": self._host.dtype.str,
                "data": (0, False), "version": 3}

    @property
    def ndim(self):
        return self._host.ndim

    @property
    def shape(self):
        return self._host.shape

    @property
    def size(self):
        return self._host.size

    @property
    def dtype(self):
        return self._host.dtype

    def __len__(self):
        return len(self._host)

    def __getitem__(self, key):
        return FakeCupyArray(self._host[key])

    def reshape(self, *shape):
        return FakeCupyArray(self._host.reshape(*shape))


@pytest.fixture
def fake_cupy_without_cuda(monkeypatch):
    """A fake 'cupy' module (as a real CuPy array implies one is imported) and
    a deepret whose CUDA engine is absent."""
    module = types.ModuleType("cupy")
    module.ndarray = FakeCupyArray
    module.asarray = lambda x: x if isinstance(x, FakeCupyArray) else FakeCupyArray(x)
    monkeypatch.setitem(sys.modules, "cupy", module)
    monkeypatch.setattr(_backend, "_core_cuda", None)
    return FakeCupyArray


def test_fake_is_seen_as_cupy():
    from deepret import _arrays

    assert _arrays.is_cupy_array(FakeCupyArray([1.0]))
    assert not _arrays.is_cupy_array(np.ones(1))


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex64, np.int32, np.bool_], ids=dtype_id)
def test_cupy_input_without_cuda_raises(fake_cupy_without_cuda, fn, dtype):
    fake = fake_cupy_without_cuda
    assert not deepret.cuda_built()
    assert not deepret.has_cuda()
    a, v = fake(np.ones(8, dtype)), fake(np.ones(3, dtype))
    with pytest.raises(deepret.CudaUnavailableError, match=f"deepret.{fn}"):
        getattr(deepret, fn)(a, v)
    with pytest.raises(deepret.CudaUnavailableError):
        getattr(deepret, fn)(v, a, "same", out=fake(np.empty(8, dtype)))
    assert issubclass(deepret.CudaUnavailableError, RuntimeError)


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("host", [np.ones(3), [1.0, 2.0], 2.0, np.array(1.0)],
                         ids=["ndarray", "list", "scalar", "0d"])
def test_cupy_mixed_with_host_raises_type_error(fake_cupy_without_cuda, fn, host):
    fake = fake_cupy_without_cuda(np.ones(4))
    for args in ((fake, host), (host, fake)):
        with pytest.raises(TypeError, match="both CuPy and host"):
            getattr(deepret, fn)(*args)
