"""The before/after table of bench/compare_commits.sh: for every benchmark
case that both sides timed, the ratio of medians after / before, and the
cases outside a tolerance (5 % by default, issue #12's bound).

    python bench/compare_report.py bench/results/compare --before 9916d0b --after HEAD

A side's runs are every `before-*.json` / `after-*.json` in the folder: the
main pass (one file per bench file) and any rechecks (COMPARE_CASES). A case
timed in several runs counts with the median of its runs' medians.

The peers' cases (faiss, numpy, scipy, torch, ...: the same code on both
sides) measure the machine's noise over the same hour: their ratios should
all be 1, so their spread is what a ratio of ours can be off by chance. The
report gives that spread and marks each of our cases as outside the
tolerance, and whether it is also outside the peers' range.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from collections import defaultdict
from pathlib import Path


def runs(folder: Path, side: str) -> tuple[dict[str, list[float]], set[str]]:
    """Case name (file::test[params]) -> the medians (s) of every run of one
    side, and the names of our cases (extra_info "ours", or deepret in the name)."""
    times: dict[str, list[float]] = defaultdict(list)
    ours: set[str] = set()
    for path in sorted(folder.glob(f"{side}-*.json")):
        with open(path) as handle:
            data = json.load(handle)
        for bench in data["benchmarks"]:
            # The file's path from the checkout's root: pytest-benchmark has
            # also written it from an outer directory (src-before/bench/...),
            # which would keep the two sides' names apart.
            name = re.sub(r"^.*?(?=bench/bench_)", "", bench["fullname"])
            times[name].append(bench["stats"]["median"])
            if bench.get("extra_info", {}).get("ours") or "deepret" in bench["name"]:
                ours.add(name)
    return times, ours


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    lo, hi = math.floor(at), math.ceil(at)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (at - lo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--before", default="before")
    parser.add_argument("--after", default="after")
    parser.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args()
    old, ours_old = runs(args.folder, "before")
    new, ours_new = runs(args.folder, "after")
    names = sorted(old.keys() & new.keys())
    if not names:
        raise SystemExit(f"no case timed on both sides in {args.folder}")
    ours = ours_old | ours_new
    rows = [(name, statistics.median(old[name]), statistics.median(new[name]),
             min(len(old[name]), len(new[name])), name in ours) for name in names]
    peer_ratios = [after / before for _, before, after, _, mine in rows if not mine]
    low, high = ((percentile(peer_ratios, 0.1), percentile(peer_ratios, 0.9))
                 if peer_ratios else (1.0, 1.0))
    limit = 1 + args.tolerance
    mine = [row for row in rows if row[4]]
    slower = [row for row in mine if row[2] / row[1] > limit]
    faster = [row for row in mine if row[2] / row[1] < 1 / limit]
    beyond = [row for row in slower if row[2] / row[1] > high]

    def geomean(selected):
        return math.exp(sum(math.log(r[2] / r[1]) for r in selected) / len(selected)) if selected else 1.0

    print(f"# Benchmarks before ({args.before}) and after ({args.after})\n")
    print(f"{len(rows)} cases timed on both sides ({len(old.keys() - new.keys())} only before, "
          f"{len(new.keys() - old.keys())} only after); ratio = after median / before median "
          f"(the median over a case's runs where it ran more than once).\n")
    print(f"- Ours: {len(mine)} cases, geometric mean {geomean(mine):.3f}; {len(slower)} slower by "
          f"more than {args.tolerance:.0%} ({len(beyond)} of them also above the peers' 90th "
          f"percentile), {len(faster)} faster by more.")
    if peer_ratios:
        print(f"- Peers (the same code on both sides: the machine's noise): {len(peer_ratios)} cases, "
              f"geometric mean {geomean([r for r in rows if not r[4]]):.3f}, 10th-90th percentile "
              f"{low:.3f}-{high:.3f}, range {min(peer_ratios):.3f}-{max(peer_ratios):.3f}.")
    print("\n| case | ours | runs | before | after | ratio | |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for name, before, after, count, is_ours in rows:
        ratio = after / before
        flag = ""
        if is_ours and ratio > limit:
            flag = "slower" + (", beyond the peers' noise" if ratio > high else "")
        elif is_ours and ratio < 1 / limit:
            flag = "faster"
        print(f"| `{name}` | {'yes' if is_ours else ''} | {count} | {before * 1e3:.3f} ms | "
              f"{after * 1e3:.3f} ms | {ratio:.3f} | {flag} |")


if __name__ == "__main__":
    main()
