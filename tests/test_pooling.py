"""deepret.feature_saliency and the pooling functions against straightforward
numpy definitions (tests/egm_reference.py), on real activations and random
data; bad input; the CUDA engine (skipped without a GPU)."""

from __future__ import annotations

import os

import math
from fractions import Fraction

import numpy as np
import pytest

import deepret
import egm_reference as ref

DATA = os.path.join(os.path.dirname(__file__), "data", "effnet_lite0_acts.npz")
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def real(name="chelsea"):
    return np.load(DATA)[name]


def sparse_acts(rng, shape, dtype=np.float64):
    a = rng.random(shape) * (rng.random(shape) < 0.1)
    return a.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_feature_saliency(dtype):
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 1), (5, 3, 4), (64, 7, 11)]:
        a = sparse_acts(rng, shape, dtype)
        got = deepret.feature_saliency(a)
        assert got.dtype == dtype and got.shape == shape[1:]
        np.testing.assert_allclose(got, ref.feature_saliency(a), rtol=TOL[dtype], atol=TOL[dtype])


def test_feature_saliency_real_and_batch():
    data = np.load(DATA)
    a = data["chelsea"]
    got = deepret.feature_saliency(a)
    assert got.dtype == np.float32 and got.shape == a.shape[1:]
    np.testing.assert_allclose(got, ref.feature_saliency(a), rtol=1e-5, atol=1e-6)
    assert abs(np.sqrt((got.astype(np.float64) ** 4).sum()) - 1) < 1e-5  # sqrt of a unit vector
    batch = np.stack([data[n] for n in data.files if data[n].shape == (1280, 16, 16)])
    many = deepret.feature_saliency(batch)
    for i in range(len(batch)):
        np.testing.assert_array_equal(many[i], deepret.feature_saliency(batch[i]))
    assert not deepret.feature_saliency(np.zeros((3, 4, 5))).any()


def test_feature_saliency_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        deepret.feature_saliency(-np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match="finite"):
        deepret.feature_saliency(np.full((2, 3, 3), np.nan))
    with pytest.raises(ValueError, match="3-D"):
        deepret.feature_saliency(np.ones((3, 3)))
    with pytest.raises(TypeError, match="real"):
        deepret.feature_saliency(np.ones((2, 3, 3), dtype=complex))
    with pytest.raises(ValueError, match="eps"):
        deepret.feature_saliency(np.ones((2, 3, 3)), eps=0)


@pytest.mark.parametrize("name", ["mac", "spoc", "gem", "rmac"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_global_pooling(name, dtype):
    rng = np.random.default_rng(1)
    ours, theirs = getattr(deepret, name), getattr(ref, name)
    for shape in [(3, 1, 1), (17, 5, 9), (8, 13, 6), (4, 16, 16)]:
        a = sparse_acts(rng, shape, dtype)
        got = ours(a)
        assert got.shape == (shape[0],)
        assert got.dtype == (np.float64 if dtype == np.float64 else np.float32)
        tol = TOL[np.float64 if dtype == np.float64 else np.float32]
        np.testing.assert_allclose(got, theirs(a), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["mac", "spoc", "gem", "rmac"])
def test_global_pooling_real_batch(name):
    data = np.load(DATA)
    batch = np.stack([data[n] for n in data.files if data[n].shape == (1280, 11, 16)])
    got = getattr(deepret, name)(batch)
    assert got.shape == (len(batch), 1280)
    for i in range(len(batch)):
        np.testing.assert_allclose(got[i], getattr(ref, name)(batch[i]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(got[i].astype(np.float64)), 1.0, rtol=1e-5)


def test_unnormalized_and_gem_p():
    a = sparse_acts(np.random.default_rng(2), (6, 4, 5))
    np.testing.assert_allclose(deepret.mac(a, normalize=False), a.max(axis=(1, 2)))
    np.testing.assert_allclose(deepret.spoc(a, normalize=False), a.sum(axis=(1, 2)))
    np.testing.assert_allclose(deepret.gem(a, p=1.0, normalize=False),
                               np.maximum(a, 1e-6).mean(axis=(1, 2)))
    np.testing.assert_allclose(deepret.gem(a, p=4.5), ref.gem(a, p=4.5))


def cirtorch_grid(h, w):
    """Inclusive boxes of cirtorch's grid (tests/egm_reference.py), whole map first."""
    return [(0, 0, h - 1, w - 1)] + [(i, j, i + s - 1, j + s - 1) for i, j, s in ref.rmac_regions(h, w)]


def exact_grid(h, w, L=3, ovr=Fraction(2, 5)):
    """The same grid in exact rational arithmetic (ties: the first minimum)."""
    wmin = min(w, h)
    crit = [abs(Fraction(wmin**2 - wmin * Fraction(max(h, w) - wmin, s - 1), wmin**2) - ovr)
            for s in (2, 3, 4, 5, 6, 7)]
    idx = crit.index(min(crit))
    Wd = idx + 1 if h < w else 0
    Hd = idx + 1 if h > w else 0
    out = [(0, 0, h - 1, w - 1)]
    for l in range(1, L + 1):
        wl = (2 * wmin) // (l + 1)
        wl2 = math.floor(Fraction(wl, 2) - 1)

        def centres(size, extra):
            b = 0 if l + extra == 1 else Fraction(size - wl, l + extra - 1)
            return [math.floor(wl2 + k * b) - wl2 for k in range(l + extra)]

        for i in centres(h, Hd):
            for j in centres(w, Wd):
                if wl > 0:
                    out.append((i, j, i + wl - 1, j + wl - 1))
    return out


def test_rmac_regions_equal_cirtorch_on_every_size_to_64():
    for h in range(1, 65):
        for w in range(1, 65):
            got = deepret.rmac_regions(h, w)
            assert [tuple(r) for r in got.tolist()] == cirtorch_grid(h, w), (h, w)
            assert (got[:, :2] >= 0).all() and (got[:, 2] < h).all() and (got[:, 3] < w).all()


def test_rmac_regions_float32_vs_exact_arithmetic():
    # Where cirtorch's float32 grid departs from exact arithmetic: documented in
    # docs/spectral.md ("R-MAC grid"). Every difference must be one of the two known causes:
    # the overlap argmin (different region count) or a floor of a whole number.
    differ = [(h, w) for h in range(1, 65) for w in range(1, 65) if cirtorch_grid(h, w) != exact_grid(h, w)]
    for h, w in differ:
        a, b = cirtorch_grid(h, w), exact_grid(h, w)
        if len(a) == len(b):  # same count: only starts moved, by one pixel
            moved = [(p, q) for p, q in zip(a, b) if p != q]
            assert all(max(abs(u - v) for u, v in zip(p, q)) == 1 for p, q in moved), (h, w)
    assert cirtorch_grid(16, 16) == exact_grid(16, 16)


def test_rmac_regions_known_values():
    # 16x16 at L=3: the whole map, then 1 (16x16), 4 (10x10) and 9 (8x8) regions.
    regions = deepret.rmac_regions(16, 16)
    sides = (regions[:, 2] - regions[:, 0] + 1).tolist()
    assert sides == [16, 16] + [10] * 4 + [8] * 9
    assert regions[6:].tolist()[:3] == [[0, 0, 7, 7], [0, 4, 7, 11], [0, 8, 7, 15]]


def test_regional_max_pool():
    data = np.load(DATA)
    a = data["coins"]
    s = deepret.feature_saliency(a)
    r = deepret.egm(s)
    got = deepret.regional_max_pool(a, r)
    assert got.shape == (len(r.weights), 1280) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref.regional_max_pool(a, r.boxes), rtol=1e-5, atol=1e-6)
    boxes = np.array([[0, 0, 0, 0], [0.5, 0.5, 3.2, 7.9], [-4, -4, 100, 100], [2, 3, 2, 3]])
    a64 = a.astype(np.float64)
    np.testing.assert_allclose(deepret.regional_max_pool(a64, boxes),
                               ref.regional_max_pool(a64, np.clip(boxes, 0, [12, 15, 12, 15])), rtol=1e-12)
    raw = deepret.regional_max_pool(a64, boxes[:1], normalize=False)
    np.testing.assert_array_equal(raw[0], a64[:, 0, 0])


def test_regional_max_pool_batch():
    data = np.load(DATA)
    names = [n for n in data.files if data[n].shape == (1280, 16, 16)][:5]
    acts = np.stack([data[n] for n in names])
    regions = deepret.egm(deepret.feature_saliency(acts))
    got = deepret.regional_max_pool(acts, regions)
    assert got.shape == (int(regions.counts.sum()), 1280)
    lo = 0
    for i, count in enumerate(regions.counts):
        np.testing.assert_allclose(got[lo:lo + count], ref.regional_max_pool(acts[i], regions[i].boxes),
                                   rtol=1e-5, atol=1e-6)
        lo += count


def test_pooling_bad_input():
    a = np.ones((4, 5, 6))
    with pytest.raises(ValueError, match="holds no pixel"):
        deepret.regional_max_pool(a, [[0.2, 0.2, 0.8, 0.8]])
    with pytest.raises(ValueError, match=r"\(k, 4\)"):
        deepret.regional_max_pool(a, [[0, 0, 1]])
    with pytest.raises(ValueError, match="counts is required"):
        deepret.regional_max_pool(a[None], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="counts"):
        deepret.regional_max_pool(a[None], [[0, 0, 1, 1]], counts=[2])
    with pytest.raises(ValueError, match="finite"):
        deepret.mac(np.full((2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="3-D"):
        deepret.spoc(np.ones(3))
    with pytest.raises(ValueError, match="p must"):
        deepret.gem(a, p=0)
    with pytest.raises(ValueError, match="levels"):
        deepret.rmac(a, levels=0)
    with pytest.raises(ValueError, match="at least one position"):
        deepret.mac(np.ones((3, 0, 2)))


@pytest.mark.gpu
def test_cuda_pooling(xp):
    data = np.load(DATA)
    acts = np.stack([data[n] for n in data.files if data[n].shape == (1280, 16, 16)][:4]).astype(np.float32)
    x = xp.asarray(acts)
    host = (lambda v: v) if xp is np else (lambda v: v.get())
    np.testing.assert_allclose(host(deepret.feature_saliency(x)), deepret.feature_saliency(acts),
                               rtol=1e-5, atol=1e-6)
    for name in ("mac", "spoc", "gem", "rmac"):
        np.testing.assert_allclose(host(getattr(deepret, name)(x)), getattr(deepret, name)(acts),
                                   rtol=1e-5, atol=1e-6)
    regions = deepret.egm(deepret.feature_saliency(acts))
    device_regions = regions
    if xp is not np:
        with pytest.raises(TypeError, match="host boxes"):
            deepret.regional_max_pool(x, regions)
        device_regions = deepret.Regions(*(xp.asarray(getattr(regions, f))
                                           for f in ("means", "variances", "weights", "boxes")),
                                         regions.counts)
    np.testing.assert_allclose(host(deepret.regional_max_pool(x, device_regions)),
                               deepret.regional_max_pool(acts, regions), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        deepret.feature_saliency(-x)
    with pytest.raises(ValueError):
        deepret.regional_max_pool(x[0], xp.asarray([[0.2, 0.2, 0.8, 0.8]]))


def test_rmac_regions_huge_levels_end_where_regions_end():
    # Past level 2*min(h, w) - 1 a region side is 0 at every level: a huge
    # `levels` (the fuzz test drew 2**62) must return at once, with the grid of
    # the last level that has regions.
    for h, w in [(1, 1), (3, 5), (7, 4)]:
        last = 2 * min(h, w) - 1
        expected = deepret.rmac_regions(h, w, levels=last)
        for levels in (last + 1, 10**6, 2**62):
            assert deepret.rmac_regions(h, w, levels=levels).tolist() == expected.tolist()
        assert len(deepret.rmac(np.ones((2, h, w), np.float32), levels=2**62)) == 2


def test_rmac_with_huge_levels_equals_the_reference():
    a = np.random.default_rng(0).random((3, 4, 6))
    np.testing.assert_allclose(deepret.rmac(a.astype(np.float32), levels=2**62), ref.rmac(a, levels=2**62),
                               rtol=1e-5)


def test_regional_max_pool_many_boxes_in_any_order(simd):
    """Boxes of several images interleaved, more per image than one work
    group (8) holds, at the map's edges and one pixel wide; float32 and
    float64; the same with check_input=False."""
    rng = np.random.default_rng(7)
    acts = rng.random((3, 17, 9, 13)).astype(np.float32) * (rng.random((3, 17, 9, 13)) < 0.6)
    k = 23
    y0, x0 = rng.integers(0, 9, k), rng.integers(0, 13, k)
    boxes = np.stack([y0, x0, y0 + rng.integers(0, 9, k), x0 + rng.integers(0, 13, k)], axis=1).astype(float)
    image = rng.integers(0, 3, k)
    image[:3] = [2, 0, 1]  # every image has boxes
    order = np.argsort(image, kind="stable")
    counts = np.bincount(image, minlength=3)
    for dtype in (np.float32, np.float64):
        a = acts.astype(dtype)
        got = deepret.regional_max_pool(a, boxes[order], counts=counts, normalize=False)
        for row, r in enumerate(order):
            y0, x0, y1, x1 = boxes[r].astype(int)
            np.testing.assert_array_equal(got[row], a[image[r], :, y0:y1 + 1, x0:x1 + 1].max(axis=(1, 2)))
        unchecked = deepret.regional_max_pool(a, boxes[order], counts=counts, normalize=False, check_input=False)
        np.testing.assert_array_equal(unchecked, got)


def test_check_input_false_skips_only_the_value_check():
    data = np.load(DATA)
    a = data["coins"].astype(np.float32)
    s = deepret.feature_saliency(a)
    np.testing.assert_array_equal(deepret.feature_saliency(a, check_input=False), s)
    bad = a.copy()
    bad[3, 2, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        deepret.feature_saliency(bad)
    with pytest.raises(ValueError, match="finite"):
        deepret.regional_max_pool(bad, [[0, 0, 3, 3]])
    # unchecked: an answer (meaningless where the NaN reaches), no exception, no crash
    assert deepret.feature_saliency(bad, check_input=False).shape == s.shape
    assert deepret.regional_max_pool(bad, [[0, 0, 3, 3]], check_input=False).shape == (1, 1280)
