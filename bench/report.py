"""Render pytest-benchmark JSON from bench_convolve.py as bench/RESULTS.md.

    python bench/report.py bench/results/convolve.json -o bench/RESULTS.md
    python bench/report.py cpu.json gpu.json --device "NVIDIA H100" -o bench/RESULTS.md

Each JSON file gives a CPU section and, if it has GPU cases, a GPU section
naming the card. Every number comes from the JSON (medians; rates are
extra_info["flops"] / median); nothing is hard-coded but the acceptance
targets below and the peak formula's assumptions, which are printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report_conv2d  # noqa: E402  (bench/ is not a package)
import report_diffusion  # noqa: E402
import report_knn  # noqa: E402
from report_graph import graph_section, is_graph  # noqa: E402

# Other kernel families: each adds its acceptance table (a list of Markdown
# lines, empty when the run has none of its cases) after convolve's.
FAMILY_ACCEPTANCE = [report_knn.acceptance_lines, report_diffusion.acceptance_lines]

OURS = "deepret"
OURS_ONE_THREAD = "deepret 1 thread"  # informational: speed-up without threading
BASELINE = "numpy.convolve"  # the acceptance targets are speed-ups over it
TARGET_N = 1_000_000
# m -> minimum speed-up of deepret over numpy.convolve (n = 10^6, both dtypes).
TARGETS = {3: 1.0, 31: 3.0, 301: 3.0, 3001: 3.0}
FMA_UNITS = 2  # per core; an assumption of the theoretical peak, printed with it


# ------------------------------------------------------------------ loading
def load_runs(paths):
    """[(path, json dict)] in the order given."""
    return [(path, json.loads(Path(path).read_text())) for path in paths]


def split_by_device(benchmarks):
    """{"cpu": [...], "gpu": [...]} by extra_info["device"]; the graph
    benchmarks are left to report_graph.py."""
    parts = defaultdict(list)
    for bench in benchmarks:
        if not is_graph(bench):
            parts[bench["extra_info"].get("device", "cpu")].append(bench)
    return parts


def median(bench) -> float:
    return bench["stats"]["median"]


def gflops(bench) -> float | None:
    """GFLOP/s from extra_info["flops"]; None for cases that count no flops
    (EGM, memory copies)."""
    flops = bench["extra_info"].get("flops")
    return flops / median(bench) / 1e9 if flops else None


# -------------------------------------------------------------- formatting
def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


NOISY = 1.5  # median / min above this: the rounds were disturbed


def noisy_mark(bench) -> str:
    return " †" if bench["stats"]["median"] > NOISY * bench["stats"]["min"] else ""


def fmt_share(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


# -------------------------------------------------------------------- peaks
def measured_peaks(benchmarks):
    """{dtype: GFLOP/s} of the matmul ("peak") cases."""
    return {b["extra_info"]["dtype"]: gflops(b)
            for b in benchmarks if b["extra_info"].get("kind") == "peak"}


def theoretical_peaks(info, args):
    """({dtype: GFLOP/s}, how it was computed) for the CPU.

    cores x FMA units x SIMD lanes x 2 flops x clock, with the widest vectors
    the CPU has (AVX-512 when /proc/cpuinfo lists avx512f, else AVX2) and
    the clock /proc/cpuinfo reported unless --cpu-ghz is given; --peak-f32
    replaces the formula altogether.
    """
    if args.peak_f32:
        return {"float32": args.peak_f32, "float64": args.peak_f32 / 2}, "given with --peak-f32"
    cores = info.get("usable_cpus") or info.get("logical_cpus") or 1
    ghz = args.cpu_ghz or info.get("cpu_mhz", float("nan")) / 1000
    lanes, isa = (16, "AVX-512") if info.get("cpu_avx512f") else (8, "AVX2+FMA")
    peak = cores * FMA_UNITS * lanes * 2 * ghz
    how = (f"{cores} cores × {FMA_UNITS} FMA units × {lanes} float32 lanes ({isa}) × 2 flops "
           f"× {ghz:.3g} GHz; float64 half")
    return {"float32": peak, "float64": peak / 2}, how


# --------------------------------------------------------------- acceptance
def acceptance_rows(benchmarks):
    """[(dtype, m, numpy median, ours median, speed-up, 1-thread speed-up, target, verdict)]."""
    by_case = defaultdict(dict)
    for b in benchmarks:
        e = b["extra_info"]
        if e.get("kind") == "convolve" and e["n"] == TARGET_N:
            by_case[(e["dtype"], e["m"])][e["contender"]] = b
    rows = []
    for dtype in ("float32", "float64"):
        for m, target in TARGETS.items():
            case = by_case.get((dtype, m), {})
            if OURS not in case or BASELINE not in case:
                rows.append((dtype, m, "–", "–", "–", "–", f"≥ {target:g}x", "MISSING"))
                continue
            ours, numpy = case[OURS], case[BASELINE]
            speedup = median(numpy) / median(ours)
            verdict = "PASS" if speedup >= target else "FAIL"
            one = case.get(OURS_ONE_THREAD)
            one_speedup = f"{median(numpy) / median(one):.2f}x" if one else "–"
            rows.append((dtype, m, fmt_time(median(numpy)) + noisy_mark(numpy),
                         fmt_time(median(ours)) + noisy_mark(ours),
                         f"{speedup:.2f}x", one_speedup, f"≥ {target:g}x", verdict))
    return rows


# ------------------------------------------------------------------- groups
def group_key(benches):
    e = benches[0]["extra_info"]
    return (e.get("kind") != "peak", e.get("dtype", ""), e.get("m", 0))


def group_title(benches, verdicts):
    e = benches[0]["extra_info"]
    if e.get("kind") == "peak":
        return f"{e['dtype']}, {e['contender']} {e['n']}×{e['n']} (peak reference)"
    if e.get("kind") != "convolve":
        return benches[0]["group"]
    title = f"{e['dtype']}, n = {e['n']:,}, m = {e['m']}, mode {e.get('mode', 'full')}"
    verdict = verdicts.get((e["dtype"], e["m"]))
    if verdict:
        title += f" — target ≥ {TARGETS[e['m']]:g}x numpy: **{verdict}**"
    return title


def group_table(benches, peaks, theory):
    """One row per contender: ours first, then peers fastest first."""
    ours = next((b for b in benches if b["extra_info"].get("ours")), None)
    ordered = ([ours] if ours else []) + sorted(
        (b for b in benches if b is not ours), key=median)
    rows = []
    for b in ordered:
        e, rate = b["extra_info"], gflops(b)
        dtype = e.get("dtype")
        matmul_share = rate / peaks[dtype] if rate and dtype in peaks else None
        peak_share = rate / theory[dtype] if rate and theory and dtype in theory else None
        if b is ours:
            speedup = "(ours)"
        elif ours:
            speedup = f"{median(b) / median(ours):.2f}x"
        else:
            speedup = "–"
        rows.append((e["contender"], e.get("threads", "–"), fmt_time(median(b)) + noisy_mark(b),
                     fmt_time(b["stats"]["min"]), b["stats"]["rounds"], f"{rate:.1f}" if rate else "–",
                     fmt_share(matmul_share), fmt_share(peak_share), speedup))
    header = ("contender", "threads", "median", "min", "rounds", "GFLOP/s", "% of matmul",
              "% of theor. peak", "time ÷ deepret's")
    return table(header, rows)


def groups_section(benchmarks, peaks, theory, verdicts):
    groups = defaultdict(list)
    for b in benchmarks:
        groups[b["group"]].append(b)
    lines = []
    for benches in sorted(groups.values(), key=group_key):
        lines += ["", f"### {group_title(benches, verdicts)}", ""]
        lines += group_table(benches, peaks, theory)
    return lines


# ----------------------------------------------------------------- sections
def machine_lines(run, info, deepret_threads):
    env = info.get("env", {})
    commit = run.get("commit_info", {})
    return [
        f"- Date: {run.get('datetime', '?')}; deepret {info.get('version', '?')}"
        + (f", commit {commit.get('id', '')[:10]}{' (dirty)' if commit.get('dirty') else ''}"
           if commit.get("id") else ""),
        f"- CPU: {info.get('cpu_model', '?')}, {info.get('usable_cpus', '?')} usable of "
        f"{info.get('logical_cpus', '?')} logical CPUs, /proc/cpuinfo clock "
        f"{info.get('cpu_mhz', float('nan')):.0f} MHz, AVX-512 "
        f"{'present' if info.get('cpu_avx512f') else 'absent'}",
        f"- deepret: SIMD path `{info.get('simd_path', '?')}`, threads {deepret_threads}, "
        f"CUDA engine {'built' if info.get('cuda_built') else 'not built'}",
        f"- numpy {info.get('numpy', '?')} (BLAS: {info.get('blas', '?')}), "
        f"scipy {info.get('scipy', '?')}, Python "
        f"{run.get('machine_info', {}).get('python_version', '?')}",
        "- Environment: " + (", ".join(f"`{k}={v}`" for k, v in env.items()) or "none of "
                             "OMP_*/OPENBLAS_*/MKL_*/CUPY_* set"),
    ]


def peak_lines(peaks, theory, how, label):
    lines = []
    for dtype in ("float32", "float64"):
        if dtype in peaks:
            line = f"- Measured {label} {dtype}: **{peaks[dtype]:.1f} GFLOP/s**"
            if theory:
                line += f" ({fmt_share(peaks[dtype] / theory[dtype])} of theoretical {theory[dtype]:.1f})"
            lines.append(line)
    if theory:
        lines.append(f"- Theoretical peak: {how}.")
        if any(peaks.get(d, 0) > theory[d] for d in theory):
            lines.append("- Note: the matmul beats the theoretical peak, so the cores run above the "
                         "/proc/cpuinfo clock (turbo) or use wider vectors than assumed: read the "
                         "'% of theor. peak' column as an upper bound.")
    return lines


def cpu_section(run, benches, args):
    info = run.get("machine_info", {}).get("deepret", {})
    peaks = measured_peaks(benches)
    theory, how = theoretical_peaks(info, args)
    rows = acceptance_rows(benches)
    verdicts = {(row[0], row[1]): row[-1] for row in rows}
    threads = next((b["extra_info"].get("threads") for b in benches
                    if b["extra_info"].get("contender") == OURS), "?")
    lines = ["## CPU", ""] + machine_lines(run, info, threads)
    lines += peak_lines(peaks, theory, how, "numpy matmul")
    if info.get("cpu_avx512f") and not args.peak_f32 and "512" not in info.get("simd_path", ""):
        lines.append(f"- deepret's CPU path is `{info.get('simd_path')}` on a CPU with AVX-512: "
                     "with 8-lane vectors its own ceiling is half the theoretical peak above.")
    env = info.get("env", {})
    if any(k.startswith("OPENBLAS_") for k in env):
        lines.append("- OPENBLAS_* variables were set when the matmul ran (listed above); they "
                     "pick or tune numpy's BLAS kernels and so move the measured peak.")
    if any(b["extra_info"].get("kind") == "convolve" for b in benches):
        lines += ["", "### Acceptance targets: convolve (n = 10^6, mode full, speed-up = numpy median ÷ deepret median)", ""]
        lines += table(("dtype", "m", "numpy.convolve", "deepret", "speed-up",
                        "speed-up, 1 thread", "target", "result"), rows)
    for family in FAMILY_ACCEPTANCE:
        lines += family(benches, peaks)
    lines += groups_section(benches, peaks, theory, verdicts)
    return lines


def gpu_section(run, benches, args):
    name = args.device or next((b["extra_info"].get("gpu_name") for b in benches
                                if b["extra_info"].get("gpu_name")), "unknown GPU")
    info = run.get("machine_info", {}).get("deepret", {})
    peaks = measured_peaks(benches)
    lines = [f"## GPU: {name}", "",
             f"- Date: {run.get('datetime', '?')}; deepret {info.get('version', '?')}, "
             f"host CPU {info.get('cpu_model', '?')}",
             "- Timed calls end with a device synchronize; inputs are on the device before timing."]
    lines += peak_lines(peaks, None, "", "cupy matmul")
    lines += groups_section(benches, peaks, None, {})
    return lines


def render(runs, args):
    lines = [f"# {args.title}", ""]
    if args.note:
        lines += [f"> {args.note}", ""]
    lines += [
        "Generated by `bench/report.py` from pytest-benchmark JSON of `bench/bench_*.py`. "
        "Every contender of a case ran on the same arrays and agreed with the reference "
        "(numpy.convolve, faiss, ...) before it was timed. Times are medians over the rounds shown; "
        "GFLOP/s counts the same flops for every contender of a case (convolve: 2·n·m, FFT "
        "ones included; kNN: 2·n²·d); "
        "'time ÷ deepret's' > 1 means deepret is faster by that factor. "
        f"† marks a median more than {NOISY}x the fastest round: other load disturbed "
        "those rounds, so trust that row less.",
    ]
    for path, run in runs:
        # The 2-D family (bench_conv2d.py) renders its own tables (report_conv2d.py).
        family = [b for b in run["benchmarks"] if report_conv2d.is_conv2d_family(b)]
        parts = split_by_device([b for b in run["benchmarks"] if b not in family])
        family_parts = split_by_device(family)
        lines += ["", f"<!-- source: {path} -->"]
        if parts.get("cpu"):
            lines += [""] + cpu_section(run, parts["cpu"], args)
        lines += report_conv2d.section(family_parts.get("cpu", []), measured_peaks(parts.get("cpu", [])))
        if parts.get("gpu"):
            lines += [""] + gpu_section(run, parts["gpu"], args)
        graph_lines = graph_section(run["benchmarks"])
        if graph_lines:
            lines += [""] + graph_lines
        lines += report_conv2d.section(family_parts.get("gpu", []), {}, "gpu")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", help="pytest-benchmark JSON file(s), e.g. a CPU and a GPU run")
    parser.add_argument("-o", "--output", help="Markdown file to write (default: stdout)")
    parser.add_argument("--title", default="deepret benchmark results")
    parser.add_argument("--note", help="a line under the title, e.g. how trustworthy the run is")
    parser.add_argument("--device", help="GPU name for the GPU section, when the JSON lacks it")
    parser.add_argument("--cpu-ghz", type=float, help="clock for the theoretical peak (default: /proc/cpuinfo's)")
    parser.add_argument("--peak-f32", type=float, help="theoretical float32 GFLOP/s (float64: half)")
    args = parser.parse_args(argv)
    text = render(load_runs(args.json), args)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
