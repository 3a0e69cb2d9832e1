"""The CUDA bindings check their device arrays before any launch.

Fake objects with a ``__cuda_array_interface__`` (version 3) of a wrong
shape, dtype, layout or device reach every binding of ``_core_cuda`` and
must get ValueError/TypeError from the checks in src/, which run before the
CUDA runtime is asked anything: these tests need the CUDA engine built (CI
builds it where nvcc is found) but no GPU. Their pointers are fake, so the
well-formed control call (which must get past the checks and then fail in
the runtime) runs only where no GPU is visible.
"""

import numpy as np
import pytest

import deepret
from deepret import _backend

pytestmark = pytest.mark.skipif(not deepret.cuda_built(), reason="the CUDA engine (_core_cuda) is not built")

F4, F8, I4, I8 = "<f4", "<f8", "<i4", "<i8"
_ITEMSIZE = {"<f2": 2, F4: 4, F8: 8, I4: 4, I8: 8}


class FakeDeviceArray:
    """An object that looks like a C-contiguous CUDA array on device 0."""

    def __init__(self, shape, typestr, *, strides=None, readonly=False, device=(2, 0), mask=None,
                 stream=None, version=3, offset=0):
        self._device = device
        self.__cuda_array_interface__ = {
            "shape": tuple(shape), "typestr": typestr, "data": (0x7F0000000000 + offset, readonly),
            "strides": strides, "version": version, "stream": stream,
        }
        if mask is not None:
            self.__cuda_array_interface__["mask"] = mask

    def __dlpack_device__(self):
        return self._device


def _no_allocation(nbytes):
    raise AssertionError(f"the binding asked for {nbytes} bytes of scratch before its checks failed")


# binding -> (arrays in call order as name -> (shape, typestr), the outputs, keyword
# arguments, and shapes that contradict the others: name -> bad shape).
CASES = {
    "correlate1d": (
        {"a": ((10,), F4), "v": ((3,), F4), "out": ((12,), F4)}, {"out"},
        dict(left=2, conjugate_v=False, stream=0),
        [("a", (0,)), ("v", (0,))]),
    "correlate2d": (
        {"image": ((5, 6), F4), "weights": ((2, 3), F4), "out": ((6, 8), F4)}, {"out"},
        dict(top=1, left=2, boundary=0, fill=np.zeros(1, np.float32), stream=0),
        []),
    "conv2d": (
        {"input": ((2, 4, 5, 5), F4), "weight": ((6, 2, 3, 3), F4), "bias": ((6,), F4),
         "out": ((2, 6, 3, 3), F4)}, {"out"},
        dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=2, stream=0),
        [("weight", (6, 4, 3, 3)), ("weight", (5, 2, 3, 3)), ("bias", (5,)), ("out", (3, 6, 3, 3)),
         ("out", (2, 5, 3, 3))]),
    "knn_search": (
        {"x": ((20, 8), F4), "queries": ((5, 8), F4), "scores": ((5, 3), F4), "indices": ((5, 3), I8)},
        {"scores", "indices"},
        dict(metric=0, self_offset=-1, allocate=_no_allocation, stream=0),
        [("queries", (5, 7)), ("scores", (4, 3)), ("indices", (5, 4)), ("indices", (4, 3))]),
    "batched_cg": (
        {"indptr": ((11,), I4), "indices": ((30,), I4), "data": ((30,), F4), "y": ((10, 2), F4),
         "f": ((10, 2), F4), "iterations": ((2,), I8), "residuals": ((2,), F8)},
        {"f", "iterations", "residuals"},
        dict(alpha=0.9, tol=1e-6, maxiter=5, allocate=_no_allocation, stream=0),
        [("indptr", (0,)), ("data", (29,)), ("y", (11, 2)), ("f", (10, 3)), ("iterations", (3,)),
         ("residuals", (1,))]),
    "graph_from_knn": (
        {"scores": ((10, 3), F4), "indices": ((10, 3), I8), "indptr": ((11,), I8),
         "out_indices": ((30,), I4), "out_data": ((30,), F4)},
        {"indptr", "out_indices", "out_data"},
        dict(gamma=3.0, mutual=True, l2=False, normalize=True, allocate=_no_allocation, stream=0),
        [("indices", (10, 4)), ("indptr", (10,)), ("out_indices", (29,)), ("out_data", (29,))]),
    "egm": (
        {"s": ((2, 4, 5), F8), "means": ((40, 2), F8), "variances": ((40, 2), F8), "weights": ((40,), F8),
         "boxes": ((40, 4), F8), "counts": ((2,), I8)},
        {"means", "variances", "weights", "boxes", "counts"},
        dict(sigma=2.0, lam=0.0, tau=0.55, threshold=0.0, power=1.0, max_iter=20, box_scale=2.0,
             allocate=_no_allocation, stream=0),
        [("means", (39, 2)), ("variances", (40, 3)), ("weights", (41,)), ("boxes", (40, 2)), ("counts", (3,))]),
    "feature_saliency": (
        {"a": ((2, 3, 20), F4), "out": ((2, 20), F4), "status": ((1,), I4)}, {"out", "status"},
        dict(eps=1e-6, allocate=_no_allocation, stream=0),
        [("out", (2, 19)), ("out", (3, 20)), ("status", (2,))]),
    "global_pool": (
        {"a": ((2, 3, 20), F4), "out": ((2, 3), F4), "status": ((1,), I4)}, {"out", "status"},
        dict(kind=0, p=1.0, eps=1e-6, normalize=True, stream=0),
        [("out", (2, 4)), ("out", (1, 3))]),
    "regional_max": (
        {"a": ((2, 3, 4, 5), F4), "boxes": ((4, 4), F8), "image": ((4,), I8), "out": ((4, 3), F4),
         "status": ((1,), I4)}, {"out", "status"},
        dict(normalize=True, stream=0),
        [("boxes", (4, 3)), ("image", (3,)), ("out", (4, 2)), ("out", (5, 3))]),
    "rmac": (
        {"a": ((2, 3, 4, 5), F4), "boxes": ((4, 4), F8), "out": ((2, 3), F4), "status": ((1,), I4)},
        {"out", "status"},
        dict(allocate=_no_allocation, stream=0),
        [("boxes", (4, 5)), ("out", (2, 4)), ("out", (3, 3))]),
    "object_saliency": (
        {"a": ((2, 3, 4, 5), F4), "fs": ((2, 4, 5), F4), "descriptors": ((4, 3), F4), "boxes": ((4, 4), F8),
         "weights": ((4,), F8), "offsets": ((3,), I8), "out": ((2, 4, 5), F4), "status": ((1,), I4)},
        {"out", "status"},
        dict(box_cover=True, stream=0),
        [("fs", (2, 4, 6)), ("descriptors", (4, 2)), ("boxes", (3, 4)), ("weights", (5,)), ("offsets", (2,)),
         ("out", (2, 5, 5))]),
    "weighted_pool": (
        {"a": ((2, 3, 20), F4), "weights": ((2, 20), F4), "channel_weights": ((2, 3), F4), "out": ((2, 3), F4),
         "status": ((1,), I4)}, {"out", "status"},
        dict(normalize=True, stream=0),
        [("weights", (2, 19)), ("channel_weights", (2, 4)), ("out", (3, 3))]),
    "crow_weights": (
        {"a": ((2, 3, 20), F4), "spatial": ((2, 20), F4), "channel": ((2, 3), F4), "status": ((1,), I4)},
        {"spatial", "channel", "status"},
        dict(eps=1e-6, stream=0),
        [("spatial", (2, 21)), ("channel", (1, 3))]),
}


def _arrays(name, **changes):
    """The case's fake arrays, with `changes[array] = dict of FakeDeviceArray arguments`."""
    specs, _, _, _ = CASES[name]
    arrays = {}
    for array, (shape, typestr) in specs.items():
        options = dict(changes.get(array, {}))
        shape = options.pop("shape", shape)
        typestr = options.pop("typestr", typestr)
        arrays[array] = options.pop("object") if "object" in options else FakeDeviceArray(shape, typestr, **options)
    return arrays


def _call(name, arrays, **kwargs):
    core = _backend._core_cuda
    keywords = dict(CASES[name][2], **kwargs)
    return getattr(core, name)(*arrays.values(), **keywords)


def test_every_binding_is_covered():
    core = _backend._core_cuda
    bindings = {n for n in dir(core) if not n.startswith("_") and callable(getattr(core, n))}
    assert bindings - {"device_count"} == set(CASES)


def _each_array():
    return [(name, array) for name, (specs, _, _, _) in CASES.items() for array in specs]


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.skipif(deepret.has_cuda(), reason="fake pointers must not reach a real GPU")
def test_well_formed_arrays_pass_the_checks_and_reach_the_runtime(name):
    # No GPU here: past the checks, the call's first CUDA runtime call fails.
    with pytest.raises(RuntimeError):
        _call(name, _arrays(name))


@pytest.mark.parametrize(("name", "array"), _each_array())
def test_wrong_ndim_is_a_value_error(name, array):
    shape = CASES[name][0][array][0]
    with pytest.raises(ValueError, match=rf"{array} must be {len(shape)}-D"):
        _call(name, _arrays(name, **{array: {"shape": shape + (1,)}}))


@pytest.mark.parametrize(("name", "array", "shape"),
                         [(name, array, shape) for name, case in CASES.items() for array, shape in case[3]])
def test_inconsistent_shape_is_a_value_error(name, array, shape):
    with pytest.raises(ValueError, match=array):
        _call(name, _arrays(name, **{array: {"shape": shape}}))


@pytest.mark.parametrize(("name", "array"), _each_array())
@pytest.mark.parametrize("typestr", ["<f2", ">f8", "<V8", "|O8"])
def test_wrong_dtype_is_a_type_error(name, array, typestr):
    # float16 no binding computes; big-endian, void and object none reads.
    with pytest.raises(TypeError, match=array):
        _call(name, _arrays(name, **{array: {"typestr": typestr}}))


@pytest.mark.parametrize(("name", "array"),
                         [(n, a) for n, a in _each_array() if np.prod(CASES[n][0][a][0]) > 1])
def test_non_contiguous_is_a_value_error(name, array):
    shape, typestr = CASES[name][0][array]
    strides = [_ITEMSIZE[typestr]] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    strides = [2 * s for s in strides]  # every other element: a strided view
    with pytest.raises(ValueError, match=f"{array} must be C-contiguous"):
        _call(name, _arrays(name, **{array: {"strides": tuple(strides)}}))


@pytest.mark.parametrize(("name", "array"), _each_array())
def test_misaligned_pointer_is_a_value_error(name, array):
    with pytest.raises(ValueError, match=f"{array} must be aligned"):
        _call(name, _arrays(name, **{array: {"offset": 2}}))


@pytest.mark.parametrize(("name", "array"), _each_array())
def test_malformed_interface_is_a_type_error(name, array):
    class Malformed:
        __cuda_array_interface__ = {"shape": "3", "typestr": "<f4", "data": (0, False), "version": 3}

    with pytest.raises(TypeError, match=array):
        _call(name, _arrays(name, **{array: {"object": Malformed()}}))


@pytest.mark.parametrize(("name", "array"), _each_array())
def test_arrays_on_two_devices_are_a_value_error(name, array):
    with pytest.raises(ValueError, match="must be on the same CUDA device, got devices (0 and 1|1 and 0)"):
        _call(name, _arrays(name, **{array: {"device": (2, 1)}}))


@pytest.mark.parametrize(("name", "array"), _each_array())
def test_host_memory_is_rejected(name, array):
    # A DLPack CPU array with the interface, and a plain numpy array.
    with pytest.raises(ValueError, match=f"{array} must be on a CUDA device"):
        _call(name, _arrays(name, **{array: {"device": (1, 0)}}))
    shape, typestr = CASES[name][0][array]
    with pytest.raises(TypeError, match=f"{array} must be a CUDA device array"):
        _call(name, _arrays(name, **{array: {"object": np.zeros(shape, np.dtype(typestr))}}))


@pytest.mark.parametrize(("name", "array"), [(n, a) for n, case in CASES.items() for a in case[1]])
def test_read_only_output_is_a_value_error(name, array):
    with pytest.raises(ValueError, match=f"{array} must be writable"):
        _call(name, _arrays(name, **{array: {"readonly": True}}))


@pytest.mark.parametrize("name", sorted(CASES))
def test_masked_array_and_stream_zero_are_value_errors(name):
    first = next(iter(CASES[name][0]))
    with pytest.raises(ValueError, match="masked"):
        _call(name, _arrays(name, **{first: {"mask": object()}}))
    with pytest.raises(ValueError, match="stream 0"):
        _call(name, _arrays(name, **{first: {"stream": 0}}))
