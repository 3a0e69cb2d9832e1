"""Issue #4's scale check, run by hand (not in CI): knn_graph for n = 1,000,000,
d = 128, k = 50 on random L2-normalized float32 rows; prints the time of each
step and the peak resident memory of the process.

    python bench/scale_knn_graph.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

import deepret


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--k", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    print(f"data {x.nbytes / 2**30:.2f} GiB, peak RSS so far {peak_rss_gib():.2f} GiB", flush=True)
    start = time.perf_counter()
    graph = deepret.knn_graph(x, k=args.k, progress=True)
    seconds = time.perf_counter() - start
    print(f"knn_graph n={args.n:,} d={args.d} k={args.k}: {seconds:.1f} s, {graph.nnz:,} stored "
          f"entries, peak RSS {peak_rss_gib():.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
