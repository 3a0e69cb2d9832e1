"""Issue #17's scale check, run by hand (not in CI): deepret.dask.knn_graph of
n random L2-normalized float32 rows (d = 128, k = 50) on a LocalCluster with
a memory limit per worker. Prints the time of each stage, the per-task rates
(from Dask's task stream), the peak resident memory of every worker (sampled
each second) and whether any worker died; with --single also the
single-process deepret.knn_graph of the same rows for the overhead, and with
--single-only that alone (no cluster). Writes the numbers as JSON (--json).

    python bench/scale_dask_graph.py --n 2000000 --chunk 100000 --workers 2 \\
        --memory-limit 5GiB --json bench/results/dask_scale.json

The rows are generated on the workers (one seeded generator per block), so
the client never holds them.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np


def _rows(block_id, rows, d, seed):
    """Block block_id of the data: its own generator, L2-normalized rows."""
    rng = np.random.default_rng([seed, block_id])
    x = rng.standard_normal((rows, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def dataset(n, d, chunk, seed):
    import dask
    import dask.array as da

    blocks, start, b = [], 0, 0
    while start < n:
        rows = min(chunk, n - start)
        blocks.append(da.from_delayed(dask.delayed(_rows)(b, rows, d, seed), shape=(rows, d),
                                      dtype=np.float32))
        start += rows
        b += 1
    return da.concatenate(blocks)


def _rss():
    import psutil

    return psutil.Process().memory_info().rss


class MemorySampler(threading.Thread):
    """Peak RSS of every worker process, sampled each `every` seconds."""

    def __init__(self, client, every=1.0):
        super().__init__(daemon=True)
        self.client, self.every, self.peak, self.stop = client, every, {}, threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                for worker, rss in self.client.run(_rss).items():
                    self.peak[worker] = max(self.peak.get(worker, 0), rss)
            except Exception:  # a worker restarting: the death check reports it
                pass
            self.stop.wait(self.every)


def task_rates(stream, chunk, d):
    """Median seconds per task of each kind, and the pair tasks' rate."""
    kinds = {}
    for task in stream:
        name = task["key"] if isinstance(task["key"], str) else str(task["key"][0])
        kind = name.split("-", 1)[0]  # "<function>-<uuid>"
        seconds = sum(s["stop"] - s["start"] for s in task["startstops"] if s["action"] == "compute")
        kinds.setdefault(kind, []).append(seconds)
    summary = {kind: {"tasks": len(v), "median_s": float(np.median(v)), "total_s": float(np.sum(v))}
               for kind, v in kinds.items()}
    if "_pair" in summary:
        pair = summary["_pair"]["median_s"]
        summary["_pair"]["scores_per_s"] = chunk * chunk / pair
        summary["_pair"]["gflops"] = 2.0 * chunk * chunk * d / pair / 1e9
    return summary


def task_rate(rows, d, k, num_threads, seed):
    """One task of each kNN kind on blocks of `rows` rows, in this process (no
    cluster): seconds, scores per second, and the peak RSS they reach."""
    import importlib
    import resource

    tasks = importlib.import_module("deepret.dask.knn")
    a, b = _rows(0, rows, d, seed), _rows(1, rows, d, seed)
    out = {"rows": rows, "rss_before_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    start = time.perf_counter()
    diagonal = tasks._diagonal(a, k, "ip", True, 0, num_threads)
    out["diagonal_s"] = time.perf_counter() - start
    start = time.perf_counter()
    pair = tasks._pair(a, b, k, "ip", 0, rows, num_threads)
    out["pair_s"] = time.perf_counter() - start
    out["pair_scores_per_s"] = rows * rows / out["pair_s"]
    out["pair_gflops"] = 2.0 * rows * rows * d / out["pair_s"] / 1e9
    start = time.perf_counter()
    tasks._merge(k, num_threads, diagonal, pair[0])
    out["merge_s"] = time.perf_counter() - start
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--chunk", type=int, default=100_000, help="rows per block")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--num-threads", type=int, default=1, help="engine threads per task")
    parser.add_argument("--memory-limit", default="5GiB", help="per worker (Dask's nanny enforces it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--single", action="store_true",
                        help="also time single-process deepret.knn_graph on the same rows")
    parser.add_argument("--single-only", action="store_true",
                        help="only time single-process deepret.knn_graph on the same n rows (the "
                             "same per-block generators), num_threads = workers x num-threads")
    parser.add_argument("--json", default=None)
    parser.add_argument("--task-rate", type=int, nargs="*", metavar="ROWS",
                        help="only time one diagonal, pair and merge task on blocks of ROWS rows "
                             "in this process (no cluster)")
    args = parser.parse_args()
    if args.task_rate:
        import deepret

        results = [task_rate(rows, args.d, args.k, args.num_threads, args.seed)
                   for rows in args.task_rate]
        for r in results:
            r["simd_path"] = deepret.simd_path()
            print(json.dumps(r), flush=True)
        if args.json:
            with open(args.json, "w") as out:
                json.dump(results, out, indent=1)
        return

    if args.single_only:
        import resource

        import deepret

        local = np.concatenate([_rows(b, min(args.chunk, args.n - start), args.d, args.seed)
                                for b, start in enumerate(range(0, args.n, args.chunk))])
        threads = args.workers * args.num_threads
        start = time.perf_counter()
        W0 = deepret.knn_graph(local, k=args.k, num_threads=threads)
        result = {"n": args.n, "d": args.d, "k": args.k, "num_threads": threads,
                  "simd_path": deepret.simd_path(), "single_seconds": time.perf_counter() - start,
                  "nnz": int(W0.nnz),
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
        print(json.dumps(result, indent=1), flush=True)
        if args.json:
            with open(args.json, "w") as out:
                json.dump(result, out, indent=1)
        return

    from distributed import Client, LocalCluster, get_task_stream

    import deepret
    import deepret.dask

    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           memory_limit=args.memory_limit, dashboard_address=":0")
    client = Client(cluster)
    workers_before = set(client.scheduler_info()["workers"])
    x = dataset(args.n, args.d, args.chunk, args.seed)
    sampler = MemorySampler(client)
    sampler.start()
    start = time.perf_counter()
    with get_task_stream(client) as stream:
        W = deepret.dask.knn_graph(x, k=args.k, num_threads=args.num_threads)
    seconds = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    workers_after = set(client.scheduler_info()["workers"])
    result = {
        "n": args.n, "d": args.d, "k": args.k, "chunk": args.chunk, "workers": args.workers,
        "num_threads": args.num_threads, "memory_limit": args.memory_limit,
        "simd_path": deepret.simd_path(), "seconds": seconds, "nnz": int(W.nnz),
        "peak_rss_gib": {w: r / 2**30 for w, r in sampler.peak.items()},
        "workers_died": sorted(workers_before - workers_after),
        "tasks": task_rates(stream.data, args.chunk, args.d),
    }
    print(json.dumps(result, indent=1), flush=True)
    if args.single:
        local = x.compute()
        client.close()
        cluster.close()
        start = time.perf_counter()
        W0 = deepret.knn_graph(local, k=args.k, num_threads=args.workers * args.num_threads)
        result["single_seconds"] = time.perf_counter() - start
        result["single_equal"] = bool((W0.indptr == W.indptr).all() and (W0.indices == W.indices).all()
                                      and np.allclose(W0.data, W.data, rtol=1e-6))
        print(f"single process: {result['single_seconds']:.1f} s, equal: {result['single_equal']}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)


if __name__ == "__main__":
    main()
