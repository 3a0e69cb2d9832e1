"""Render the EGM cases of bench_regions.py (pytest-benchmark JSON) as a
markdown section, and put it into bench/RESULTS.md between markers (kept
apart from report.py's convolve report so that each can be regenerated alone).

    python -m pytest bench/bench_regions.py --benchmark-json bench/results/regions.json
    python bench/report_regions.py bench/results/regions.json --update bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

START, END = "<!-- regions:start -->", "<!-- regions:end -->"
# (case, ours, peer) -> minimum speed-up of ours over peer, per map.
TARGETS = {
    ("64x64", "deepret", "numpy reference"): 50.0,
    ("64x64", "deepret", "sklearn GaussianMixture+BIC"): 100.0,
    ("batch 1000x16x16", "deepret batch", "deepret one map per call"): 1.5,
}
# (case, ours, peer): ratios shown for information, without a target.
INFO = {("batch 1000x16x16", "deepret batch 1 thread", "deepret one map per call")}


def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def load(paths):
    cases = defaultdict(dict)  # case -> contender -> bench
    machine = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        machine = data.get("machine_info", {}).get("deepret", machine)
        for bench in data["benchmarks"]:
            e = bench["extra_info"]
            if e.get("kind") == "egm":
                cases[e["case"]][e["contender"]] = bench
    return cases, machine


def per_map(bench) -> float:
    return bench["stats"]["median"] / bench["extra_info"].get("maps", 1)


def render(cases, machine, note="") -> str:
    lines = [START, "## EGM regions (bench_regions.py)", ""]
    if machine:
        lines.append(f"CPU: {machine.get('cpu_model', '?')}, {machine.get('usable_cpus', '?')} usable cores, "
                     f"SIMD path {machine.get('simd_path', '?')}. Medians; per-map times divide by the "
                     "maps of a call." + (f" {note}" if note else ""))
        lines.append("")
    lines += ["| case | target | ours per map | peer per map | speed-up | verdict |",
              "|---|---|---|---|---|---|"]
    for (case, ours, peer), target in TARGETS.items():
        group = cases.get(case, {})
        if ours not in group or peer not in group:
            lines.append(f"| {case}: {ours} vs {peer} | ≥ {target:g}x | – | – | – | MISSING |")
            continue
        speedup = per_map(group[peer]) / per_map(group[ours])
        verdict = "PASS" if speedup >= target else "FAIL"
        lines.append(f"| {case}: {ours} vs {peer} | ≥ {target:g}x | {fmt_time(per_map(group[ours]))} | "
                     f"{fmt_time(per_map(group[peer]))} | {speedup:.1f}x | {verdict} |")
    for case, ours, peer in sorted(INFO):
        group = cases.get(case, {})
        if ours in group and peer in group:
            speedup = per_map(group[peer]) / per_map(group[ours])
            lines.append(f"| {case}: {ours} vs {peer} | (info) | {fmt_time(per_map(group[ours]))} | "
                         f"{fmt_time(per_map(group[peer]))} | {speedup:.1f}x | – |")
    lines += ["", "| case | contender | median per call | per map | rounds |", "|---|---|---|---|---|"]
    for case in sorted(cases):
        for contender, bench in sorted(cases[case].items(), key=lambda kv: kv[1]["stats"]["median"]):
            e = bench["extra_info"]
            device = f" ({e['gpu_name']})" if e.get("device") == "gpu" else ""
            lines.append(f"| {case} | {contender}{device} | {fmt_time(bench['stats']['median'])} | "
                         f"{fmt_time(per_map(bench))} | {e.get('rounds', 1)} |")
    lines += ["", END]
    return "\n".join(lines) + "\n"


def update(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+")
    parser.add_argument("--update", type=Path, help="markdown file whose regions section to replace")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    cases, machine = load(args.json)
    section = render(cases, machine, args.note)
    if args.update:
        update(args.update, section)
    else:
        sys.stdout.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
