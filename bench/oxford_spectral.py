"""Oxford5k (bundled descriptors) mAP of cosine, whitened cosine, query
expansion, CG diffusion (full and truncated, both truncation modes) and the
spectral index at several ranks, with the time of each stage.

    python bench/oxford_spectral.py [--ranks 100 400 1000 2000] [--json out.json]

Prints a markdown table (the one in bench/RESULTS.md). Queries are the 55
full query images (their database descriptors), as in the README.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import deepret
from deepret import datasets, evaluate


def timed(fn, repeat=1):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, nargs="*", default=[100, 400, 1000, 2000])
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--alpha", type=float, default=0.99)
    ap.add_argument("--truncate", type=int, default=1000)
    ap.add_argument("--json")
    args = ap.parse_args()
    data = datasets.load_oxford5k()
    x = data.descriptors / np.linalg.norm(data.descriptors, axis=1, keepdims=True)
    q = x[data.query_indices]
    n, nq = len(x), len(q)
    rows = []

    def add(name, ids, offline=None, online=None, extra=""):
        m = evaluate.compute_map(np.asarray(ids).T, data.gnd).map
        rows.append(dict(method=name, map=100 * m, offline_s=offline,
                         online_ms_per_query=None if online is None else 1e3 * online / nq, note=extra))
        print(f"{name:55s} mAP {100 * m:5.1f}  offline {offline if offline is None else round(offline, 2)} s  "
              f"online {'-' if online is None else round(1e3 * online / nq, 2)} ms/query {extra}", flush=True)

    (_, ids), t = timed(lambda: deepret.knn(x, q, k=n), 3)
    add("cosine (deepret.knn)", ids, online=t)
    white, tw = timed(lambda: deepret.PCAWhitening().fit(x))
    xw = white.transform(x)
    (_, ids), t = timed(lambda: deepret.knn(xw, white.transform(q), k=n), 3)
    add("whitened cosine (PCAWhitening on the database, 128-D)", ids, offline=tw, online=t)
    for nqe in (2, 5, 10):
        (_, ids), t = timed(lambda: deepret.knn(x, deepret.average_qe(q, x, n=nqe), k=n), 3)
        add(f"average QE, n = {nqe}", ids, online=t)
        (_, ids), t = timed(lambda: deepret.knn(x, deepret.alpha_qe(q, x, n=nqe, alpha=3.0), k=n), 3)
        add(f"alpha QE, n = {nqe}, alpha = 3", ids, online=t)
    (_, ids), t = timed(lambda: deepret.knn(xw, deepret.alpha_qe(white.transform(q), xw, n=5), k=n), 3)
    add("whitened + alpha QE, n = 5", ids, online=t)

    k, alpha = args.k, args.alpha
    index, tg = timed(lambda: deepret.DiffusionIndex(x, k=k, alpha=alpha))
    (_, ids), t = timed(lambda: index.search(q, topk=n), 3)
    add(f"CG diffusion k={k} alpha={alpha} (20 iterations)", ids, offline=tg, online=t)
    ref, tg = timed(lambda: deepret.DiffusionIndex(x, k=k, alpha=alpha, k_includes_self=True))
    (_, ids), t = timed(lambda: ref.search(q, topk=n), 3)
    add(f"CG diffusion, reference k={k} (k_includes_self)", ids, offline=tg, online=t)
    T = args.truncate
    for mode in ("renormalize", "restrict"):
        tr, tg = timed(lambda: deepret.DiffusionIndex(x, k=k, alpha=alpha, truncate=T, truncation=mode))
        (_, ids), t = timed(lambda: tr.search(q, topk=T), 3)
        add(f"CG diffusion truncate={T} truncation={mode}", ids, offline=tg, online=t)

    W = index.W
    for r in args.ranks:
        sp_index, to = timed(lambda: deepret.SpectralIndex(None, rank=r, alpha=alpha, graph=W))
        sp_index.x = x  # the same graph as the CG rows; queries' y from the descriptors
        (_, ids), t = timed(lambda: sp_index.search(q, topk=n), 3)
        info = sp_index.eigs_info
        add(f"spectral index r={r} (same graph, h_alpha)", ids, offline=to, online=t,
            extra=f"[{info.iterations} iterations, max residual {info.residuals.max():.1e}]")
        (_, ids), t = timed(lambda: sp_index.search(q, topk=n, correction=True), 3)
        add(f"spectral index r={r} + sparse correction", ids, offline=to, online=t)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
