"""The convolve2d / conv2d part of bench/RESULTS.md (called from report.py).

Reads the pytest-benchmark entries of bench_conv2d.py (extra_info kind
"convolve2d", "conv2d" or "conv2d-copy") and renders the acceptance tables
of issue #3: convolve2d against cv2.filter2D (>= 1.0x) and
scipy.signal.convolve2d (>= 20x); conv2d on the classic layers against torch
(geometric mean >= 0.8x, no layer below 0.5x) and the large VGG layers'
share of numpy's matmul GFLOP/s (>= 60 %); and those of issue #14: conv2d on
the layers of MobileNetV2 and EfficientNet-Lite0 against torch (per network
and batch size: geometric mean >= 1.0x, no layer below 0.7x), each layer's
distance from its limit (the matmul peak, or its compulsory bytes at the
copy bandwidth measured in the same run, whichever is lower).
"""

from __future__ import annotations

import math
from collections import defaultdict

KINDS = ("convolve2d", "conv2d", "conv2d-copy")
OURS = "deepret"
CV2, SCIPY = "cv2.filter2D", "scipy.signal.convolve2d"
CV2_TARGET, SCIPY_TARGET = 1.0, 20.0
GEOMEAN_TARGET, FLOOR_TARGET, MATMUL_SHARE_TARGET = 0.8, 0.5, 0.6
MOBILE_GEOMEAN_TARGET, MOBILE_FLOOR_TARGET = 1.0, 0.7
LARGE_VGG = ("VGG16 conv1_2", "VGG16 conv3", "VGG16 conv4")


def is_conv2d_family(bench) -> bool:
    return bench["extra_info"].get("kind") in KINDS


def _median(bench) -> float:
    return bench["stats"]["median"]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def _cell(bench) -> str:
    """Median time, with † where the median exceeds 1.5x the fastest round
    (other load disturbed the rounds) and then the fastest round too."""
    med, low = _median(bench), bench["stats"]["min"]
    return _ms(med) + (f" † (min {_ms(low)})" if med > 1.5 * low else "")


def _gflops(bench) -> float:
    return bench["extra_info"]["flops"] / _median(bench) / 1e9


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _cases(benches, kind, key, family=None):
    cases = defaultdict(dict)
    for b in benches:
        e = b["extra_info"]
        if e.get("kind") == kind and (family is None or e.get("family", "classic") == family):
            cases[key(e)][e["contender"]] = b
    return cases


def _geomean(ratios):
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))


def convolve2d_lines(benches, peer_names=(CV2, SCIPY)):
    cases = _cases(benches, "convolve2d", lambda e: e["k"])
    if not cases:
        return []
    peers = sorted({c for case in cases.values() for c in case} - {OURS})
    lines = ["", "### convolve2d, 2048×2048 float32, mode same "
             f"(targets: ≥ {CV2_TARGET:g}x cv2.filter2D, ≥ {SCIPY_TARGET:g}x scipy.signal.convolve2d)", ""]
    header = ["k", "deepret", "GFLOP/s"] + [f"{p} (÷ deepret)" for p in peers] + ["result"]
    rows = []
    for k in sorted(cases):
        case = cases[k]
        if OURS not in case:
            continue
        ours = _median(case[OURS])
        row = [f"{k}×{k}", _cell(case[OURS]), f"{_gflops(case[OURS]):.1f}"]
        for p in peers:
            row.append(f"{_cell(case[p])} ({_median(case[p]) / ours:.2f}x)" if p in case else "–")
        verdicts = []
        for peer, target in ((CV2, CV2_TARGET), (SCIPY, SCIPY_TARGET)):
            if peer in case:
                verdicts.append("PASS" if _median(case[peer]) / ours >= target else "FAIL")
        row.append(" / ".join(verdicts) or "–")
        rows.append(row)
    return lines + _table(header, rows)


def conv2d_lines(benches, peak, peer="torch (oneDNN)"):
    cases = _cases(benches, "conv2d", lambda e: (e["layer"], e["n"]), "classic")
    if not cases:
        return []
    lines = ["", f"### conv2d float32 against {peer} (targets: geometric mean ≥ {GEOMEAN_TARGET:g}x, "
             f"every layer ≥ {FLOOR_TARGET:g}x; large VGG layers ≥ {100 * MATMUL_SHARE_TARGET:.0f} % "
             "of numpy matmul GFLOP/s)", ""]
    rows, ratios = [], []
    for (layer, n), case in cases.items():
        if OURS not in case:
            continue
        ours = case[OURS]
        other = case.get(peer)
        ratio = _median(other) / _median(ours) if other else None
        if ratio:
            ratios.append(ratio)
        share = _gflops(ours) / peak if peak else None
        share_cell = "–" if share is None else f"{100 * share:.0f} %"
        if layer in LARGE_VGG and share is not None:
            share_cell += " " + ("PASS" if share >= MATMUL_SHARE_TARGET else "FAIL")
        one, peer_one = case.get("deepret 1 thread"), case.get("torch 1 thread")
        one_cell = f"{_median(peer_one) / _median(one):.2f}x" if one and peer_one else "–"
        rows.append([layer, n, _cell(ours), f"{_gflops(ours):.1f}",
                     _cell(other) if other else "–",
                     f"{_gflops(other):.1f}" if other else "–",
                     f"{ratio:.2f}x" if ratio else "–", share_cell, one_cell])
    lines += _table(["layer", "N", "deepret", "GFLOP/s", peer, "GFLOP/s", "speed-up", "% of matmul",
                     "speed-up, both 1 thread"], rows)
    if ratios:
        geomean = _geomean(ratios)
        worst = min(ratios)
        lines += ["", f"- Geometric mean speed-up over {peer}: **{geomean:.2f}x** "
                  f"({'PASS' if geomean >= GEOMEAN_TARGET else 'FAIL'}); slowest layer "
                  f"**{worst:.2f}x** ({'PASS' if worst >= FLOOR_TARGET else 'FAIL'})."]
    if peak:
        lines.append(f"- numpy matmul float32 in the same run: {peak:.1f} GFLOP/s.")
    return lines


def _shape_cell(e) -> str:
    c, h, w, o, k, stride, padding, groups = e["shape"]
    kind = "depthwise" if groups == c and c > 1 else f"{c}→{o}"
    return f"{kind}, {k}×{k}, s{stride}, {h}×{w}"


def mobile_lines(benches, peak, bandwidth, peer="torch (oneDNN)"):
    """Issue #14: the MobileNetV2 / EfficientNet-Lite0 layers, one table per
    batch size, then each network's geometric mean and slowest layer."""
    cases = _cases(benches, "conv2d", lambda e: (e["layer"], e["n"]), "mobile")
    if not cases:
        return []
    lines = ["", f"### conv2d float32 on MobileNetV2 and EfficientNet-Lite0 layers (224×224) against {peer} "
             f"(targets per network and N: geometric mean ≥ {MOBILE_GEOMEAN_TARGET:g}x, every layer ≥ "
             f"{MOBILE_FLOOR_TARGET:g}x)", "",
             "flop/B: the layer's flops over its compulsory traffic (input, weights and bias read once, "
             "output written once, float32). limit: the lower of the matmul peak and flop/B × the copy "
             "bandwidth of the same run; '% of limit' is deepret's GFLOP/s against it."]
    if bandwidth:
        lines.append(f"Copy bandwidth in this run: {bandwidth:.1f} GB/s (numpy copy, one thread, "
                     "an L3-sized array).")
    ratios = defaultdict(list)  # (network, n) -> [(ratio, layer)]
    for n in sorted({n for _, n in cases}):
        rows = []
        for (layer, batch), case in cases.items():
            if batch != n or OURS not in case:
                continue
            ours, other = case[OURS], case.get(peer)
            e = ours["extra_info"]
            ratio = _median(other) / _median(ours) if other else None
            for net in e.get("networks", []):
                if ratio:
                    ratios[(net, n)].append((ratio, layer))
            intensity = e["flops"] / e["bytes"] if e.get("bytes") else None
            limit = None
            if peak and intensity:
                limit = min(peak, intensity * bandwidth) if bandwidth else peak
            one, peer_one = case.get("deepret 1 thread"), case.get("torch 1 thread")
            rows.append([layer, _shape_cell(e), _cell(ours), f"{_gflops(ours):.1f}",
                         _cell(other) if other else "–", f"{_gflops(other):.1f}" if other else "–",
                         f"{ratio:.2f}x" if ratio else "–",
                         f"{_median(peer_one) / _median(one):.2f}x" if one and peer_one else "–",
                         f"{intensity:.1f}" if intensity else "–",
                         f"{100 * _gflops(ours) / limit:.0f} % of {limit:.0f}" if limit else "–"])
        lines += ["", f"N = {n}:", ""]
        lines += _table(["layer", "shape", "deepret", "GFLOP/s", peer, "GFLOP/s", "speed-up",
                         "speed-up, both 1 thread", "flop/B", "% of limit (GFLOP/s)"], rows)
    lines.append("")
    for (net, n), pairs in sorted(ratios.items()):
        values = [r for r, _ in pairs]
        geomean, (worst, worst_layer) = _geomean(values), min(pairs)
        lines.append(f"- {net}, N = {n} ({len(values)} distinct layers): geometric mean **{geomean:.2f}x** "
                     f"({'PASS' if geomean >= MOBILE_GEOMEAN_TARGET else 'FAIL'}), slowest **{worst:.2f}x** "
                     f"{worst_layer} ({'PASS' if worst >= MOBILE_FLOOR_TARGET else 'FAIL'}).")
    return lines


def copy_bandwidth(benches):
    """GB/s of the conv2d-copy case (read + write), if the run has it."""
    for b in benches:
        if b["extra_info"].get("kind") == "conv2d-copy":
            return b["extra_info"]["bytes"] / _median(b) / 1e9
    return None


def section(benches, peaks, device="cpu"):
    """Markdown lines for the conv2d family entries of one device."""
    mine = [b for b in benches if is_conv2d_family(b)]
    if not mine:
        return []
    peer = "torch (oneDNN)" if device == "cpu" else "torch (cuDNN)"
    lines = ["", f"## 2-D convolution and conv2d (issues #3, #14), {device.upper()}", "",
             "Medians over the rounds; speed-ups are peer median ÷ deepret median. † marks a "
             "median above 1.5x the fastest round (other load on the machine), with that round's time."]
    lines += convolve2d_lines(mine)
    if device == "gpu":
        lines += ["", "GPU convolve2d peer: cupyx.scipy.signal.convolve2d (target ≥ 5x)."]
    lines += conv2d_lines(mine, peaks.get("float32"), peer)
    lines += mobile_lines(mine, peaks.get("float32"), copy_bandwidth(mine), peer)
    return lines


def main(argv=None) -> int:
    """Render only this section from JSON files (the matmul peak taken from the same file)."""
    import argparse
    import json
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(description="convolve2d/conv2d tables of issue #3")
    parser.add_argument("json", nargs="+")
    parser.add_argument("-o", "--output")
    args = parser.parse_args(argv)
    lines = []
    for path in args.json:
        run = json.loads(Path(path).read_text())
        benches = run["benchmarks"]
        info = run.get("machine_info", {}).get("deepret", {})
        peaks = {b["extra_info"]["dtype"]: _gflops(b) for b in benches
                 if b["extra_info"].get("kind") == "peak" and b["extra_info"].get("device", "cpu") == "cpu"}
        lines += ["", f"<!-- source: {path} -->", "",
                  f"- Date: {run.get('datetime', '?')}; CPU {info.get('cpu_model', '?')}, "
                  f"{info.get('usable_cpus', '?')} CPUs, deepret SIMD path `{info.get('simd_path', '?')}`"
                  " (2-D kernels: AVX-512F where the CPU has it)"]
        for device in ("cpu", "gpu"):
            mine = [b for b in benches if b["extra_info"].get("device", "cpu") == device]
            lines += section(mine, peaks if device == "cpu" else {}, device)
    text = "\n".join(lines) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
