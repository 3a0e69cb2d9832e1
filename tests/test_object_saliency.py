"""RegionSet, region graph, centralities, OS maps, OS.EGM and CroW against the
slow references of objects_reference.py on the real EfficientNet-Lite0
activations (19 images, 1280 channels, 6-16 px maps); bad input."""

from pathlib import Path

import numpy as np
import pytest

import deepret
import objects_reference as ref

ACTS = Path(__file__).parent / "data" / "effnet_lite0_acts.npz"
ALPHA = 0.9  # CG converges to 1e-6 in a few dozen iterations: comparable with exact solves
SOLVE = dict(alpha=ALPHA, tol=1e-6, maxiter=500)


@pytest.fixture(scope="module")
def names():
    with np.load(ACTS) as z:
        return list(z.files)


@pytest.fixture(scope="module")
def acts(names):
    with np.load(ACTS) as z:
        return [z[n].astype(np.float32) for n in names]


@pytest.fixture(scope="module")
def rs(acts):
    return deepret.RegionSet.from_activations(acts)


@pytest.fixture(scope="module")
def fitted(rs):
    return deepret.ObjectSaliency(k=10, **SOLVE).fit(rs)


@pytest.fixture(scope="module")
def ref_graph(rs):
    return ref.region_graph(rs.descriptors, rs.image, 10, 3.0, True, False)


def _close(ours, expected, rtol=1e-5, atol=1e-6, **kw):
    np.testing.assert_allclose(np.asarray(ours, np.float64), expected, rtol=rtol, atol=atol, **kw)


# ------------------------------------------------------------------ RegionSet
def test_region_set_matches_reference(acts, rs, names):
    assert rs.n_images == len(acts) and rs.descriptors.dtype == np.float32 and rs.channels == 1280
    assert (np.diff(rs.image) >= 0).all() and rs.counts.sum() == len(rs)
    for m, a in enumerate(acts):
        fs, regions, desc = ref.image_regions(a)
        rows = rs.regions_of(m)
        assert rows.stop - rows.start == len(desc), names[m]
        assert tuple(rs.shapes[m]) == fs.shape
        _close(rs.boxes[rows], regions["boxes"], rtol=1e-6, atol=1e-6, err_msg=names[m])
        _close(rs.weights[rows], regions["weights"], rtol=1e-6, atol=1e-9, err_msg=names[m])
        _close(rs.descriptors[rows], desc, rtol=1e-5, atol=1e-7, err_msg=names[m])
        assert (rs.fallback[rows] == regions["fallback"]).all()


def test_region_set_batches_lists_and_storage(acts, rs, tmp_path):
    same = [i for i, a in enumerate(acts) if a.shape == acts[0].shape][:4]
    batched = deepret.RegionSet.from_activations(np.stack([acts[i] for i in same]), batch_size=3)
    listed = deepret.RegionSet.from_activations([acts[i] for i in same])
    np.testing.assert_array_equal(batched.descriptors, listed.descriptors)
    np.testing.assert_array_equal(batched.boxes, listed.boxes)
    for j, i in enumerate(same):  # a region's descriptor does not depend on its batch-mates
        np.testing.assert_array_equal(batched.descriptors[batched.regions_of(j)], rs.descriptors[rs.regions_of(i)])
    half = deepret.RegionSet.from_activations(acts, dtype=np.float16)
    assert half.descriptors.dtype == np.float16
    np.testing.assert_allclose(half.descriptors, rs.descriptors, atol=1e-3)
    path = tmp_path / "regions.npz"
    rs.save(path)
    back = deepret.RegionSet.load(path)
    for field in ("descriptors", "image", "boxes", "means", "variances", "weights", "fallback", "shapes"):
        np.testing.assert_array_equal(getattr(back, field), getattr(rs, field))
    assert back.params == rs.params
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert all(z[f].dtype != object for f in z.files)


def test_image_without_regions_gets_the_whole_map(acts):
    zero = np.zeros_like(acts[0])
    rs = deepret.RegionSet.from_activations([acts[0], zero, acts[1]])
    rows = rs.regions_of(1)
    assert rows.stop - rows.start == 1 and rs.fallback[rows].all()
    h, w = acts[0].shape[1:]
    np.testing.assert_array_equal(rs.boxes[rows][0], [0, 0, h - 1, w - 1])
    np.testing.assert_array_equal(rs.descriptors[rows], 0)
    os_ = deepret.ObjectSaliency(k=3, **SOLVE).fit(rs)
    d = os_.describe([acts[0], zero])
    assert np.isfinite(d).all() and np.linalg.norm(d[0]) == pytest.approx(1, abs=1e-5)
    np.testing.assert_array_equal(d[1], 0)  # nothing to describe, but a row and no NaN


# --------------------------------------------------------- graph, centrality
@pytest.mark.parametrize("same_image, mutual", [(False, True), (True, True), (False, False)])
def test_region_graph_matches_reference(rs, same_image, mutual):
    W = deepret.region_graph(rs, k=10, gamma=3.0, mutual=mutual, same_image=same_image)
    expected = ref.region_graph(rs.descriptors, rs.image, 10, 3.0, mutual, same_image)
    _close(W.toarray(), expected, rtol=1e-5, atol=1e-7)
    if not same_image:
        rows, cols = W.nonzero()
        assert (rs.image[rows] != rs.image[cols]).all()


def test_k_beyond_the_candidates_is_capped(rs):
    W = deepret.region_graph(rs, k=200)  # the default k on 37 regions
    expected = ref.region_graph(rs.descriptors, rs.image, 200, 3.0, True, False)
    _close(W.toarray(), expected, rtol=1e-5, atol=1e-7)


def test_centralities_match_reference(rs, fitted, ref_graph):
    g, f = ref.centralities(ref_graph, rs.image, ALPHA)
    _close(fitted.global_, g, rtol=2e-4, atol=1e-6)
    _close(fitted.local_, f, rtol=2e-4, atol=1e-6)


# ------------------------------------------------------------------- OS maps
@pytest.mark.parametrize("centrality", deepret.objects.CENTRALITIES)
@pytest.mark.parametrize("cover", deepret.objects.COVERS)
def test_os_maps_of_database_images(acts, rs, ref_graph, centrality, cover):
    os_ = deepret.ObjectSaliency(k=10, centrality=centrality, cover=cover, **SOLVE).fit(rs)
    g, f = ref.centralities(ref_graph, rs.image, ALPHA)
    c = ref.weight(f, g, centrality)
    maps = os_.saliency(acts, images=np.arange(len(acts)))
    for m in (0, 1, 8, 9, 13):  # astronaut, chelsea, page, text, brick (several regions)
        rows = rs.regions_of(m)
        fs = ref.ref.feature_saliency(np.asarray(acts[m], np.float64)).astype(np.float32)
        expected = ref.os_map(acts[m], fs, rs.descriptors[rows].astype(np.float64), rs.boxes[rows], c[rows], cover)
        _close(maps[m], expected, rtol=3e-4, atol=1e-7 * expected.max())


def test_object_saliency_on_each_simd_path(acts, simd):
    """The region dot products (objects_simd.h) on the pinned path: 0 to 9
    regions per map (groups of the kernel's loop and its tails), signed
    descriptors (their float32 block sums cancel), maps of 6-16 px,
    float32 and float64, checked and unchecked input."""
    rng = np.random.default_rng(3)
    maps = [a for a in acts if a.shape[1:] == acts[4].shape[1:]][:3]
    batch = np.stack(maps)
    counts = np.array([0, 9, 4])[:len(batch)]
    k = int(counts.sum())
    desc = rng.standard_normal((k, batch.shape[1])).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    h, w = batch.shape[2:]
    y0, x0 = rng.integers(0, h, k), rng.integers(0, w, k)
    boxes = np.stack([y0, x0, y0 + rng.integers(0, h, k), x0 + rng.integers(0, w, k)], axis=1).astype(float)
    c = rng.random(k) + 0.5
    starts = np.concatenate([[0], np.cumsum(counts)])
    for dtype in (np.float32, np.float64):
        x = batch.astype(dtype)
        ours = deepret.object_saliency(x, desc, boxes, c, counts=counts)
        np.testing.assert_array_equal(deepret.object_saliency(x, desc, boxes, c, counts=counts, check_input=False),
                                      ours)
        for i, a in enumerate(x):
            r = slice(starts[i], starts[i + 1])
            fs = ref.ref.feature_saliency(np.asarray(a, np.float64))
            expected = ref.os_map(a, fs, desc[r].astype(np.float64), boxes[r], c[r])
            _close(ours[i], expected, rtol=3e-4, atol=1e-6 * max(expected.max(), 1e-30))


@pytest.mark.parametrize("source", [np.float16, np.float32])
def test_batches_load_and_check_every_value_on_each_simd_path(simd, source):
    """image_batches' one pass (_core.widen_range): every float16 value
    (infinities, subnormals, -0; NaN to NaN) converts exactly, as numpy does, and
    the range it reports tells finite from not; then through RegionSet."""
    from deepret import _backend

    every = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(source)
    out = np.empty(every.shape, np.float32)
    lo, hi = _backend._core.widen_range(every, out, 0)
    expected = every.astype(np.float32)
    number = ~np.isnan(expected)  # NaN payloads may differ (F16C quiets signalling NaNs)
    np.testing.assert_array_equal(out.view(np.uint32)[number], expected.view(np.uint32)[number])
    assert np.isnan(out[~number]).all()
    assert np.isnan(lo) and np.isnan(hi)
    finite = every[np.isfinite(every)]
    for piece in (finite, finite[:37], finite[-5:], finite[1000:1001]):
        out = np.empty(piece.shape, np.float32)
        lo, hi = _backend._core.widen_range(piece, out, 0)
        assert (lo, hi) == (piece.astype(np.float32).min(), piece.astype(np.float32).max())
    a = np.abs(np.random.default_rng(0).standard_normal((5, 6, 7))).astype(source)
    for value, match in ((np.inf, "finite"), (np.nan, "finite"), (-1.0, "non-negative")):
        bad = a.copy()
        bad[4, 5, 6] = value
        with pytest.raises(ValueError, match=match):
            deepret.RegionSet.from_activations([a, bad])


def test_os_maps_of_new_images(acts, rs, fitted, ref_graph):
    g, _ = ref.centralities(ref_graph, rs.image, ALPHA)
    x = rs.descriptors.astype(np.float64)
    queries = [acts[9], acts[13]]
    maps = fitted.saliency(queries)
    for a, ours in zip(queries, maps):
        fs, regions, desc = ref.image_regions(a)
        fj, gj = ref.query_centralities(desc, x, ref_graph, g, ALPHA, 10, 3.0)
        expected = ref.os_map(a, fs, desc, regions["boxes"], fj * gj)
        _close(ours, expected, rtol=3e-4, atol=1e-7 * expected.max())


def test_constant_centrality_is_the_graph_free_control(acts, rs):
    os_ = deepret.ObjectSaliency(k=10, centrality="constant").fit(rs)
    m = 13
    rows = rs.regions_of(m)
    expected = deepret.object_saliency(acts[m], rs.descriptors[rows], rs.boxes[rows], np.ones(rows.stop - rows.start))
    np.testing.assert_array_equal(os_.saliency(acts[m], images=np.array([m])), expected)


# ------------------------------------------------------------------ OS.EGM
@pytest.mark.parametrize("readout", deepret.objects.READOUTS)
def test_os_egm_matches_reference(acts, fitted, readout):
    """EGM on the OS maps by the reference EGM (slow: the three smallest maps)."""
    small = sorted(range(len(acts)), key=lambda i: acts[i].shape[1])[:3]
    queries = [acts[i] for i in small]
    maps = fitted.saliency(queries)
    ours = fitted.describe(queries, readout=readout)
    for a, s, d in zip(queries, maps, ours):
        expected = ref.os_egm(a, s.astype(np.float64), readout)
        _close(d, expected, rtol=1e-4, atol=1e-6)


def test_os_egm_of_all_images_and_describe_dispatch(acts, fitted):
    d = fitted.describe(acts)
    assert d.shape == (len(acts), 1280) and d.dtype == np.float32
    maps = fitted.saliency(acts)
    for a, s, row in zip(acts, maps, d):
        expected = ref.os_egm(a, s.astype(np.float64), "sum", egm=lambda m, **p: _egm_dict(m, **p))
        _close(row, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(deepret.describe(acts, "os.egm", saliency=fitted), d)
    np.testing.assert_array_equal(fitted.describe(acts[3]), d[3])


def _egm_dict(m, **params):
    r = deepret.egm(m, **params)
    return dict(boxes=r.boxes, weights=r.weights)


# ----------------------------------------------------------- regional diffusion
@pytest.mark.parametrize("pooling", ["sum", "max"])
def test_regional_diffusion_matches_reference(rs, pooling):
    index = deepret.RegionalDiffusionIndex(rs, k=10, pooling=pooling, **SOLVE)
    W = ref.region_graph(rs.descriptors, rs.image, 10, 3.0, True, True)
    queries = [rs.descriptors[rs.regions_of(m)] for m in (0, 7, 13)]
    expected = ref.regional_scores(W, rs.descriptors, rs.image, queries, ALPHA, 10, 3.0, pooling)
    scores, images = index.search(queries, topk=5)
    for q in range(len(queries)):
        _close(scores[q], expected[images[q], q], rtol=2e-4)
        best = np.sort(expected[:, q])[::-1][:5]
        _close(scores[q], best, rtol=2e-4)
    s2, i2 = index.search(rs, topk=5)
    np.testing.assert_array_equal(i2[[0, 7, 13]], images)
    assert index.nbytes > rs.descriptors.nbytes


# ---------------------------------------------------------------------- CroW
def test_crow_matches_reference(acts):
    d = deepret.describe(acts, "crow")
    for a, row in zip(acts, d):
        _close(row, ref.crow(a), rtol=1e-4, atol=1e-6)


def test_weighted_sum_pool_with_fs_and_os_maps(acts, fitted):
    a = acts[0]
    for s in (deepret.feature_saliency(a), fitted.saliency(a)):
        expected = ref.l2n((a.astype(np.float64) * s.astype(np.float64)[None]).sum(axis=(1, 2)))
        _close(deepret.weighted_sum_pool(a, s), expected, rtol=1e-4, atol=1e-6)
    _close(fitted.describe(a, readout="spatial"),
           ref.l2n((a.astype(np.float64) * fitted.saliency(a).astype(np.float64)[None]).sum(axis=(1, 2))),
           rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ bad input
def _bad_cases(acts, fitted):
    a = acts[0]
    nan = a.copy()
    nan[3, 2, 1] = np.nan
    neg = a.copy()
    neg[0, 0, 0] = -1
    return [
        (lambda: deepret.RegionSet.from_activations([]), ValueError, "acts is an empty sequence"),
        (lambda: deepret.RegionSet.from_activations(np.zeros((4, 0, 5), np.float32)), ValueError, "empty"),
        (lambda: deepret.RegionSet.from_activations([a, np.zeros((8, 0, 3))]), ValueError, r"acts\[1\] is empty"),
        (lambda: deepret.RegionSet.from_activations([np.zeros_like(a)] * 2), ValueError, "all zero"),
        (lambda: deepret.RegionSet.from_activations([a, a[:100]]), ValueError, "same number of channels"),
        (lambda: deepret.RegionSet.from_activations([a, nan]), ValueError, r"acts\[1\] must be finite"),
        (lambda: deepret.RegionSet.from_activations([neg]), ValueError, "non-negative"),
        (lambda: deepret.RegionSet.from_activations(a[0]), ValueError, "3-D"),
        (lambda: deepret.RegionSet.from_activations(a.astype(complex)), TypeError, "real"),
        (lambda: deepret.RegionSet.from_activations(a, dtype=np.int8), TypeError, "dtype"),
        (lambda: deepret.RegionSet.from_activations(a, power=0), ValueError, "power"),
        (lambda: fitted.describe(a[:640]), ValueError, "640 channels"),
        (lambda: fitted.saliency([a, nan]), ValueError, r"acts\[1\] must be finite"),
        (lambda: fitted.saliency(a, images=np.array([5])), ValueError, "shape"),
        (lambda: fitted.saliency(a, images=np.array([99])), ValueError, "images must lie"),
        (lambda: fitted.describe(a, readout="mean"), ValueError, "readout must be one of"),
        (lambda: deepret.ObjectSaliency().saliency(a), ValueError, "not fitted"),
        (lambda: deepret.ObjectSaliency(centrality="pagerank"), ValueError, "centrality"),
        (lambda: deepret.ObjectSaliency(cover="disk"), ValueError, "cover"),
        (lambda: deepret.ObjectSaliency(alpha=1.0), ValueError, "alpha"),
        (lambda: deepret.ObjectSaliency(k=0), ValueError, "k must be"),
        (lambda: deepret.ObjectSaliency(threshold=2.0), ValueError, "threshold"),
        (lambda: deepret.ObjectSaliency().fit(np.zeros((3, 4))), TypeError, "RegionSet"),
        (lambda: deepret.describe(a, "os.egm"), TypeError, "saliency="),
        (lambda: deepret.RegionalDiffusionIndex(fitted.region_set_, k=5).search(np.ones((2, 7)), topk=3), ValueError,
         "7 channels"),
        (lambda: deepret.RegionalDiffusionIndex(fitted.region_set_, k=5, pooling="mean"), ValueError, "pooling"),
        (lambda: deepret.RegionalDiffusionIndex(fitted.region_set_, k=5).search(np.full((1, 1280), np.nan), 3),
         ValueError, "NaN"),
        (lambda: deepret.object_saliency(a, np.ones((2, 1280)), np.zeros((2, 4)), np.ones(3)), ValueError,
         "weights must be"),
        (lambda: deepret.object_saliency(a, np.ones((2, 9)), np.zeros((2, 4)), np.ones(2)), ValueError,
         "descriptors must be"),
        (lambda: deepret.weighted_sum_pool(a, np.ones((3, 3))), ValueError, "weights must be"),
        (lambda: deepret.crow(nan), ValueError, "finite"),
        (lambda: deepret.crow(neg), ValueError, "non-negative"),
    ]


@pytest.mark.parametrize("case", range(32))
def test_bad_input(acts, fitted, case):
    cases = _bad_cases(acts, fitted)
    assert len(cases) == 32
    call, error, message = cases[case]
    with pytest.raises(error, match=message):
        call()


def test_one_region_set_image_cannot_make_a_graph(acts):
    rs = deepret.RegionSet.from_activations(acts[13])  # one image, several regions
    with pytest.raises(ValueError, match="at least 2 images"):
        deepret.region_graph(rs, k=3)


def test_fs_vs_os_figure(acts, fitted):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [acts[0], acts[13]]
    fig = deepret.plot.fs_vs_os(chosen, fitted, titles=["astronaut", "brick"])
    axes = fig.axes
    assert len(axes) == 4
    fs_regions = deepret.egm(deepret.feature_saliency(acts[13]), **fitted.region_set_.params)
    os_regions = deepret.egm(fitted.saliency(acts[13]), **fitted.egm_params)
    assert len(axes[2].patches) == len(fs_regions.weights) and len(axes[3].patches) == len(os_regions.weights)
    with pytest.raises(ValueError, match="titles"):
        deepret.plot.fs_vs_os(chosen, fitted, titles=["one"])
    plt.close("all")


# ------------------------------------------------------------- CPU and CUDA
def _to_numpy(x):
    return x if isinstance(x, np.ndarray) else x.get()


def test_object_saliency_kernel_on_each_backend(acts, rs, xp):
    m = [0, 13]
    batch = np.stack([acts[i] for i in m if acts[i].shape == acts[0].shape])
    rows = np.concatenate([np.arange(rs.regions_of(i).start, rs.regions_of(i).stop) for i in m[:len(batch)]])
    counts = np.array([rs.counts[i] for i in m[:len(batch)]])
    c = np.linspace(0.5, 2.0, len(rows))
    ours = deepret.object_saliency(xp.asarray(batch), xp.asarray(rs.descriptors[rows]), xp.asarray(rs.boxes[rows]),
                                   xp.asarray(c), counts=counts)
    assert type(ours) is type(xp.asarray(batch))
    starts = np.concatenate([[0], np.cumsum(counts)])
    for i, a in enumerate(batch):
        r = slice(starts[i], starts[i + 1])
        fs = ref.ref.feature_saliency(np.asarray(a, np.float64)).astype(np.float32)
        expected = ref.os_map(a, fs, rs.descriptors[rows[r]].astype(np.float64), rs.boxes[rows[r]], c[r])
        _close(_to_numpy(ours)[i], expected, rtol=3e-4, atol=1e-7 * expected.max())


def test_crow_and_weighted_pool_on_each_backend(acts, xp):
    batch = np.stack([a for a in acts if a.shape == acts[0].shape][:3])
    d = deepret.crow(xp.asarray(batch))
    for a, row in zip(batch, _to_numpy(d)):
        _close(row, ref.crow(a), rtol=1e-4, atol=1e-6)
    s = deepret.feature_saliency(batch)
    pooled = _to_numpy(deepret.weighted_sum_pool(xp.asarray(batch), xp.asarray(s)))
    expected = ref.l2n_rows((batch.astype(np.float64) * s.astype(np.float64)[:, None]).sum(axis=(2, 3)))
    _close(pooled, expected, rtol=1e-4, atol=1e-6)


def test_float16_activations_match_float32(acts, rs):
    with np.load(ACTS) as z:
        half = [z[n] for n in z.files]  # stored as float16
    assert half[0].dtype == np.float16
    from_half = deepret.RegionSet.from_activations(half)
    np.testing.assert_array_equal(from_half.descriptors, rs.descriptors)
    np.testing.assert_array_equal(from_half.boxes, rs.boxes)
    strided = deepret.RegionSet.from_activations([h[:, :, ::-1] for h in half[:3]])  # not contiguous
    flipped = deepret.RegionSet.from_activations([np.ascontiguousarray(a[:, :, ::-1]) for a in acts[:3]])
    np.testing.assert_array_equal(strided.descriptors, flipped.descriptors)


@pytest.mark.parametrize("readout", deepret.objects.READOUTS)
def test_saliency_pool_reads_out_fs_maps_too(acts, readout):
    """FS maps with the FS settings, each read-out, against the reference (the reference EGM)."""
    small = sorted(range(len(acts)), key=lambda i: acts[i].shape[1])[:4]
    for i in small:
        fs = deepret.feature_saliency(acts[i])
        ours = deepret.saliency_pool(acts[i], fs, readout, sigma=2.5, threshold=0.4, power=5.0)
        expected = ref.os_egm(acts[i], fs.astype(np.float64), readout, params=ref.FS)
        _close(ours, expected, rtol=1e-4, atol=1e-6)
    if readout == "sum":  # the FS.EGM descriptor of describe()
        a = acts[small[0]]
        fs = deepret.feature_saliency(a)
        np.testing.assert_allclose(deepret.saliency_pool(a, fs, sigma=2.5, threshold=0.4, power=5.0),
                                   deepret.describe(a, "fs.egm"), rtol=1e-5, atol=1e-7)


def test_saliency_pool_bad_input(acts):
    a = acts[0]
    with pytest.raises(ValueError, match="s must be"):
        deepret.saliency_pool(a, np.ones((3, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        deepret.saliency_pool(a, -np.ones(a.shape[1:]))
    with pytest.raises(ValueError, match="readout"):
        deepret.saliency_pool(a, np.ones(a.shape[1:]), "median")


def test_object_saliency_save_load(acts, fitted, tmp_path):
    path = tmp_path / "os.npz"
    fitted.save(path)
    back = deepret.ObjectSaliency.load(path)
    np.testing.assert_array_equal(back.global_, fitted.global_)
    np.testing.assert_array_equal(back.W_.toarray(), fitted.W_.toarray())
    assert back.egm_params == fitted.egm_params and back.alpha == fitted.alpha and back.k == fitted.k
    np.testing.assert_array_equal(back.describe(acts[:3]), fitted.describe(acts[:3]))
    with pytest.raises(ValueError, match="not fitted"):
        deepret.ObjectSaliency().save(tmp_path / "empty.npz")


def test_os_map_properties(acts, rs):
    """Linear in the weights, zero where F̂ is zero, and "all" covers at least what "box" does."""
    m = 13
    rows = rs.regions_of(m)
    a, desc, boxes = acts[m], rs.descriptors[rows], rs.boxes[rows]
    c = np.linspace(1.0, 3.0, rows.stop - rows.start)
    box = deepret.object_saliency(a, desc, boxes, c)
    np.testing.assert_allclose(deepret.object_saliency(a, desc, boxes, 2.5 * c), 2.5 * box, rtol=1e-6)
    every = deepret.object_saliency(a, desc, boxes, c, cover="all")
    assert (every >= box - 1e-7 * box.max()).all() and (every > box).any()
    fs = deepret.feature_saliency(a)
    assert (box[fs == 0] == 0).all()
    np.testing.assert_array_equal(deepret.object_saliency(a, desc, boxes, np.zeros_like(c)), 0)


def test_progress_bar_runs(acts):
    pytest.importorskip("tqdm")
    rs = deepret.RegionSet.from_activations(acts[:3], progress=True, batch_size=1)
    assert rs.n_images == 3
