"""deepret.evaluate against a plain-loop reimplementation of the Oxford /
revisited protocol, and deepret.datasets."""

from __future__ import annotations

import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import deepret
from deepret import datasets
from deepret.evaluate import (
    MapResult, compute_ap, compute_map, compute_map_revisited, revisited_gnd)


# --------------------------------------------------------------------------
# the obvious way: walk each ranking, skip junk, loop over the positives
# --------------------------------------------------------------------------

def ref_ap(positions, nres):
    ap = 0.0
    for j, rank in enumerate(positions):
        precision_0 = 1.0 if rank == 0 else j / rank
        precision_1 = (j + 1) / (rank + 1)
        ap += (precision_0 + precision_1) * (1.0 / nres) / 2.0
    return ap


def ref_map(ranks_by_query, gnd, kappas):
    """ranks_by_query: list of rankings (lists of ids); gnd: dicts ok/junk."""
    aps, prs = [], []
    total_ap, total_pr, counted = 0.0, [0.0] * len(kappas), 0
    for ranking, g in zip(ranks_by_query, gnd):
        ok, junk = set(int(i) for i in g["ok"]), set(int(i) for i in g.get("junk", []))
        if not ok:
            aps.append(math.nan)
            prs.append([math.nan] * len(kappas))
            continue
        positions, place = [], 0
        for item in ranking:
            if item in junk:
                continue
            if item in ok:
                positions.append(place)
            place += 1
        ap = ref_ap(positions, len(ok))
        row = []
        for kappa in kappas:
            if not positions:
                row.append(0.0)
                continue
            kq = min(positions[-1] + 1, kappa)
            row.append(sum(1 for p in positions if p + 1 <= kq) / kq)
        aps.append(ap)
        prs.append(row)
        total_ap += ap
        total_pr = [a + b for a, b in zip(total_pr, row)]
        counted += 1
    if counted == 0:
        return math.nan, aps, [math.nan] * len(kappas), prs
    return total_ap / counted, aps, [t / counted for t in total_pr], prs


def assert_same(result, expected):
    m, aps, pr, prs = expected
    assert isinstance(result, MapResult)
    np.testing.assert_array_equal(result.aps, np.array(aps, dtype=float))
    np.testing.assert_array_equal(result.precisions,
                                  np.array(prs, dtype=float).reshape(result.precisions.shape))
    np.testing.assert_array_equal(result.mean_precision, np.array(pr, dtype=float))
    if math.isnan(m):
        assert math.isnan(result.map)
    else:
        assert result.map == m


def check(ranks_by_query, gnd, kappas=(1, 5, 10)):
    """compute_map in both layouts against ref_map (bit for bit)."""
    expected = ref_map(ranks_by_query, gnd, kappas)
    ranks = np.array(ranks_by_query, dtype=np.int64).reshape(len(gnd), -1)
    assert_same(compute_map(ranks.T, gnd, kappas), expected)
    assert_same(compute_map(ranks, gnd, kappas, layout="query_by_db"), expected)
    return compute_map(ranks.T, gnd, kappas)


# --------------------------------------------------------------------------
# compute_ap
# --------------------------------------------------------------------------

def test_compute_ap_by_hand():
    assert compute_ap([0], 1) == 1.0
    assert compute_ap([0, 1, 2], 3) == 1.0
    # positives at 0 and 2: 0.5 * 1 + (1/2 + 2/3) / 4
    assert compute_ap([0, 2], 2) == pytest.approx(0.5 + (0.5 + 2 / 3) / 4, abs=1e-15)
    # one positive at position 1 out of one: (0 + 1/2) / 2
    assert compute_ap([1], 1) == 0.25
    # a positive that was not retrieved adds nothing but counts in nres
    assert compute_ap([0], 2) == 0.5
    assert compute_ap([], 3) == 0.0


def test_compute_ap_random_against_loop():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        found = int(rng.integers(0, n + 1))
        pos = np.sort(rng.choice(200, size=found, replace=False))
        assert compute_ap(pos, n) == ref_ap(pos.tolist(), n)


@pytest.mark.parametrize("positions, n, exc", [
    ([1, 0], 2, ValueError),           # not ascending
    ([1, 1], 2, ValueError),           # repeated
    ([0, 1, 2], 2, ValueError),        # more found than positives
    ([0], 0, ValueError),
    ([-1], 1, ValueError),
    ([0.0, 1.0], 2, TypeError),
    ([True], 1, TypeError),
    ([0], 1.0, TypeError),
    ([0], True, TypeError),
    ([[0, 1]], 2, ValueError),
    ("01", 2, TypeError),
])
def test_compute_ap_errors(positions, n, exc):
    with pytest.raises(exc):
        compute_ap(positions, n)


# --------------------------------------------------------------------------
# compute_map: hand-made rankings with junk everywhere
# --------------------------------------------------------------------------

# ids 0..9; positives P, junk J
HAND_CASES = {
    "no junk": ([[0, 5, 1, 6, 2, 7, 8, 9]], [{"ok": [0, 1, 2], "junk": []}]),
    "junk first": ([[3, 0, 5, 1, 6, 2]], [{"ok": [0, 1, 2], "junk": [3]}]),
    "junk middle": ([[0, 5, 3, 4, 1, 6, 2]], [{"ok": [0, 1, 2], "junk": [3, 4]}]),
    "junk last": ([[0, 5, 1, 6, 2, 3]], [{"ok": [0, 1, 2], "junk": [3]}]),
    "junk between every item": ([[7, 0, 8, 5, 9, 1, 4, 6, 3, 2]],
                                [{"ok": [0, 1, 2], "junk": [7, 8, 9, 4, 3]}]),
    "all junk but one": ([[3, 4, 5, 6, 0, 7, 8]], [{"ok": [0], "junk": [3, 4, 5, 6, 7, 8]}]),
    "positive last behind junk": ([[3, 4, 5, 0]], [{"ok": [0], "junk": [3, 4, 5]}]),
    "positives absent (top-K)": ([[5, 0, 6]], [{"ok": [0, 1, 2], "junk": [9]}]),
    "no positive retrieved": ([[5, 6, 7]], [{"ok": [0, 1], "junk": [5]}]),
    "junk absent from ranking": ([[0, 5, 1]], [{"ok": [0, 1], "junk": [8, 9]}]),
    "no junk key": ([[5, 0, 1]], [{"ok": [0, 1]}]),
    "several queries, one empty": (
        [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]],
        [{"ok": [0], "junk": [1]}, {"ok": [], "junk": [0]}, {"ok": [2, 3], "junk": [1]}]),
    "bbx ignored": ([[1, 0]], [{"ok": [0], "junk": [], "bbx": [1.0, 2.0, 3.0, 4.0]}]),
}


@pytest.mark.parametrize("name", sorted(HAND_CASES))
@pytest.mark.parametrize("kappas", [(1, 5, 10), (1, 2, 3), (), [4]])
def test_hand_cases(name, kappas):
    ranks, gnd = HAND_CASES[name]
    check(ranks, gnd, kappas)


def test_hand_values():
    # junk ignored: positives at 0 and 2 of the junk-free list
    r = check([[3, 0, 5, 4, 1]], [{"ok": [0, 1], "junk": [3, 4]}])
    assert r.map == pytest.approx(0.5 + (0.5 + 2 / 3) / 4, abs=1e-15)
    # P@1 = 1; P@5: kq = min(3, 5) = 3 -> 2 / 3; P@10 likewise
    np.testing.assert_allclose(r.precisions[0], [1, 2 / 3, 2 / 3], rtol=0, atol=1e-15)
    r = check([[3, 4, 5, 0]], [{"ok": [0], "junk": [3, 4, 5]}])
    assert r.map == 1.0  # the only non-junk item is the positive


def test_queries_without_positives_left_out():
    ranks = [[0, 1, 2], [2, 1, 0], [1, 0, 2]]
    gnd = [{"ok": [0]}, {"ok": []}, {"ok": [0], "junk": [1]}]
    r = check(ranks, gnd)
    assert math.isnan(r.aps[1]) and np.isnan(r.precisions[1]).all()
    assert r.map == 1.0
    np.testing.assert_array_equal(r.mean_precision, [1.0, 1.0, 1.0])
    r = check(ranks, [{"ok": []}] * 3)
    assert math.isnan(r.map) and np.isnan(r.mean_precision).all()


def test_random_rankings_with_junk():
    rng = np.random.default_rng(7)
    for trial in range(30):
        n_db, nq = int(rng.integers(5, 300)), int(rng.integers(1, 8))
        n_ranked = n_db if trial % 2 else int(rng.integers(1, n_db + 1))  # full or top-K
        ranks, gnd = [], []
        for _ in range(nq):
            ranks.append(rng.permutation(n_db)[:n_ranked].tolist())
            ids = rng.permutation(n_db)
            n_ok, n_junk = int(rng.integers(0, n_db // 2 + 1)), int(rng.integers(0, n_db // 3 + 1))
            gnd.append({"ok": ids[:n_ok].tolist(), "junk": ids[n_ok:n_ok + n_junk].tolist()})
        check(ranks, gnd, (1, 3, 5, 10, 100))


def test_result_types_and_unpacking():
    m, aps, pr, prs = compute_map(np.array([[0], [1]]), [{"ok": [1]}], kappas=(1, 2))
    assert isinstance(m, float) and m == 0.25
    assert aps.shape == (1,) and aps.dtype == np.float64
    assert pr.shape == (2,) and prs.shape == (1, 2)
    np.testing.assert_array_equal(prs, [[0.0, 0.5]])  # kq = min(2, kappa)


def test_accepts_other_integer_dtypes_and_numpy_gnd():
    ranks = np.array([[2, 0, 1], [0, 1, 2]], dtype=np.uint16).T
    gnd = [{"ok": np.array([0], np.int32), "junk": np.array([2], np.uint8)},
           {"ok": (1, 2), "junk": np.array([], dtype=np.float64)}]
    r = compute_map(ranks, gnd)
    assert_same(r, ref_map([[2, 0, 1], [0, 1, 2]], gnd, (1, 5, 10)))


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"ranks": np.zeros((3, 1))}, TypeError, "ranks"),
    ({"ranks": np.zeros((3, 1), bool)}, TypeError, "ranks"),
    ({"ranks": np.arange(3)}, ValueError, "ranks"),
    ({"ranks": np.arange(6).reshape(3, 2)}, ValueError, "gnd has 1"),
    ({"ranks": np.array([[0], [-1]])}, ValueError, "non-negative"),
    ({"ranks": np.array([[0], [0]])}, ValueError, "repeats"),
    ({"gnd": {"ok": [0]}}, TypeError, "gnd"),
    ({"gnd": [[0]]}, TypeError, r"gnd\[0\]"),
    ({"gnd": [{"junk": [0]}]}, ValueError, "'ok'"),
    ({"gnd": [{"ok": [0, 0]}]}, ValueError, "repeats"),
    ({"gnd": [{"ok": [0], "junk": [0]}]}, ValueError, "both"),
    ({"gnd": [{"ok": [0.5]}]}, TypeError, "ok"),
    ({"gnd": [{"ok": [[0]]}]}, ValueError, "ok"),
    ({"kappas": (0,)}, ValueError, "kappas"),
    ({"kappas": (True,)}, TypeError, "kappas"),
    ({"kappas": (1.0,)}, TypeError, "kappas"),
    ({"kappas": 5}, TypeError, "kappas"),
    ({"layout": "rows"}, ValueError, "layout"),
])
def test_compute_map_errors(kwargs, exc, match):
    args = {"ranks": np.array([[0], [1], [2]]), "gnd": [{"ok": [1]}]}
    args.update(kwargs)
    layout = args.pop("layout", "db_by_query")
    with pytest.raises(exc, match=match):
        compute_map(args["ranks"], args["gnd"], args.get("kappas", (1, 5, 10)), layout=layout)


# --------------------------------------------------------------------------
# revisited bookkeeping on the real ROxford5k / RParis6k ground truth
# --------------------------------------------------------------------------

def ref_revisited_gnd(gnd, protocol):
    out = []
    for g in gnd:
        easy, hard, junk = list(g["easy"]), list(g["hard"]), list(g["junk"])
        if protocol == "easy":
            out.append({"ok": easy, "junk": junk + hard})
        elif protocol == "medium":
            out.append({"ok": easy + hard, "junk": junk})
        else:
            out.append({"ok": hard, "junk": junk + easy})
    return out


@pytest.mark.parametrize("name", ["roxford5k", "rparis6k"])
@pytest.mark.parametrize("seed, top_k", [(0, None), (1, None), (2, 300)])
def test_revisited_random_rankings(name, seed, top_k):
    data = datasets.load_ground_truth(name)
    n_db, gnd = len(data.imlist), data.gnd
    rng = np.random.default_rng(seed)
    ranks = []
    for g in gnd:
        # random ranking with the relevant images pulled forward at random, so
        # that APs span the whole range and junk interleaves with positives
        score = rng.random(n_db)
        for key, boost in (("easy", 0.6), ("hard", 0.4), ("junk", 0.5)):
            score[g[key]] += boost * rng.random(len(g[key]))
        ranks.append(np.argsort(-score, kind="stable")[:top_k].tolist())
    ranks_q = np.array(ranks)
    results = compute_map_revisited(ranks_q.T, gnd)
    assert set(results) == {"easy", "medium", "hard"}
    for protocol, result in results.items():
        ref_gnd = ref_revisited_gnd(gnd, protocol)
        assert_same(result, ref_map(ranks, ref_gnd, (1, 5, 10)))
        assert_same(compute_map(ranks_q.T, revisited_gnd(gnd, protocol)),
                    ref_map(ranks, ref_gnd, (1, 5, 10)))
        empty = [i for i, g in enumerate(ref_gnd) if not g["ok"]]
        assert np.isnan(result.aps[empty]).all()
        assert not np.isnan(np.delete(result.aps, empty)).any()
    if name == "roxford5k":  # some ROxford queries have no easy positives
        assert np.isnan(results["easy"].aps).sum() > 0
    only = compute_map_revisited(ranks_q, gnd, (1,), layout="query_by_db", protocols="hard")
    assert list(only) == ["hard"]
    np.testing.assert_array_equal(only["hard"].aps, results["hard"].aps)


def test_revisited_errors():
    gnd = [{"easy": [0], "hard": [1], "junk": []}]
    with pytest.raises(ValueError, match="protocol"):
        revisited_gnd(gnd, "Easy")
    with pytest.raises(ValueError, match="'hard'"):
        revisited_gnd([{"easy": [0], "junk": []}], "medium")
    with pytest.raises(ValueError, match="protocols"):
        compute_map_revisited(np.array([[0], [1]]), gnd, protocols=("easy", "extreme"))
    with pytest.raises(ValueError, match="both"):  # an id both easy and junk
        compute_map_revisited(np.array([[0], [1]]), [{"easy": [0], "hard": [], "junk": [0]}])


# --------------------------------------------------------------------------
# acceptance: baseline cosine ranking of the bundled Oxford5k descriptors
# --------------------------------------------------------------------------

def test_oxford5k_baseline_map():
    ds = datasets.load_oxford5k()
    x = ds.descriptors / np.linalg.norm(ds.descriptors, axis=1, keepdims=True)
    sim = x @ x[ds.query_indices].T                      # (5063, 55)
    ranks = np.argsort(-sim, axis=0, kind="stable")      # (n_database, n_queries)
    result = deepret.evaluate.compute_map(ranks, ds.gnd)
    assert round(result.map, 3) == 0.403
    expected = ref_map(ranks.T.tolist(), ds.gnd, (1, 5, 10))
    assert_same(result, expected)


# --------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------

def test_load_oxford5k():
    ds = datasets.load_oxford5k()
    assert ds.descriptors.shape == (5063, 128) and ds.descriptors.dtype == np.float32
    assert np.isfinite(ds.descriptors).all()
    norms = np.linalg.norm(ds.descriptors, axis=1)
    assert not np.allclose(norms, 1.0)  # shipped as is, not normalized
    assert len(ds.imlist) == 5063 and len(ds.qimlist) == 55 and len(ds.gnd) == 55
    assert ds.query_indices.shape == (55,) and ds.query_indices.dtype == np.int64
    assert [ds.imlist[i] for i in ds.query_indices] == ds.qimlist
    np.testing.assert_array_equal(ds.queries, ds.descriptors[ds.query_indices])
    for g in ds.gnd:
        assert set(g) == {"ok", "junk", "bbx"}
        assert g["ok"].dtype == np.int64 and g["ok"].size > 0
        assert g["bbx"].shape == (4,)
        assert g["ok"].max() < 5063 and g["junk"].max() < 5063
    ds.descriptors[:] = 0  # each call returns fresh arrays
    assert datasets.load_oxford5k().descriptors.any()
    assert "5063" in repr(ds)


@pytest.mark.parametrize("name, n_images, keys", [
    ("oxford5k", 5063, {"ok", "junk", "bbx"}),
    ("paris6k", 6392, {"ok", "junk", "bbx"}),
    ("roxford5k", 4993, {"easy", "hard", "junk", "bbx"}),
    ("rparis6k", 6322, {"easy", "hard", "junk", "bbx"}),
])
def test_load_ground_truth(name, n_images, keys):
    data = datasets.load_ground_truth(name)
    assert data.name == name and data.descriptors is None
    assert len(data.imlist) == n_images and len(data.gnd) == len(data.qimlist)
    assert all(set(g) == keys for g in data.gnd)
    assert (data.query_indices is None) == name.startswith("r")
    with pytest.raises(ValueError, match="descriptors"):
        data.queries


def test_load_ground_truth_errors():
    with pytest.raises(ValueError, match="name"):
        datasets.load_ground_truth("holidays")
    with pytest.raises(TypeError, match="name"):
        datasets.load_ground_truth(5)


def test_data_ships_inside_the_package(tmp_path):
    """The files come from the installed package, not from the source tree
    or a folder beside it: load them in a fresh interpreter started elsewhere."""
    code = ("import deepret, pathlib; ds = deepret.datasets.load_oxford5k(); "
            "print(ds.descriptors.shape, len(ds.gnd), "
            "pathlib.Path(deepret.datasets.__file__).parent)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "(5063, 128) 55" in out
    package_dir = pathlib.Path(out.split()[-1])
    assert (package_dir / "data" / "oxford5k" / "fc7pca128.npy").is_file()
    assert "shared" not in package_dir.parts


class _DeviceArray:
    """Stands in for a CuPy array (no GPU here): what the evaluation needs of
    one is that it is recognised as CuPy and copied to the host by .get()."""

    __module__ = "cupy._core.core"
    __cuda_array_interface__: dict = {}

    def __init__(self, host):
        self.host = host

    def get(self):
        return self.host


def test_device_rankings_are_evaluated_on_the_host():
    rng = np.random.default_rng(5)
    ranks = np.argsort(-rng.random((20, 3)), axis=0)
    gnd = [{"ok": [1, 4]}, {"ok": [0], "junk": [2]}, {"ok": [7, 8, 9]}]
    reference = compute_map(ranks, gnd)
    ours = compute_map(_DeviceArray(ranks), gnd)
    assert ours.map == reference.map
    np.testing.assert_array_equal(ours.aps, reference.aps)
    np.testing.assert_array_equal(ours.precisions, reference.precisions)
    assert compute_ap(_DeviceArray(np.array([0, 3])), 2) == compute_ap([0, 3], 2)
