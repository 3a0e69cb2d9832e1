"""report.py's section for the kNN family (bench_knn.py): acceptance targets
of issue #4 from the benchmarks of one run."""

from __future__ import annotations

from collections import defaultdict

KNN_TARGET = 1.2          # deepret.knn ÷ faiss IndexFlatIP, all-vs-all
SIMILARITY_TARGET = 0.8   # similarity kernel GFLOP/s ÷ numpy matmul float32 GFLOP/s
GRAPH_TARGET = 2.0        # deepret.knn_graph ÷ the faiss + scipy.sparse pipeline
KNN_PEER = "faiss IndexFlatIP"
GRAPH_PEER = "faiss + scipy.sparse"


def _median(bench) -> float:
    return bench["stats"]["median"]


def _by_group(benches, kind):
    groups = defaultdict(dict)
    for b in benches:
        e = b["extra_info"]
        if e.get("kind") == kind:
            groups[(e["n"], e["d"])][e["contender"]] = b
    return groups


def _ratio_rows(groups, peer, target, what):
    rows = []
    for (n, d), case in sorted(groups.items()):
        if "deepret" not in case or peer not in case:
            continue
        ratio = _median(case[peer]) / _median(case["deepret"])
        rows.append((what, f"n = {n:,}, d = {d}", f"{_median(case['deepret']):.3g} s",
                     f"{peer} {_median(case[peer]):.3g} s", f"{ratio:.2f}x", f"≥ {target:g}x",
                     "PASS" if ratio >= target else "FAIL"))
    return rows


def acceptance_lines(benches, peaks):
    """Markdown lines: the issue #4 targets met or not (empty without knn cases)."""
    rows = _ratio_rows(_by_group(benches, "knn"), KNN_PEER, KNN_TARGET, "knn all-vs-all, k = 50")
    rows += _ratio_rows(_by_group(benches, "knn_graph"), GRAPH_PEER, GRAPH_TARGET,
                        "knn_graph end to end, k = 50")
    matmul = peaks.get("float32")
    for b in benches:
        e = b["extra_info"]
        if e.get("kind") != "knn_similarity" or not matmul:
            continue
        rate = e["flops"] / _median(b) / 1e9
        share = rate / matmul
        rows.append(("similarity kernel", f"nq = {e['nq']:,}, n = {e['n']:,}, d = {e['d']}",
                     f"{rate:.0f} GFLOP/s", f"numpy matmul {matmul:.0f} GFLOP/s",
                     f"{100 * share:.0f} %", f"≥ {100 * SIMILARITY_TARGET:.0f} %",
                     "PASS" if share >= SIMILARITY_TARGET else "FAIL"))
    if not rows:
        return []
    header = ("case", "size", "deepret", "peer", "ratio", "target", "result")
    lines = ["", "### Acceptance targets: kNN and graphs (issue #4; ratio = peer median ÷ deepret median)", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines += ["", "kNN GFLOP/s below count 2·n²·d for every contender; deepret's all-vs-all "
              "search computes each score tile once for both of its points (half the arithmetic), "
              "so its figure there is an effective rate, while the similarity-kernel row is the "
              "kernel's real rate."]
    return lines
