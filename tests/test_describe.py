"""deepret.describe: global descriptors from CNN activations, against the
obvious composition of the public pieces (and for fs.egm a plain numpy
version of regional max pooling), on the real EfficientNet activations."""

import inspect
from pathlib import Path

import numpy as np
import pytest

import deepret

ACTS = Path(__file__).parent / "data" / "effnet_lite0_acts.npz"


@pytest.fixture(scope="module")
def real():
    with np.load(ACTS) as z:
        return {name: z[name] for name in z.files}


def _l2n(v):
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-6)


def _fs_egm_reference(a):
    """FS map -> EGM (paper settings) -> max over each box's pixel centres -> L2N -> sum -> L2N."""
    a = a.astype(np.float32)
    regions = deepret.egm(deepret.feature_saliency(a), sigma=2.5, threshold=0.4, power=5.0)
    total = np.zeros(a.shape[0])
    for y0, x0, y1, x1 in regions.boxes:
        rows = slice(int(np.ceil(y0)), int(np.floor(y1)) + 1)
        cols = slice(int(np.ceil(x0)), int(np.floor(x1)) + 1)
        total += _l2n(a[:, rows, cols].max(axis=(1, 2)).astype(np.float64))
    return _l2n(total), len(regions.boxes)


def test_fs_egm_on_real_activations(real):
    names = list(real)
    d = deepret.describe([real[n] for n in names], "fs.egm")
    assert d.shape == (len(names), 1280) and d.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1, rtol=1e-5)
    for i, name in enumerate(names):
        expected, count = _fs_egm_reference(real[name])
        assert 1 <= count <= 20
        np.testing.assert_allclose(d[i], expected, rtol=1e-4, atol=1e-6, err_msg=name)
    # cat and chelsea are the same photograph: identical descriptors, mutual nearest neighbours
    i, j = names.index("cat"), names.index("chelsea")
    np.testing.assert_array_equal(d[i], d[j])
    similarity = d @ d.T
    np.fill_diagonal(similarity, -np.inf)
    assert similarity[i].argmax() == j and similarity[j].argmax() == i


@pytest.mark.parametrize("method", ["mac", "spoc", "gem", "rmac"])
def test_global_methods_are_the_pooling_functions(method, real):
    a = real["astronaut"]
    expected = {"mac": deepret.mac, "spoc": deepret.spoc, "gem": deepret.gem, "rmac": deepret.rmac}[method](a)
    np.testing.assert_array_equal(deepret.describe(a, method), expected)


@pytest.mark.parametrize("method", inspect.unwrap(deepret.describe).__globals__["METHODS"])
def test_single_batch_and_list_agree(method, real):
    same_size = [name for name in real if real[name].shape == real["astronaut"].shape][:4]
    batch = np.stack([real[n] for n in same_size])
    as_batch = deepret.describe(batch, method)
    as_list = deepret.describe([real[n] for n in same_size], method)
    assert as_batch.shape == (len(same_size), 1280)
    np.testing.assert_array_equal(as_batch, as_list)
    np.testing.assert_array_equal(deepret.describe(batch[1], method), as_batch[1])


def test_mixed_sizes_keep_input_order(real):
    names = list(real)[:6]
    together = deepret.describe([real[n] for n in names], "rmac")
    for i, name in enumerate(names):
        np.testing.assert_array_equal(together[i], deepret.rmac(real[name]))


def test_all_zero_activations_fall_back_to_the_whole_map():
    a = np.zeros((2, 8, 4, 5), np.float32)
    a[1, 3, 2, 2] = 1.0
    d = deepret.describe(a, "fs.egm")
    assert d.shape == (2, 8) and np.isfinite(d).all()
    np.testing.assert_array_equal(d[0], 0)  # nothing to describe, but no NaN
    np.testing.assert_allclose(d[1], np.eye(8)[3], atol=1e-6)


@pytest.mark.parametrize("call, error, message", [
    (lambda: deepret.describe(np.ones((2, 3, 3)), "vlad"), ValueError, "method must be one of"),
    (lambda: deepret.describe(np.ones((3, 3)), "mac"), ValueError, "3-D"),
    (lambda: deepret.describe([], "mac"), ValueError, "empty"),
    (lambda: deepret.describe([np.ones((2, 3, 3)), np.ones((4, 3, 3))], "mac"), ValueError, "channels"),
    (lambda: deepret.describe([np.ones((2, 3))], "mac"), ValueError, r"activations\[0\]"),
    (lambda: deepret.describe(np.full((2, 3, 3), np.nan), "fs.egm"), ValueError, "finite"),
    (lambda: deepret.describe(-np.ones((2, 3, 3)), "fs.egm"), ValueError, "non-negative"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.gpu
def test_gpu_matches_cpu(real):
    cp = pytest.importorskip("cupy")
    if not deepret.has_cuda():
        pytest.skip("deepret has no CUDA engine or no GPU is visible")
    names = list(real)
    for method in ("mac", "rmac", "fs.egm"):
        cpu = deepret.describe([real[n] for n in names], method)
        gpu = deepret.describe([cp.asarray(real[n]) for n in names], method)
        assert isinstance(gpu, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(gpu), cpu, rtol=1e-4, atol=1e-6)
