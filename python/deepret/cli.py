"""The ``deepret`` command line.

``deepret demo`` is the README's main job: until the retrieval pipeline lands it
exercises what exists, 1-D convolution, checking it against numpy and timing
both on the same data.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _median_seconds(function, repeats: int) -> float:
    function()  # warm-up: thread pool, page faults of the first result
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def demo(args) -> int:
    import deepret

    rng = np.random.default_rng(0)
    n = args.n
    print(f"deepret {deepret.__version__}: CPU path {deepret.simd_path()}, "
          f"CUDA engine {'built' if deepret.cuda_built() else 'not built'}, "
          f"GPU {'available' if deepret.has_cuda() else 'not available'}")
    print(f"convolve, n = {n:,}, median of {args.repeats} runs, same data for both\n")
    print(f"{'dtype':>8} {'m':>6} {'max rel err':>12} {'numpy ms':>10} {'deepret ms':>11} {'speed-up':>9}")
    for dtype in (np.float32, np.float64):
        signal = rng.standard_normal(n).astype(dtype)
        for m in (3, 31, 301):
            taps = rng.standard_normal(m).astype(dtype)
            ours = deepret.convolve(signal, taps)
            reference = np.convolve(signal, taps)
            if ours.dtype != reference.dtype or ours.shape != reference.shape:
                print(f"mismatch: {ours.dtype}{ours.shape} vs numpy {reference.dtype}{reference.shape}")
                return 1
            scale = np.convolve(np.abs(signal), np.abs(taps)).max()
            error = float(np.abs(ours - reference).max() / scale)
            t_numpy = _median_seconds(lambda: np.convolve(signal, taps), args.repeats)
            t_ours = _median_seconds(lambda: deepret.convolve(signal, taps), args.repeats)
            print(f"{np.dtype(dtype).name:>8} {m:>6} {error:>12.1e} {t_numpy * 1e3:>10.2f} "
                  f"{t_ours * 1e3:>11.2f} {t_numpy / t_ours:>8.1f}x")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="deepret", description="deepret command line")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="run the demo: deepret vs numpy on the same data")
    demo_parser.add_argument("--n", type=int, default=1_000_000, help="signal length (default 10^6)")
    demo_parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (default 5)")
    demo_parser.set_defaults(run=demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
