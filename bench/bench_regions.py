"""deepret.egm against its peers, one pytest-benchmark group per case.

Cases (all on real feature-saliency maps of tests/data/effnet_lite0_acts.npz):

- "egm 64x64": one map (the astronaut FS map upsampled 4x, bilinear) with the
  paper's FS settings; contenders deepret.egm, the numpy reference of
  tests/egm_reference.py (the same algorithm; results must agree to 1e-4),
  and sklearn's GaussianMixture (diagonal) fitted for 1..8 components on
  64*64 pixels drawn with probability proportional to the preprocessed
  saliency (plus uniform jitter within the pixel), keeping the lowest BIC --
  the obvious alternative a user would reach for (checked for plausibility
  only: its count in 1..8, its means inside the map).
- "egm batch": 1,000 16x16 maps (seeded windows of upsampled real FS maps),
  one call for the batch against one call per map; both must give the same
  regions. Times are per batch; report_regions.py gives the per-map ratio.
- GPU (marker gpu): 10,000 16x16 maps in one CuPy call, checked against the
  CPU engine.

Every contender is checked before it is timed and records what
report_regions.py needs in extra_info (kind "egm", case, contender, maps).
"""

from __future__ import annotations

import functools
import os
import sys

import numpy as np
import pytest

import deepret
from benchlib import run_timed

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
sys.path.insert(0, TESTS)
import egm_reference  # noqa: E402  (tests/egm_reference.py: the numpy reference)

DATA = os.path.join(TESTS, "data", "effnet_lite0_acts.npz")
FS = dict(sigma=2.5, threshold=0.4, power=5.0)  # the paper's feature-saliency settings
BATCH = 1000
GPU_BATCH = 10_000
FIELDS = ("means", "variances", "weights", "boxes")


@functools.lru_cache(maxsize=None)
def upsampled(name: str, factor: int = 4) -> np.ndarray:
    from scipy.ndimage import zoom

    s = deepret.feature_saliency(np.load(DATA)[name]).astype(np.float64)
    out = np.clip(zoom(s, factor, order=1), 0, None)
    out.flags.writeable = False
    return out


def map_64() -> np.ndarray:
    s = upsampled("astronaut")
    assert s.shape == (64, 64)
    return s


@functools.lru_cache(maxsize=None)
def small_maps(count: int) -> np.ndarray:
    """count seeded 16x16 windows of upsampled real FS maps."""
    rng = np.random.default_rng(count)
    names = ["astronaut", "coins", "retina", "moon", "brick", "gravel", "camera", "logo"]
    sources = [upsampled(n) for n in names]
    out = np.empty((count, 16, 16))
    for i in range(count):
        src = sources[i % len(sources)]
        y, x = rng.integers(0, src.shape[0] - 16), rng.integers(0, src.shape[1] - 16)
        out[i] = src[y:y + 16, x:x + 16]
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=None)
def reference_64():
    return egm_reference.egm_map(map_64(), **FS)


def _sorted(fields):
    order = np.lexsort((fields["means"][:, 1], fields["means"][:, 0]))
    return {f: np.asarray(fields[f])[order] for f in FIELDS}


def check_against_reference(result) -> float:
    want = reference_64()
    got = {f: getattr(result, f) for f in FIELDS} if isinstance(result, deepret.Regions) else result
    assert len(got["weights"]) == len(want["weights"]), (len(got["weights"]), len(want["weights"]))
    got, want = _sorted(got), _sorted(want)
    error = max(float(np.max(np.abs(got[f] - want[f]) / np.maximum(np.abs(want[f]), 1.0), initial=0.0))
                for f in ("means", "variances"))
    assert error <= 1e-4, error
    return error


# ----------------------------------------------------------------- the peers
def gmm_bic(s, max_components=8, seed=0):
    """sklearn GaussianMixture over 1..max_components on pixels resampled by
    the preprocessed saliency; the model with the lowest BIC."""
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    pre = egm_reference.preprocess(s, FS["threshold"], FS["power"]).ravel()
    picks = rng.choice(pre.size, size=pre.size, p=pre / pre.sum())
    points = np.stack(np.unravel_index(picks, s.shape), axis=1) + rng.uniform(-0.5, 0.5, (pre.size, 2))
    best = None
    for k in range(1, max_components + 1):
        model = GaussianMixture(k, covariance_type="diag", random_state=seed).fit(points)
        bic = model.bic(points)
        if best is None or bic < best[0]:
            best = (bic, model)
    return best[1]


def check_gmm(model) -> float:
    assert 1 <= model.n_components <= 8
    assert ((model.means_ >= -0.5) & (model.means_ <= 63.5)).all()
    return float("nan")


CONTENDERS_64 = {
    "deepret": lambda s: (lambda: deepret.egm(s, **FS)),
    "deepret 1 thread": lambda s: (lambda: deepret.egm(s, **FS, num_threads=1)),
    "numpy reference": lambda s: (lambda: egm_reference.egm_map(s, **FS)),
    "sklearn GaussianMixture+BIC": lambda s: (lambda: gmm_bic(s)),
}


@pytest.mark.parametrize("contender", list(CONTENDERS_64))
def test_egm_64(benchmark, contender):
    if contender.startswith("sklearn"):
        pytest.importorskip("sklearn")
    s = map_64()
    benchmark.group = "egm one 64x64 map"
    run_timed(
        benchmark, CONTENDERS_64[contender](s),
        check=check_gmm if contender.startswith("sklearn") else check_against_reference,
        contender=contender, ours=contender == "deepret", device="cpu", kind="egm", case="64x64",
        maps=1, h=64, w=64,
    )


# ------------------------------------------------------------------- batches
@functools.lru_cache(maxsize=None)
def batch_result():
    return deepret.egm(small_maps(BATCH), **FS)


def check_batch(result) -> float:
    want = batch_result()
    if isinstance(result, list):
        assert [len(r.weights) for r in result] == want.counts.tolist()
        for f in FIELDS:
            np.testing.assert_array_equal(np.concatenate([getattr(r, f) for r in result]), getattr(want, f))
    else:
        for f in FIELDS + ("counts",):
            np.testing.assert_array_equal(getattr(result, f), getattr(want, f))
    return 0.0


CONTENDERS_BATCH = {
    "deepret batch": lambda maps: (lambda: deepret.egm(maps, **FS)),
    "deepret one map per call": lambda maps: (lambda: [deepret.egm(m, **FS) for m in maps]),
    # Not a peer: the batch on one thread, to separate batching from threading.
    "deepret batch 1 thread": lambda maps: (lambda: deepret.egm(maps, **FS, num_threads=1)),
}


@pytest.mark.parametrize("contender", list(CONTENDERS_BATCH))
def test_egm_batch(benchmark, contender):
    maps = small_maps(BATCH)
    benchmark.group = f"egm {BATCH} maps 16x16"
    run_timed(
        benchmark, CONTENDERS_BATCH[contender](maps), check=check_batch,
        contender=contender, ours=contender == "deepret batch", device="cpu", kind="egm",
        case=f"batch {BATCH}x16x16", maps=BATCH, h=16, w=16,
    )


# ----------------------------------------------------------------------- GPU
@pytest.mark.gpu
def test_gpu_egm_batch(benchmark, cupy_device):
    cp, gpu_name = cupy_device
    host = small_maps(GPU_BATCH)
    maps = cp.asarray(host)
    want = deepret.egm(host, **FS)

    def run():
        result = deepret.egm(maps, **FS)
        cp.cuda.Device().synchronize()
        return result

    def check(result) -> float:
        np.testing.assert_array_equal(result.counts, want.counts)
        owner = np.repeat(np.arange(len(want.counts)), want.counts)

        def by_position(means):  # map by map, by mean: tie order cannot fail the check
            return np.lexsort((means[:, 1], means[:, 0], owner))

        got_means = cp.asnumpy(result.means)
        mine, theirs = by_position(got_means), by_position(want.means)
        error = 0.0
        for f in ("means", "variances"):
            got, ref = cp.asnumpy(getattr(result, f))[mine], getattr(want, f)[theirs]
            error = max(error, float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1.0), initial=0)))
        assert error <= 1e-4, error
        return error

    benchmark.group = f"gpu egm {GPU_BATCH} maps 16x16"
    run_timed(benchmark, run, check=check, contender="deepret", ours=True, device="gpu",
              gpu_name=gpu_name, kind="egm", case=f"gpu batch {GPU_BATCH}x16x16", maps=GPU_BATCH,
              h=16, w=16)
