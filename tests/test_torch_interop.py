"""torch tensors through every public array function: CPU tensors are read
without a copy (Tensor.numpy()), results come back as torch tensors on the
same device, equal to the numpy call's, and out= / views keep the caller's
memory (the same data pointer). Skips where torch is not installed (CI's
README leg); CI's peer leg installs torch and runs this file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import deepret

torch = pytest.importorskip("torch")

rng = np.random.default_rng(7)


def _acts(shape=(2, 6, 7, 5)):
    return rng.random(shape, dtype=np.float32)


def _db(n=60, d=12):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _graph():
    return deepret.knn_graph(_db(80), k=8)


ACTS, DB, QUERIES, GRAPH = _acts(), _db(), _db(5), _graph()
Y = rng.random((80, 3), dtype=np.float32)
REGIONS = deepret.egm(deepret.feature_saliency(ACTS))

# function name -> (positional arrays, other arguments). Arrays are given as
# numpy and converted to CPU tensors for the torch call.
CASES = {
    "convolve": ((rng.random(17), rng.random(5)), {}),
    "correlate": ((rng.random(17), rng.random(5)), {"mode": "same"}),
    "convolve2d": ((rng.random((9, 8)), rng.random((3, 2))), {}),
    "correlate2d": ((rng.random((9, 8)), rng.random((3, 2))), {"mode": "valid"}),
    "conv2d": ((ACTS, rng.random((4, 6, 3, 3), dtype=np.float32), rng.random(4, dtype=np.float32)),
               {"padding": 1}),
    "knn": ((DB, QUERIES), {"k": 4}),
    "graph_from_knn": (deepret.knn(DB, k=5, exclude_self=True), {}),
    "knn_graph": ((DB,), {"k": 6}),
    "diffuse": ((GRAPH, Y), {"alpha": 0.5, "maxiter": 50}),
    "query_vector": ((_db(80), QUERIES), {"k": 3}),
    "feature_saliency": ((ACTS,), {}),
    "egm": ((deepret.feature_saliency(ACTS[0]).astype(np.float64),), {}),
    "mac": ((ACTS,), {}),
    "spoc": ((ACTS,), {}),
    "gem": ((ACTS,), {}),
    "rmac": ((ACTS,), {}),
    "regional_max_pool": ((ACTS, REGIONS.boxes), {"counts": REGIONS.counts}),
    "crow": ((ACTS,), {}),
    "crow_weights": ((ACTS,), {}),
    "weighted_sum_pool": ((ACTS, rng.random((2, 7, 5), dtype=np.float32)), {}),
    "object_saliency": ((ACTS, rng.random((4, 6), dtype=np.float32), np.array([[0, 0, 3, 2], [1, 1, 6, 4],
                                                                                  [0, 0, 6, 4], [2, 1, 5, 3]],
                                                                                 dtype=np.float64),
                         rng.random(4)), {"counts": [2, 2]}),
    "saliency_pool": ((ACTS, rng.random((2, 7, 5), dtype=np.float32)), {}),
    "describe": ((ACTS,), {"method": "crow"}),
    "average_qe": ((QUERIES, DB), {"n": 3}),
    "alpha_qe": ((QUERIES, DB), {"n": 3}),
}


def _to_torch(value):
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, tuple):
        return tuple(_to_torch(v) for v in value)
    return value  # sparse matrices, Regions, scalars, lists of counts


def _assert_same(ours, reference):
    """The torch call's result equals the numpy call's, arrays as tensors."""
    if isinstance(reference, np.ndarray):
        assert isinstance(ours, torch.Tensor), type(ours)
        assert ours.device.type == "cpu"
        np.testing.assert_array_equal(ours.numpy(), reference)
    elif isinstance(reference, tuple):
        assert type(ours) is type(reference) and len(ours) == len(reference)
        for a, b in zip(ours, reference):
            _assert_same(a, b)
    elif isinstance(reference, dict):
        assert type(ours) is dict and list(ours) == list(reference)
        for key in reference:
            _assert_same(ours[key], reference[key])
    elif hasattr(reference, "toarray"):  # a scipy sparse graph stays one
        assert type(ours) is type(reference)
        np.testing.assert_array_equal(ours.toarray(), reference.toarray())
    elif isinstance(reference, deepret.Regions):  # its arrays as tensors, counts numpy
        assert isinstance(ours, deepret.Regions) and ours.batched == reference.batched
        for field in ("means", "variances", "weights", "boxes"):
            _assert_same(getattr(ours, field), getattr(reference, field))
        np.testing.assert_array_equal(ours.counts, reference.counts)
    else:
        assert ours == reference


def test_every_public_array_function_is_covered():
    public = {name for name in deepret.__all__ if callable(getattr(deepret, name))
              and not isinstance(getattr(deepret, name), type)}
    no_arrays = {"cuda_built", "has_cuda", "simd_path", "rmac_regions", "locality_order", "graph_eigs",
                 "region_graph", "katz"}  # sizes, sparse graphs or a RegionSet in; nothing a tensor could be
    assert public - no_arrays == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_cpu_tensors_give_the_numpy_result_as_tensors(name):
    arrays, kwargs = CASES[name]
    function = getattr(deepret, name)
    reference = function(*arrays, **kwargs)
    ours = function(*_to_torch(arrays), **kwargs)
    _assert_same(ours, reference)


def test_inputs_are_read_in_place():
    # The tensor's own memory reaches the engine: writing it between two
    # calls changes the second result (a copy taken once would not).
    a = torch.from_numpy(rng.random(40))
    v = torch.from_numpy(rng.random(3))
    first = deepret.convolve(a, v).clone()
    a.mul_(2)
    np.testing.assert_allclose(deepret.convolve(a, v).numpy(), 2 * first.numpy())


@pytest.mark.parametrize("name", ["convolve", "correlate", "convolve2d", "correlate2d", "conv2d"])
def test_out_is_the_callers_tensor(name):
    arrays, kwargs = CASES[name]
    function = getattr(deepret, name)
    reference = function(*arrays, **kwargs)
    out = torch.empty(reference.shape, dtype=getattr(torch, str(reference.dtype)))
    pointer = out.data_ptr()
    result = function(*_to_torch(arrays), **kwargs, out=out)
    assert result is out and out.data_ptr() == pointer
    np.testing.assert_array_equal(out.numpy(), reference)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "complex64", "bool"])
def test_tensors_are_read_as_views_of_their_memory(dtype):
    # Contiguous or strided (a transposed view): the numpy array deepret
    # computes on starts at the tensor's data pointer, with its strides.
    base = torch.from_numpy((rng.random((6, 4)) * 3).astype(dtype))
    for tensor in (base, base.t(), base[::2, 1:]):
        array = deepret._arrays._from_torch(tensor)
        assert array.ctypes.data == tensor.data_ptr()
        assert array.strides == tuple(s * tensor.element_size() for s in tensor.stride())


def test_tensors_that_need_grad_are_read_without_autograd():
    x = torch.from_numpy(DB.copy()).requires_grad_(True)
    scores, ids = deepret.knn(x, k=3)
    reference = deepret.knn(DB, k=3)
    np.testing.assert_array_equal(scores.numpy(), reference[0])
    np.testing.assert_array_equal(ids.numpy(), reference[1])


def test_import_deepret_does_not_import_torch():
    code = "import sys, deepret; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_regions_of_tensors_is_accepted_where_a_regions_is():
    acts = torch.from_numpy(ACTS)
    regions = deepret.egm(deepret.feature_saliency(acts))
    _assert_same(regions, REGIONS)
    _assert_same(regions[1], REGIONS[1])
    _assert_same(deepret.regional_max_pool(acts, regions),
                 deepret.regional_max_pool(ACTS, REGIONS))
    # numpy activations with a Regions of tensors: the result follows the tensors
    _assert_same(deepret.regional_max_pool(ACTS, regions), deepret.regional_max_pool(ACTS, REGIONS))


def test_evaluation_takes_tensors():
    from deepret import evaluate

    ranks = np.argsort(-rng.random((30, 4)), axis=0)
    gnd = [{"ok": [1, 2], "junk": [3]}, {"ok": [0]}, {"ok": []}, {"ok": [5, 7, 9], "junk": [1]}]
    reference = evaluate.compute_map(ranks, gnd, kappas=(1, 5))
    ours = evaluate.compute_map(torch.from_numpy(ranks), gnd, kappas=(1, 5))
    assert np.isnan(reference.aps[2])  # the query without positives, NaN in both
    _assert_same(ours, reference)
    _assert_same(evaluate.compute_map(torch.from_numpy(ranks.T.copy()), gnd, kappas=(1, 5),
                                         layout="query_by_db"),
                 reference)
    revisited = [{"easy": [1], "hard": [2], "junk": [3]}, {"easy": [0], "hard": [], "junk": []},
                 {"easy": [4, 6], "hard": [8], "junk": [5]}, {"easy": [], "hard": [9], "junk": [1]}]
    _assert_same(evaluate.compute_map_revisited(torch.from_numpy(ranks), revisited),
                 evaluate.compute_map_revisited(ranks, revisited))
    positions = np.array([0, 2, 5])
    assert evaluate.compute_ap(torch.from_numpy(positions), 4) == evaluate.compute_ap(positions, 4)
