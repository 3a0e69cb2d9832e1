"""graph_eigs against scipy.sparse.linalg.eigsh on one synthetic kNN graph
(run by hand, not in CI):

    python bench/scale_eigs.py --n 20000 --r 100 [--no-eigsh | --only-eigsh]
        [--tol 1e-6] [--eigsh-cache FILE.npz] [--degree 12] [--block B]

The graph: n points drawn around 100 Gaussian centres in 64-D, L2-normalized,
mutual k = 50 graph, gamma 3 (deepret.knn_graph). Reports both times, the
largest eigenvalue difference, the largest residual |W u - lambda u| of each
solver's pairs and the peak resident memory of the process.

Both solvers stop at the same tolerance (--tol): graph_eigs once every pair
has |W u - lambda u| <= tol, eigsh (ARPACK) once every Ritz estimate is
<= tol |lambda| (lambda <= 1 here, so eigsh's test is the stricter one).
Session 4's n = 20,000 row in bench/RESULTS.md gave eigsh tol = 1e-10.

eigsh at n = 10^5, r = 1000 runs for the better part of an hour: with
--eigsh-cache its eigenvalues, time and residual are saved to FILE (with the
date and the parameters) and read back by later runs with the same n, r, d,
k and tol, which then say that the eigsh row is from that earlier run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import time

import numpy as np
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

import deepret


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--r", type=int, default=100)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--degree", type=int, default=12, help="graph_eigs' Chebyshev degree")
    ap.add_argument("--block", type=int, default=None, help="graph_eigs' block (default r + max(16, r // 5))")
    ap.add_argument("--no-eigsh", action="store_true")
    ap.add_argument("--only-eigsh", action="store_true")
    ap.add_argument("--eigsh-cache", default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((100, args.d))
    x = centres[rng.integers(0, 100, args.n)] + 1.2 * rng.standard_normal((args.n, args.d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    t = time.perf_counter()
    W = deepret.knn_graph(x, k=args.k)
    print(f"graph: n={args.n} nnz={W.nnz} components={csgraph.connected_components(W)[0]} "
          f"({time.perf_counter() - t:.1f} s)", flush=True)
    W64 = W.astype(np.float64)
    key = dict(n=args.n, r=args.r, d=args.d, k=args.k, tol=args.tol)
    lam = None
    if not args.only_eigsh:
        t = time.perf_counter()
        lam, U, info = deepret.graph_eigs(W, args.r, tol=args.tol, degree=args.degree, block=args.block,
                                          return_info=True, progress=True)
        ours = time.perf_counter() - t
        res = np.linalg.norm(W64 @ U - U * lam, axis=0).max()
        del U
        print(f"graph_eigs r={args.r} degree={args.degree} block={args.block}: {ours:.1f} s, "
              f"{info.iterations} iterations, {info.products} column products, max residual {res:.1e}, "
              f"peak RSS {peak_gib():.2f} GiB", flush=True)
    if args.no_eigsh:
        return
    cached = load_cache(args.eigsh_cache, key)
    if cached is None:
        t = time.perf_counter()
        ev, EV = spla.eigsh(W64, k=args.r, which="LA", tol=args.tol)
        theirs = time.perf_counter() - t
        order = np.argsort(-ev)
        ev, EV = ev[order], EV[:, order]
        res2 = float(np.linalg.norm(W64 @ EV - EV * ev, axis=0).max())
        del EV
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        print(f"eigsh r={args.r} tol={args.tol:g}: {theirs:.1f} s, max residual {res2:.1e}, "
              f"peak RSS {peak_gib():.2f} GiB", flush=True)
        if args.eigsh_cache:
            np.savez(args.eigsh_cache, ev=ev, seconds=theirs, residual=res2, when=when, **key)
    else:
        ev, theirs, res2, when = cached
        print(f"eigsh r={args.r} tol={args.tol:g} (from the run of {when}, {args.eigsh_cache}): "
              f"{theirs:.1f} s, max residual {res2:.1e}", flush=True)
    if lam is not None:
        print(f"max |lambda - lambda_eigsh| = {np.abs(lam - ev).max():.1e}; "
              f"eigsh / graph_eigs = {theirs / ours:.2f}x", flush=True)


def peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def load_cache(path, key):
    """(eigenvalues, seconds, residual, when) of an earlier eigsh run with the
    same parameters, or None."""
    if not path or not os.path.exists(path):
        return None
    with np.load(path) as z:
        if any(float(z[name]) != float(value) for name, value in key.items()):
            return None
        return z["ev"], float(z["seconds"]), float(z["residual"]), str(z["when"])

if __name__ == "__main__":
    main()
