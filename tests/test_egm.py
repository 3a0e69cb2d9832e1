"""deepret.egm: against the numpy reference (tests/egm_reference.py), on
synthetic blobs with known answers, geometric properties, real CNN saliency
maps, bad input, and the CUDA engine (skipped without a GPU)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import deepret
import egm_reference as ref

DATA = os.path.join(os.path.dirname(__file__), "data", "effnet_lite0_acts.npz")
FIELDS = ("means", "variances", "weights", "boxes")


def blobs(h, w, centres, sds, amps=None):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    s = np.zeros((h, w))
    for i, ((cy, cx), sd) in enumerate(zip(centres, sds)):
        amp = 1.0 if amps is None else amps[i]
        s += amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sd * sd))
    return s


def random_map(rng, h, w, n_blobs=4):
    centres = rng.uniform(0, [h, w], size=(n_blobs, 2))
    s = blobs(h, w, centres, rng.uniform(1.5, 5, n_blobs), rng.uniform(0.3, 1, n_blobs))
    return s + 0.2 * rng.random((h, w)) * s.max()


def by_position(r):
    """Fields sorted by mean, so that tie order cannot fail a comparison."""
    order = np.lexsort((r["means"][:, 1], r["means"][:, 0]))
    return {f: np.asarray(r[f])[order] for f in FIELDS}


def assert_matches_reference(result, expected, rtol=1e-4):
    assert len(result.weights) == len(expected["weights"])
    got = by_position({f: getattr(result, f) for f in FIELDS})
    want = by_position(expected)
    for f in FIELDS:
        np.testing.assert_allclose(got[f], want[f], rtol=rtol, atol=1e-9, err_msg=f)


def real_maps():
    data = np.load(DATA)
    return {name: ref.feature_saliency(data[name]) for name in data.files}


# ------------------------------------------------------------ the reference
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (16, 16), (23, 31)])
def test_matches_reference_random(seed, shape, simd):
    rng = np.random.default_rng([seed, *shape])
    s = random_map(rng, *shape)
    assert_matches_reference(deepret.egm(s)[0], ref.egm_map(s))


@pytest.mark.parametrize("params", [
    dict(sigma=2.0, threshold=0.0, power=2.0),          # the paper's OS settings
    dict(lam=0.3),
    dict(tau=0.8, sigma=1.5),
    dict(max_iter=1),
    dict(box_scale=0.5, threshold=0.7, power=1.0),
])
def test_matches_reference_params(params):
    rng = np.random.default_rng(7)
    for _ in range(3):
        s = random_map(rng, 19, 24, 5)
        assert_matches_reference(deepret.egm(s, **params)[0], ref.egm_map(s, **params))


def test_matches_reference_real_maps():
    for name, s in real_maps().items():
        assert_matches_reference(deepret.egm(s)[0], ref.egm_map(s))


def test_uniform_map_matches_reference():
    s = np.ones((9, 12))
    assert_matches_reference(deepret.egm(s)[0], ref.egm_map(s))


# ----------------------------------------------------------- known answers
@pytest.mark.parametrize("centres", [
    [(10, 12)],
    [(10, 12), (30, 40)],
    [(8, 8), (8, 40), (36, 24)],
    [(6, 6), (6, 42), (38, 6), (38, 42)],
])
def test_blobs_recovered(centres):
    s = blobs(45, 50, centres, [3.0] * len(centres))
    r = deepret.egm(s)
    assert len(r.weights) == len(centres)
    for c in centres:
        assert np.min(np.abs(r.means - np.array(c)).max(axis=1)) <= 1.0


def test_shift_shifts_regions():
    s = blobs(30, 30, [(8, 9), (20, 21)], [2.5, 3.5], [1.0, 0.7])
    big = np.zeros((45, 50))
    big[7:37, 11:41] = s
    r, rb = deepret.egm(s), deepret.egm(big)
    np.testing.assert_allclose(rb.means, r.means + [7, 11], rtol=0, atol=1e-9)
    np.testing.assert_allclose(rb.variances, r.variances, rtol=1e-9)
    np.testing.assert_allclose(rb.weights, r.weights, rtol=1e-9)


def test_transpose_swaps_axes():
    s = random_map(np.random.default_rng(3), 21, 29)
    r, rt = deepret.egm(s), deepret.egm(np.ascontiguousarray(s.T))
    assert len(r.weights) == len(rt.weights)
    a, b = by_position({f: getattr(r, f) for f in FIELDS}), None
    flipped = {"means": rt.means[:, ::-1], "variances": rt.variances[:, ::-1],
               "weights": rt.weights, "boxes": rt.boxes[:, [1, 0, 3, 2]]}
    b = by_position(flipped)
    for f in FIELDS:
        np.testing.assert_allclose(a[f], b[f], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("scale", [1e-30, 0.37, 3.0, 1e30])
def test_scale_changes_nothing(scale):
    s = random_map(np.random.default_rng(4), 17, 22)
    r, rs = deepret.egm(s), deepret.egm(s * scale)
    for f in FIELDS:
        np.testing.assert_allclose(getattr(rs, f), getattr(r, f), rtol=1e-9, atol=1e-9)


def test_zero_and_empty_maps():
    assert len(deepret.egm(np.zeros((8, 9))).weights) == 0
    r = deepret.egm(np.zeros((3, 0, 5)))
    assert r.counts.tolist() == [0, 0, 0] and r.means.shape == (0, 2) and r.boxes.shape == (0, 4)
    assert len(deepret.egm(np.zeros((0, 4, 4)))) == 0


def test_single_pixel():
    s = np.zeros((5, 6))
    s[2, 3] = 4.0
    r = deepret.egm(s, sigma=1.0, box_scale=1.0)
    np.testing.assert_array_equal(r.means, [[2.0, 3.0]])
    np.testing.assert_array_equal(r.variances, [[1.0, 1.0]])
    np.testing.assert_array_equal(r.weights, [1.0])
    np.testing.assert_array_equal(r.boxes, [[1.0, 2.0, 3.0, 4.0]])


# ------------------------------------------------------------- the result
def test_batch_equals_single_maps_and_is_deterministic():
    rng = np.random.default_rng(11)
    maps = np.stack([random_map(rng, 16, 16) for _ in range(40)])
    maps[5] = 0
    batch = deepret.egm(maps)
    one_thread = deepret.egm(maps, num_threads=1)
    assert len(batch) == 40 and batch.counts[5] == 0 and batch.counts.sum() == len(batch.weights)
    for i in range(40):
        single = deepret.egm(maps[i])
        for f in FIELDS:
            np.testing.assert_array_equal(getattr(batch[i], f), getattr(single, f))
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(batch, f), getattr(one_thread, f))
    assert np.allclose([r.weights.sum() for r in batch if len(r.weights)], 1.0)


def test_progress_chunks_give_the_same_result():
    rng = np.random.default_rng(12)
    maps = np.stack([random_map(rng, 6, 7, 2) for _ in range(1100)])
    a, b = deepret.egm(maps), deepret.egm(maps, progress=True)
    for f in FIELDS + ("counts",):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def test_regions_object():
    maps = np.stack([blobs(20, 20, [(5, 5), (14, 14)], [2, 2]), np.zeros((20, 20)),
                     blobs(20, 20, [(10, 10)], [3])])
    r = deepret.egm(maps)
    assert r.counts.tolist() == [2, 0, 1] and r.offsets.tolist() == [0, 2, 2, 3]
    assert r.means.shape == (3, 2) and r.variances.shape == (3, 2)
    assert r.weights.shape == (3,) and r.boxes.shape == (3, 4)
    assert [len(m.weights) for m in r] == [2, 0, 1]
    np.testing.assert_array_equal(r[-1].means, r.means[2:])
    assert "3 maps" in repr(r) and "1 regions" in repr(r[2])
    with pytest.raises(IndexError):
        r[3]
    with pytest.raises(TypeError):
        r["a"]
    assert np.all(np.diff(r[0].weights) <= 0)  # by descending weight
    single = deepret.egm(maps[0])
    assert len(single) == 1 and not single.batched


def test_any_real_dtype():
    s = random_map(np.random.default_rng(5), 12, 13)
    r64 = deepret.egm(s)
    r32 = deepret.egm(s.astype(np.float32))
    assert len(r32.weights) == len(r64.weights)
    ints = (s / s.max() * 1000).astype(np.int32)
    assert_matches_reference(deepret.egm(ints)[0], ref.egm_map(ints))
    assert len(deepret.egm(s > 0.5 * s.max()).weights) >= 1
    assert len(deepret.egm(np.asfortranarray(s)).weights) == len(r64.weights)


# --------------------------------------------------------------- real data
def test_real_saliency_maps():
    data = np.load(DATA)
    counts = {}
    for name in data.files:
        s = deepret.feature_saliency(data[name])
        r = deepret.egm(s, sigma=2.5, threshold=0.4, power=5.0)
        counts[name] = len(r.weights)
        assert 1 <= len(r.weights) <= 20, name
        salient = s >= 0.4 * s.max()
        for y0, x0, y1, x1 in r.boxes:
            inside = salient[int(np.ceil(y0)):int(np.floor(y1)) + 1, int(np.ceil(x0)):int(np.floor(x1)) + 1]
            assert inside.any(), name
    a, b = (deepret.egm(deepret.feature_saliency(data[n])) for n in ("chelsea", "cat"))
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def test_real_batch_of_maps():
    data = np.load(DATA)
    maps = np.stack([deepret.feature_saliency(data[n]) for n in data.files if data[n].shape[1:] == (16, 16)])
    r = deepret.egm(maps)
    for i in range(len(maps)):
        assert_matches_reference(r[i], ref.egm_map(maps[i]))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad, error, match", [
    (np.full((4, 4), np.nan), ValueError, "finite"),
    (np.array([[0.0, np.inf], [1, 2]]), ValueError, "finite"),
    (np.array([[0.0, -1.0], [1, 2]]), ValueError, "non-negative"),
    (np.ones(5), ValueError, "2-D"),
    (np.ones((2, 2, 2, 2)), ValueError, "2-D"),
    (np.ones((3, 3), dtype=complex), TypeError, "real"),
    (np.array([["a"]]), TypeError, "real"),
])
def test_bad_maps(bad, error, match):
    with pytest.raises(error, match=match):
        deepret.egm(bad)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(sigma=0), ValueError, "sigma"),
    (dict(sigma=np.nan), ValueError, "sigma"),
    (dict(sigma="2"), TypeError, "sigma"),
    (dict(lam=1.0), ValueError, "lam"),
    (dict(lam=-0.1), ValueError, "lam"),
    (dict(tau=0.4), ValueError, "tau"),
    (dict(tau=1.5), ValueError, "tau"),
    (dict(threshold=1.5), ValueError, "threshold"),
    (dict(power=0), ValueError, "power"),
    (dict(max_iter=0), ValueError, "max_iter"),
    (dict(max_iter=2.5), TypeError, "max_iter"),
    (dict(box_scale=-1), ValueError, "box_scale"),
    (dict(num_threads=0), ValueError, "num_threads"),
])
def test_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        deepret.egm(np.ones((4, 4)), **kwargs)


# ----------------------------------------------------------------------- GPU
@pytest.mark.gpu
def test_cuda_matches_cpu(xp):
    rng = np.random.default_rng(21)
    maps = np.stack([random_map(rng, 16, 16) for _ in range(64)] + [np.zeros((16, 16))])
    want = deepret.egm(maps)
    got = deepret.egm(xp.asarray(maps))
    np.testing.assert_array_equal(got.counts, want.counts)
    for i in range(len(maps)):
        g = {f: np.asarray(getattr(got[i], f) if xp is np else getattr(got[i], f).get()) for f in FIELDS}
        w = {f: getattr(want[i], f) for f in FIELDS}
        g, w = by_position(g), by_position(w)
        for f in FIELDS:
            np.testing.assert_allclose(g[f], w[f], rtol=1e-6, atol=1e-9)
    if xp is not np:
        with pytest.raises(ValueError, match="finite"):
            deepret.egm(xp.full((4, 4), xp.nan))


@pytest.mark.parametrize("shape", [(16, 16), (40, 37), (64, 64)])
def test_grid_first_step_equals_direct_e_step(shape):
    # lam = 0 lets the engine run its first E-step as Gaussian smoothings of
    # the grid; any lam > 0 takes the direct (samples x components) E-step,
    # and a tiny one changes nothing else.
    s = random_map(np.random.default_rng(shape), *shape, n_blobs=6)
    a, b = deepret.egm(s), deepret.egm(s, lam=1e-300)
    assert len(a.weights) == len(b.weights)
    for f in FIELDS:
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-9, atol=1e-9)


def test_matches_reference_where_terms_are_cut():
    # sigma 0.5 on a 48x48 map: far components' terms fall more than 700
    # below a sample's largest and count as zero (the direct E-step).
    rng = np.random.default_rng(99)
    s = random_map(rng, 48, 48, n_blobs=8)
    for kwargs in (dict(sigma=0.5), dict(sigma=0.5, lam=0.2, power=2.0)):
        assert_matches_reference(deepret.egm(s, **kwargs)[0], ref.egm_map(s, **kwargs))
