"""Issue #11's fitting speed, run by hand (not in CI): the object-saliency fit
of a collection of synthetic-but-realistic activation maps (1280 x 16 x 24,
made by tiling, shifting, flipping and perturbing the 19 real
EfficientNet-Lite0 maps of tests/data), step by step, deepret against the
same steps composed from numpy, scipy and scikit-learn.

    python bench/scale_objects.py [--n 500] [--k 200] [--peer-egm 3] [--peer-sample N]

Steps: regions (FS map, EGM, regional max pooling), region graph (kNN of
other-image regions, mutual, gamma 3, normalized), centralities (Katz g and
every image's local f, alpha 0.99, 20 CG iterations), OS maps of all
database images, OS.EGM descriptors (EGM on the OS maps, pooling, sum).
The peers: numpy FS maps and pooling; EGM by tests/egm_reference.py (the
plain numpy EGM; no numpy/scipy/scikit-learn function implements EGM), timed
on --peer-egm images and scaled linearly (marked "extrapolated");
with --peer-sample N, the other per-image peer loops (OS maps and the
local-centrality solves, one CG per image on the whole graph) run on the
first N images and are scaled the same way (at 5,000 images the peer would
otherwise take most of an hour);
scikit-learn NearestNeighbors (brute force, inner product via cosine on unit
rows) and scipy.sparse for the graph; scipy.sparse.linalg.cg, one right-hand
side at a time, for the centralities; a numpy matrix product per image for
the OS maps. Both sides use the machine's threads (OpenBLAS and OpenMP).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import deepret

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import egm_reference as ref  # noqa: E402

DATA = os.path.join(HERE, "..", "tests", "data", "effnet_lite0_acts.npz")
FS = dict(sigma=2.5, lam=0.0, tau=0.55, threshold=0.4, power=5.0, max_iter=20, box_scale=2.0)
OS = dict(sigma=2.0, lam=0.0, tau=0.55, threshold=0.0, power=2.0, max_iter=20, box_scale=2.0)


def synthetic(n, h=16, w=24, seed=0):
    """n float16 maps (1280, h, w): a real map tiled to h x w, circularly
    shifted, maybe flipped, each channel scaled by exp(0.2 N(0, 1))."""
    with np.load(DATA) as z:
        real = [z[k].astype(np.float32) for k in z.files]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = real[rng.integers(len(real))]
        reps = (1, -(-h // a.shape[1]), -(-w // a.shape[2]))
        t = np.tile(a, reps)
        t = np.roll(t, (int(rng.integers(a.shape[1])), int(rng.integers(a.shape[2]))), axis=(1, 2))[:, :h, :w]
        if rng.random() < 0.5:
            t = t[:, :, ::-1]
        scale = np.exp(0.2 * rng.standard_normal((t.shape[0], 1, 1))).astype(np.float32)
        out.append(np.ascontiguousarray(t * scale, dtype=np.float16))
    return out


def l2n(v):
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-6)


def peer_regions(a, params):
    """numpy FS map, the numpy reference EGM, numpy regional max pooling."""
    a = a.astype(np.float32)
    c, h, w = a.shape
    q = (a.reshape(c, -1) != 0).mean(axis=1)
    b = np.log((q + 1e-6).sum() / (q + 1e-6)).astype(np.float32)
    f = np.tensordot(b, a, axes=1)
    fs = np.sqrt(f / np.linalg.norm(f)) if f.any() else f
    r = ref.egm_map(fs, **params)
    boxes = r["boxes"] if len(r["boxes"]) else np.array([[0, 0, h - 1, w - 1.0]])
    desc = [l2n(a[:, int(np.ceil(y0)):int(np.floor(y1)) + 1, int(np.ceil(x0)):int(np.floor(x1)) + 1].max(axis=(1, 2)))
            for y0, x0, y1, x1 in boxes]
    return fs, boxes, np.array(desc)


def peer_graph(x, image, k, gamma=3.0):
    from sklearn.neighbors import NearestNeighbors

    widest = int(np.bincount(image).max())
    kk = min(k + widest, len(x))
    dist, ids = NearestNeighbors(n_neighbors=kk, algorithm="brute", metric="cosine").fit(x).kneighbors(x)
    s = 1.0 - dist
    ok = (image[ids] != image[:, None])
    rank = np.cumsum(ok, axis=1)
    ok &= rank <= k
    rows = np.repeat(np.arange(len(x)), kk)[ok.ravel()]
    A = sp.csr_array((np.maximum(s[ok], 0) ** gamma, (rows, ids[ok])), shape=(len(x), len(x)))
    listed = A.copy()
    listed.data[:] = 1
    A = A.minimum(A.T).multiply(listed.multiply(listed.T))
    d = np.asarray(A.sum(axis=1)).ravel()
    inv = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0)
    return sp.diags_array(inv) @ A @ sp.diags_array(inv)


def peer_centralities(W, image, alpha=0.99, maxiter=20, images=None):
    """g, f (NaN outside the first ``images`` images' regions) and the seconds g took."""
    n = W.shape[0]
    L = sp.eye_array(n) - alpha * W
    g, t_g = timed(lambda: spla.cg(L, np.full(n, 1 - alpha), rtol=1e-6, maxiter=maxiter)[0])
    f = np.full(n, np.nan)
    for m in range(image.max() + 1 if images is None else images):
        y = (image == m) * (1 - alpha)
        sol, _ = spla.cg(L, y, rtol=1e-6, maxiter=maxiter)
        f[image == m] = sol[image == m]
    return g, f, t_g


def peer_os_map(a, fs, desc, boxes, c):
    a = a.astype(np.float32)
    _, h, w = a.shape
    flat = a.reshape(a.shape[0], -1)
    norm = np.linalg.norm(flat, axis=0)
    sims = np.maximum(desc.astype(np.float32) @ flat, 0) / np.where(norm > 0, norm, np.inf)
    yy, xx = np.mgrid[0:h, 0:w]
    total = np.zeros(h * w)
    for s, (y0, x0, y1, x1), ci in zip(sims, boxes, c):
        inside = ((yy >= y0) & (yy <= y1) & (xx >= x0) & (xx <= x1)).ravel()
        total += np.where(inside, s * ci, 0)
    return fs * total.reshape(h, w)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--peer-egm", type=int, default=3, help="images the numpy EGM peer runs on")
    parser.add_argument("--peer-sample", type=int, default=None,
                        help="images the other per-image peer loops run on (default: all)")
    args = parser.parse_args()
    sample = args.n if args.peer_sample is None else min(args.peer_sample, args.n)
    scale = args.n / sample
    warnings.simplefilter("ignore", deepret.ConvergenceWarning)
    acts = synthetic(args.n)
    print(f"{args.n} maps 1280x16x24 (float16 storage), k = {args.k}, CPU {deepret.simd_path()}, "
          f"{os.cpu_count()} cores", flush=True)
    deepret.RegionSet.from_activations(acts[:4])  # warm up
    rows = []

    rs, t = timed(deepret.RegionSet.from_activations, acts)
    sub = acts[:args.peer_egm]
    peer, tp = timed(lambda: [peer_regions(a, FS) for a in sub])
    rows.append(("regions (FS, EGM, pooling)", t, tp * args.n / len(sub), True))
    print(f"  {len(rs)} regions, {len(rs) / rs.n_images:.1f} per image", flush=True)

    x = rs.float32_descriptors()
    W, t = timed(deepret.region_graph, rs, k=args.k)
    Wp, tp = timed(peer_graph, x, rs.image, args.k)
    diff = abs(W - Wp.astype(np.float32)).max()
    rows.append(("region graph", t, tp, False))
    print(f"  graph nnz {W.nnz} (peer {Wp.nnz}), largest difference {diff:.2e}", flush=True)

    os_ = deepret.ObjectSaliency(k=args.k)
    os_.region_set_, os_.W_ = rs, W  # the graph step is timed above

    def centralities():
        os_.global_ = deepret.katz(W, 0.99)
        os_.local_ = np.empty(len(rs))
        for lo, hi, f in os_._solve(lambda lo, hi: os_._indicator(lo, hi)):
            r = slice(rs.offsets[lo], rs.offsets[hi])
            os_.local_[r] = f[np.arange(r.start, r.stop), rs.image[r] - lo]

    _, t = timed(centralities)
    (gp, fp, tg), tp = timed(peer_centralities, Wp, rs.image, images=sample)
    tp = tg + (tp - tg) * scale  # g is one solve at any sample size; the local solves scale
    got = ~np.isnan(fp)
    print(f"  g relative difference {np.abs(os_.global_ - gp).max() / gp.max():.1e}, "
          f"f {np.abs(os_.local_[got] - fp[got]).max() / fp[got].max():.1e} ({sample} images)", flush=True)
    rows.append(("centralities (g and every image's f)", t, tp, sample < args.n))

    ids = np.arange(args.n)
    maps, t = timed(lambda: np.stack(os_.saliency(acts, images=ids)))
    c = os_.local_ * os_.global_

    def peer_maps():
        out = []
        for m, a in enumerate(acts[:sample]):
            r = rs.regions_of(m)
            fs = deepret.feature_saliency(a)  # the FS map is the same either way; not the step timed
            out.append(peer_os_map(a, fs, rs.descriptors[r], rs.boxes[r], c[r]))
        return np.stack(out)

    pmaps, tp_maps = timed(peer_maps)
    print(f"  OS maps relative difference {np.abs(maps[:sample] - pmaps).max() / pmaps.max():.1e} "
          f"({sample} images); OS maps alone: deepret {t:.2f} s, peer {tp_maps * scale:.2f} s"
          f"{' (extrapolated)' if sample < args.n else ''}", flush=True)

    # describe = OS maps + OS.EGM (EGM on each OS map, regional max pooling, the sum): the
    # library's one call; the peer's OS maps above plus its EGM on --peer-egm maps.
    _, t_describe = timed(os_.describe, acts, images=ids)
    _, tp_egm = timed(lambda: [ref.egm_map(maps[m].astype(np.float64), **OS) for m in range(args.peer_egm)])
    rows.append(("OS maps and OS.EGM descriptors (describe)", t_describe,
                 tp_maps * scale + tp_egm * args.n / args.peer_egm, True))

    # Regional diffusion against the global route (OS.EGM descriptors + DiffusionIndex), 50 queries.
    queries = synthetic(50, seed=1)
    qrs = deepret.RegionSet.from_activations(queries)
    index, t_build = timed(deepret.RegionalDiffusionIndex, rs, k=args.k)
    _, t_search = timed(index.search, qrs, 10)
    db = os_.describe(acts, images=ids)
    glob, t_gbuild = timed(deepret.DiffusionIndex, db, k=min(50, args.n - 1))
    qd = os_.describe(queries)
    _, t_gsearch = timed(glob.search, qd, 10)
    gbytes = db.nbytes + glob.W.data.nbytes + glob.W.indices.nbytes + glob.W.indptr.nbytes
    print(f"\n| route | index memory (MB) | build (s) | per query (ms) |\n|---|---:|---:|---:|")
    print(f"| regional diffusion ({len(rs)} regions, k = {args.k}) | {index.nbytes / 2**20:.1f} | {t_build:.2f} | "
          f"{1e3 * t_search / len(queries):.1f} |")
    print(f"| OS.EGM + DiffusionIndex ({args.n} images, k = {min(50, args.n - 1)}) | {gbytes / 2**20:.1f} | "
          f"{t_gbuild:.2f} | {1e3 * t_gsearch / len(queries):.1f} (+ describing the query) |")

    print(f"\n| step | deepret (s) | numpy/scipy/sklearn (s) | ratio |\n|---|---:|---:|---:|")
    for name, ours, theirs, extrapolated in rows:
        mark = " (extrapolated)" if extrapolated else ""
        print(f"| {name} | {ours:.2f} | {theirs:.2f}{mark} | {theirs / ours:.0f}x |")
    ours, theirs = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"| total | {ours:.2f} | {theirs:.2f} | {theirs / ours:.0f}x |")


if __name__ == "__main__":
    main()
