"""mAP on the clutter benchmark (bench/clutter/make_dataset.py, activations.py).

Every method gives database and query descriptors; ranks are by inner
product ("none") and by diffusion on the database descriptors' kNN graph
(DiffusionIndex, k = 50, "diffusion" = query expansion). Also: the read-outs
of FS and OS maps, the oracle (max pooling inside the true object box) and
the region graph's edge statistics (do cross-image edges join the same
instance or the same background photo?). Prints markdown.

    python bench/clutter/evaluate.py [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import deepret
from deepret.objects import saliency_pool

HERE = os.path.dirname(os.path.abspath(__file__))
STRIDE = 32  # EfficientNet-Lite0's last map: one cell per 32 pixels


def l2n(x):
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-6)


def oracle(acts, records):
    """Max pooling over the cells the true object box touches (the whole map without one)."""
    out = np.empty(acts.shape[:2], np.float32)
    for i, (a, r) in enumerate(zip(acts, records)):
        if "box" not in r:
            out[i] = a.max(axis=(1, 2))
            continue
        y0, x0, y1, x1 = r["box"]
        out[i] = a[:, y0 // STRIDE:-(-y1 // STRIDE), x0 // STRIDE:-(-x1 // STRIDE)].max(axis=(1, 2))
    return l2n(out)


def edge_stats(W, rs, db, boxes_true):
    """Fractions of the cross-image edges of region graph W (upper triangle)."""
    inst = np.array([r["instance"] for r in db])
    bg = np.array([r["background"] for r in db])
    U = deepret_triu(W)
    a, b = rs.image[U.row], rs.image[U.col]
    cross = a != b
    a, b, ra, rb = a[cross], b[cross], U.row[cross], U.col[cross]
    on_obj = region_on_object(rs, boxes_true)
    n_img = len(db)
    n_bg = np.bincount(bg)
    return {
        "edges": int(cross.sum()),
        "same instance": float(np.mean((inst[a] == inst[b]) & (inst[a] >= 0))),
        "same background photo": float(np.mean(bg[a] == bg[b])),
        "both regions on the object": float(np.mean(on_obj[ra] & on_obj[rb])),
        "chance same instance": float(np.sum(np.bincount(inst[inst >= 0]) ** 2) / n_img ** 2),
        "chance same background": float(np.sum(n_bg ** 2) / n_img ** 2),
        "regions on the object": float(on_obj.mean()),
    }


def deepret_triu(W):
    import scipy.sparse as sp
    return sp.triu(sp.coo_matrix(W), k=1).tocoo()


def region_on_object(rs, boxes_true):
    """Region i overlaps its image's true object box. Region boxes are in cell-centre
    coordinates (cell c is centred at pixel 32 c + 16), hence the half-cell shift."""
    out = np.zeros(len(rs), bool)
    for i, (img, (y0, x0, y1, x1)) in enumerate(zip(rs.image, rs.boxes)):
        t = boxes_true[img]
        if t is not None:
            t0, s0, t1, s1 = np.asarray(t) / STRIDE - 0.5
            out[i] = y0 < t1 and t0 < y1 and x0 < s1 and s0 < x1
    return out


FS_SETTINGS = [(2.5, 0.4, 5.0), (2.0, 0.0, 2.0), (1.5, 0.2, 3.0), (1.0, 0.4, 5.0), (1.0, 0.0, 2.0)]
OS_SETTINGS = [(2.0, 0.0, 2.0), (1.5, 0.0, 2.0), (1.0, 0.0, 2.0), (2.0, 0.4, 5.0), (1.0, 0.2, 3.0)]


def pool2(a):
    """2x2 max pooling of (B, C, H, W) maps: a stand-in for the maps of images
    of half the size (6x8 cells for 12x16 maps)."""
    b, c, h, w = a.shape
    return a[:, :, : h // 2 * 2, : w // 2 * 2].reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def settings_sweep(db, q, mAP, ranks, nt):
    """EGM settings (sigma, threshold, power) x read-out, for FS and OS maps, at
    the benchmark's map size and at half of it. The paper's settings were chosen
    for ~30x40 VGG maps; this asks whether small maps want others. NB: these are
    the test queries, so a setting picked here is picked on the test set."""
    print("\nEGM settings on small maps (mAP without diffusion; sigma / threshold / power)\n")
    print("| maps | map | settings | sum | weighted | heaviest | regions per image |\n|---|---|---|---:|---:|---:|---:|")
    readouts = ("sum", "weighted", "heaviest")
    for x, xq in ((db, q), (pool2(db), pool2(q))):
        size = f"{x.shape[2]}x{x.shape[3]}"
        ref = {m: mAP(ranks(deepret.describe(x, m, num_threads=nt), deepret.describe(xq, m, num_threads=nt), False))
               for m in ("mac", "crow")}
        fsd, fsq = deepret.feature_saliency(x), deepret.feature_saliency(xq)
        for sg, th, pw in FS_SETTINGS:
            st = dict(sigma=sg, threshold=th, power=pw, num_threads=nt)
            cells = [mAP(ranks(saliency_pool(x, fsd, r, **st), saliency_pool(xq, fsq, r, **st), False))
                     for r in readouts]
            n = len(deepret.egm(fsd, sigma=sg, threshold=th, power=pw, num_threads=nt).boxes) / len(x)
            print(f"| {size} | FS | {sg:g} / {th:g} / {pw:g} | " + " | ".join(f"{v:.1f}" for v in cells)
                  + f" | {n:.1f} |")
        sp = mAP(ranks(saliency_pool(x, fsd, "spatial"), saliency_pool(xq, fsq, "spatial"), False))
        rs = deepret.RegionSet.from_activations(x, num_threads=nt)
        o = deepret.ObjectSaliency(num_threads=nt).fit(rs)
        ids = np.arange(len(x))
        osp = {}
        for c in ("both", "constant"):
            o.centrality = c  # OS maps once per centrality; saliency_pool is describe's read-out on them
            sd, sq = np.stack(o.saliency(x, images=ids)), np.stack(o.saliency(xq))
            osp[c] = mAP(ranks(saliency_pool(x, sd, "spatial"), saliency_pool(xq, sq, "spatial"), False))
            for sg, th, pw in OS_SETTINGS:
                st = dict(sigma=sg, threshold=th, power=pw, num_threads=nt)
                cells = [mAP(ranks(saliency_pool(x, sd, r, **st), saliency_pool(xq, sq, r, **st), False))
                         for r in readouts]
                n = len(deepret.egm(sd, **st).boxes) / len(x)
                print(f"| {size} | OS ({c}) | {sg:g} / {th:g} / {pw:g} | " + " | ".join(f"{v:.1f}" for v in cells)
                      + f" | {n:.1f} |")
        o.centrality = "both"
        print(f"| {size} | (no EGM) | MAC {ref['mac']:.1f}, CroW {ref['crow']:.1f}, FS spatial {sp:.1f}, "
              f"OS spatial (both) {osp['both']:.1f}, (constant) {osp['constant']:.1f} | | | | |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.path.join(HERE, "cache"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gt", default=os.path.join(HERE, "ground_truth.json"))
    ap.add_argument("--no-sweep", action="store_true", help="skip the EGM-settings sweep on small maps")
    args = ap.parse_args()
    gt = json.load(open(args.gt))
    npz = np.load(os.path.join(args.cache, "activations.npz"))
    db, q = npz["database"].astype(np.float32), npz["queries"].astype(np.float32)
    gnd = gt["gnd"]
    nt = args.threads
    times = {}

    def tick(name, t0):
        times[name] = time.perf_counter() - t0

    desc = {}
    t0 = time.perf_counter()
    for m in ("mac", "rmac", "crow", "fs.egm"):
        desc[m.upper() if m != "crow" else "CroW"] = (deepret.describe(db, m, num_threads=nt),
                                                      deepret.describe(q, m, num_threads=nt))
    desc["R-MAC"] = desc.pop("RMAC")
    desc["oracle (true box)"] = (oracle(db, gt["database"]), oracle(q, gt["queries"]))
    tick("global descriptors", t0)

    t0 = time.perf_counter()
    rs = deepret.RegionSet.from_activations(db, progress=True, num_threads=nt)
    rq = deepret.RegionSet.from_activations(q, num_threads=nt)
    tick("region sets", t0)
    t0 = time.perf_counter()
    osal = deepret.ObjectSaliency(progress=True, num_threads=nt).fit(rs)
    tick("region graph + centralities", t0)
    ids = np.arange(len(db))
    readouts = {}
    t0 = time.perf_counter()
    for c in ("both", "global", "local", "constant"):
        osal.centrality = c  # the graph and both centralities are fitted once; c only picks the weight
        desc[f"OS.EGM ({c})"] = (osal.describe(db, images=ids), osal.describe(q))
    osal.centrality = "both"
    for r in ("sum", "weighted", "heaviest", "spatial"):
        readouts[("OS (both)", r)] = desc["OS.EGM (both)"] if r == "sum" else (
            osal.describe(db, images=ids, readout=r), osal.describe(q, readout=r))
    fs_settings = dict(sigma=2.5, threshold=0.4, power=5.0, num_threads=nt)
    fsd, fsq = deepret.feature_saliency(db), deepret.feature_saliency(q)
    for r in ("sum", "weighted", "heaviest", "spatial"):
        readouts[("FS", r)] = (saliency_pool(db, fsd, r, **fs_settings), saliency_pool(q, fsq, r, **fs_settings))
    tick("OS maps + read-outs", t0)

    def ranks(x, xq, qe):
        if qe:
            return deepret.DiffusionIndex(x, k=50, num_threads=nt).search(xq, topk=len(x))[1].T
        return np.argsort(-(x @ xq.T), axis=0, kind="stable")

    def mAP(r):
        return 100 * deepret.evaluate.compute_map(r, gnd)[0]

    print(f"\n{len(db)} database images, {len(q)} queries, maps {db.shape[1:]}; "
          f"{len(rs)} database regions ({len(rs) / len(db):.1f} per image)\n")
    print("| method | mAP | mAP + diffusion |\n|---|---:|---:|")
    for name, (x, xq) in desc.items():
        print(f"| {name} | {mAP(ranks(x, xq, False)):.1f} | {mAP(ranks(x, xq, True)):.1f} |")
    t0 = time.perf_counter()
    for pooling in ("sum", "max"):
        index = deepret.RegionalDiffusionIndex(rs, pooling=pooling, num_threads=nt)
        print(f"| regional diffusion ({pooling} pooling, {index.nbytes / 2**20:.0f} MB) | — | "
              f"{mAP(index.search(rq, topk=len(db))[1].T):.1f} |")
    tick("regional diffusion (2 indexes)", t0)

    print("\nRead-outs (mAP, no diffusion / with diffusion)\n")
    print("| map | sum | weighted | heaviest | spatial |\n|---|---:|---:|---:|---:|")
    for m in ("FS", "OS (both)"):
        cells = [f"{mAP(ranks(*readouts[(m, r)], False)):.1f} / {mAP(ranks(*readouts[(m, r)], True)):.1f}"
                 for r in ("sum", "weighted", "heaviest", "spatial")]
        print(f"| {m} | " + " | ".join(cells) + " |")

    boxes = [r.get("box") for r in gt["database"]]
    print("\nRegion graph (k = 200, mutual, other images only), cross-image edges\n")
    for k, v in edge_stats(osal.W_, rs, gt["database"], boxes).items():
        print(f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}")
    # The region graph's k against the premise: k = 200 (the reference code's, for
    # collections of ~10^5 regions) links each region to an eighth of this set.
    # NB: choosing k from this table would be tuning on the test queries.
    print("\nRegion-graph k sweep (OS.EGM, no diffusion; read-outs sum / heaviest)\n")
    print("| k | same instance | same background | both (sum) | constant (sum) | both (heaviest) | "
          "constant (heaviest) |\n|---:|---:|---:|---:|---:|---:|---:|")
    for k in (5, 10, 20, 50, 200):
        o = deepret.ObjectSaliency(k=k, num_threads=nt).fit(rs)
        st = edge_stats(o.W_, rs, gt["database"], boxes)
        cells = []
        for r in ("sum", "heaviest"):
            for c in ("both", "constant"):
                o.centrality = c
                cells.append(mAP(ranks(o.describe(db, images=ids, readout=r), o.describe(q, readout=r), False)))
        print(f"| {k} | {st['same instance']:.3f} | {st['same background photo']:.3f} | "
              + " | ".join(f"{v:.1f}" for v in cells) + " |")
    if not args.no_sweep:
        t0 = time.perf_counter()
        settings_sweep(db, q, mAP, ranks, nt)
        tick("settings sweep", t0)
    print("\nTimes (s): " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))


if __name__ == "__main__":
    main()
