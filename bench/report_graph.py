"""Markdown tables of the kNN-graph benchmarks (bench_graph.py), for
bench/report.py (which appends them to RESULTS.md) or on their own:

    python bench/report_graph.py bench/results/graph.json

One table per group, deepret first, then its peers fastest first, with each
peer's time divided by deepret's (> 1: deepret is faster by that factor).
All times are medians from the JSON; every contender was checked against the
scipy.sparse construction before it was timed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

KINDS = ("graph",)  # knn_graph end to end: bench_knn.py, report_knn.py
NOISY = 1.5  # median / min above this: the rounds were disturbed (as report.py)


def is_graph(bench) -> bool:
    return bench["extra_info"].get("kind") in KINDS


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _noisy(bench) -> str:
    return " †" if bench["stats"]["median"] > NOISY * bench["stats"]["min"] else ""


def graph_section(benchmarks) -> list[str]:
    """Markdown lines for the graph benchmarks among `benchmarks` ([] if none)."""
    groups = defaultdict(list)
    for bench in benchmarks:
        if is_graph(bench):
            groups[bench["group"]].append(bench)
    if not groups:
        return []
    lines = ["## kNN graphs (bench_graph.py)", "",
             "scipy.sparse: the reference diffusion code's construction (W from the kNN lists, "
             "W.minimum(W.T) or W.maximum(W.T), power, D^-1/2 A D^-1/2), single-threaded as scipy is; "
             "faiss + scipy.sparse adds faiss IndexFlatIP on the same threads as deepret."]
    for name in sorted(groups, key=lambda g: (groups[g][0]["extra_info"]["kind"], g)):
        benches = groups[name]
        ours = next((b for b in benches if b["extra_info"].get("ours")), None)
        ordered = ([ours] if ours else []) + sorted((b for b in benches if b is not ours),
                                                    key=lambda b: b["stats"]["median"])
        lines += ["", f"### {name}", "",
                  "| contender | threads | median | min | rounds | time ÷ deepret's |",
                  "|---|---|---|---|---|---|"]
        for b in ordered:
            ratio = "(ours)" if b is ours else (
                f"{b['stats']['median'] / ours['stats']['median']:.2f}x" if ours else "–")
            lines.append(f"| {b['extra_info']['contender']} | {b['extra_info'].get('threads', '–')} | "
                         f"{_time(b['stats']['median'])}{_noisy(b)} | {_time(b['stats']['min'])} | "
                         f"{b['stats']['rounds']} | {ratio} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", help="pytest-benchmark JSON file(s)")
    parser.add_argument("-o", "--output", help="Markdown file to write (default: stdout)")
    args = parser.parse_args(argv)
    benchmarks = [b for path in args.json for b in json.loads(Path(path).read_text())["benchmarks"]]
    text = "\n".join(graph_section(benchmarks)) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
