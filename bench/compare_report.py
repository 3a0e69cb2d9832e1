"""The before/after table of bench/compare_commits.sh: for every benchmark
case that both runs timed, the ratio of medians after / before, and the cases
outside a tolerance (5 % by default, issue #12's bound).

    python bench/compare_report.py bench/results/compare --before 9916d0b --after HEAD
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def medians(path: Path) -> dict[str, float]:
    """Case name (file::test[params]) -> median seconds, from pytest-benchmark JSON."""
    with open(path) as handle:
        data = json.load(handle)
    return {bench["fullname"]: bench["stats"]["median"] for bench in data["benchmarks"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--before", default="before")
    parser.add_argument("--after", default="after")
    parser.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args()
    rows, only = [], {"before": 0, "after": 0}
    for before_json in sorted(args.folder.glob("before-*.json")):
        after_json = before_json.with_name("after-" + before_json.name[len("before-"):])
        if not after_json.exists():
            continue
        old, new = medians(before_json), medians(after_json)
        only["before"] += len(old.keys() - new.keys())
        only["after"] += len(new.keys() - old.keys())
        rows += [(name, old[name], new[name]) for name in sorted(old.keys() & new.keys())]
    if not rows:
        raise SystemExit(f"no case timed on both sides in {args.folder}")
    limit = 1 + args.tolerance
    slower = [r for r in rows if r[2] / r[1] > limit]
    faster = [r for r in rows if r[2] / r[1] < 1 / limit]
    geomean = math.exp(sum(math.log(r[2] / r[1]) for r in rows) / len(rows))
    print(f"# Benchmarks before ({args.before}) and after ({args.after})\n")
    print(f"{len(rows)} cases timed on both sides ({only['before']} only before, {only['after']} only "
          f"after); ratio = after median / before median; geometric mean {geomean:.3f}; "
          f"{len(slower)} slower by more than {args.tolerance:.0%}, {len(faster)} faster by more.\n")
    print("| case | before | after | ratio | |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, old, new in rows:
        ratio = new / old
        flag = "slower" if ratio > limit else ("faster" if ratio < 1 / limit else "")
        print(f"| `{name}` | {old * 1e3:.3f} ms | {new * 1e3:.3f} ms | {ratio:.3f} | {flag} |")


if __name__ == "__main__":
    main()
