"""Online cost of spectral ranking against batched CG diffusion, n = 10^5
(run by hand, not in CI):

    python bench/online_spectral.py [--n 100000] [--r 1000] [--queries 1000]

Both rank the same unseen queries over the same mutual k = 50 graph of a
synthetic data set (100 Gaussian centres in 64-D, L2-normalized). The CG side
is DiffusionIndex.search (20 iterations, alpha 0.99). The spectral side is
SpectralIndex.search with an embedding of the right shape (n x r float32) but
random values: the online cost does not depend on the values, and the
eigendecomposition at this size is measured separately (bench/scale_eigs.py).
The dot-product step (embedding @ z.T) is timed on its own and compared with
numpy's float32 matmul of the same shapes in the same run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import deepret
from deepret.spectral import SpectralIndex


def best(fn, repeat):
    t_best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t)
    return out, t_best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--r", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--topk", type=int, default=100)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((100, 64))
    def points(m):
        p = centres[rng.integers(0, 100, m)] + 1.2 * rng.standard_normal((m, 64))
        return (p / np.linalg.norm(p, axis=1, keepdims=True)).astype(np.float32)
    x, q = points(args.n), points(args.queries)
    t = time.perf_counter()
    cg_index = deepret.DiffusionIndex(x, k=50, alpha=0.99)
    print(f"graph n={args.n} nnz={cg_index.W.nnz}: {time.perf_counter() - t:.1f} s", flush=True)
    _, t_cg = best(lambda: cg_index.search(q, topk=args.topk), 1)
    print(f"batched CG diffusion, {args.queries} queries: {t_cg:.2f} s = {1e3 * t_cg / args.queries:.2f} ms/query",
          flush=True)
    spec = SpectralIndex.__new__(SpectralIndex)
    spec.alpha, spec.gamma, spec.query_k, spec.num_threads = 0.99, 3.0, 10, None
    spec.h, spec._h, spec.x = "diffusion", (lambda lam: (1 - 0.99) / (1 - 0.99 * lam)), x
    spec.W = cg_index.W
    lam = np.linspace(1, 0.5, args.r)
    U = rng.standard_normal((args.n, args.r)) / np.sqrt(args.n)
    spec._set_spectrum(lam, U)
    del U
    _, t_sp = best(lambda: spec.search(q, topk=args.topk), 2)
    print(f"spectral search r={args.r}, {args.queries} queries: {t_sp:.2f} s = "
          f"{1e3 * t_sp / args.queries:.2f} ms/query; CG / spectral = {t_cg / t_sp:.1f}x", flush=True)
    z = spec.query_embedding(q)
    V = spec.embedding
    flops = 2.0 * args.n * args.r * args.queries
    _, t_dot = best(lambda: V @ z.T, 3)
    a = np.ascontiguousarray(rng.standard_normal(V.shape), dtype=np.float32)
    b = np.ascontiguousarray(rng.standard_normal(z.T.shape), dtype=np.float32)
    _, t_np = best(lambda: a @ b, 3)
    print(f"dot-product step: {flops / t_dot / 1e9:.1f} GFLOP/s; numpy float32 matmul of the same shapes "
          f"(contiguous operands): {flops / t_np / 1e9:.1f} GFLOP/s; ratio {t_np / t_dot:.2f}", flush=True)


if __name__ == "__main__":
    main()
