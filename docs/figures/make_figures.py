"""Draw the documentation's pictures from the code and the measurements.

    python docs/figures/make_figures.py [--only regions|map|speedups]

- ``bench/egm_regions.png`` (the README's and the regions guide's): EGM
  regions on real feature-saliency maps (bench/plot_regions.py on
  tests/data/effnet_lite0_acts.npz);
- ``map_alpha_k.png``: Oxford5k diffusion mAP against alpha and k
  (``deepret demo --plot``, on the bundled descriptors; about a minute);
- ``speedups.png``: the measured speed-ups over the numpy/scipy/faiss/torch
  peers, read from the tables of bench/RESULTS.md (so it shows what that
  file says, machine and date included).

Needs deepret installed and matplotlib. Nothing here is drawn by hand: rerun
after bench/RESULTS.md changes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"


def markdown_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """{heading: rows} for every table of a Markdown file, each row a dict
    from the header's cells to the row's (the last heading above the table
    names it; a second table under the same heading gets ' (2)')."""
    tables: dict[str, list[dict[str, str]]] = {}
    heading, header, rows = "", None, None
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header, rows = cells, []
            elif not set("".join(cells)) <= set("-: "):
                rows.append(dict(zip(header, cells)))
            continue
        if header is not None:
            name = heading if heading not in tables else f"{heading} (2)"
            tables[name] = rows
            header, rows = None, None
    return tables


def _ratio(cell: str) -> float:
    """The first 'N.NNx' (or a bare number) in a cell."""
    match = re.search(r"([0-9]+(?:\.[0-9]+)?)x", cell) or re.search(r"([0-9]+(?:\.[0-9]+)?)", cell)
    if match is None:
        raise ValueError(f"no ratio in {cell!r}")
    return float(match.group(1))


def _table(tables, prefix: str):
    for name, rows in tables.items():
        if name.startswith(prefix):
            return rows
    raise KeyError(f"bench/RESULTS.md has no table under a heading starting {prefix!r}")


def _row(rows, **match):
    for row in rows:
        if all(row.get(key, "").startswith(value) for key, value in match.items()):
            return row
    raise KeyError(f"no row {match} in the table")


def speedups(tables) -> list[tuple[str, float, str]]:
    """(case, speed-up, peer) pairs read from bench/RESULTS.md."""
    out = []
    conv = _table(tables, "Acceptance targets: convolve")
    row = _row(conv, dtype="float32", m="31")
    out.append(("convolve, n = 10^6, m = 31", _ratio(row["speed-up"]), "numpy.convolve"))
    conv2d = _table(tables, "convolve2d, 2048")
    row = _row(conv2d, k="7×7")
    out.append(("convolve2d 2048², 7×7", _ratio(row["cv2.filter2D (÷ deepret)"]), "cv2.filter2D"))
    out.append(("convolve2d 2048², 7×7", _ratio(row["scipy.signal.convolve2d (÷ deepret)"]),
                "scipy.signal.convolve2d"))
    knn = _table(tables, "Acceptance targets: kNN")
    row = _row(knn, case="knn all-vs-all", size="n = 100,000, d = 128")
    out.append(("knn all-vs-all, n = 10^5, d = 128", _ratio(row["ratio"]), "faiss IndexFlatIP"))
    row = _row(knn, case="knn_graph end to end", size="n = 100,000, d = 512")
    out.append(("knn_graph, n = 10^5, d = 512", _ratio(row["ratio"]), "faiss + scipy.sparse"))
    graph = _table(tables, "graph_from_knn n=100000 k=50 float32 mutual")
    row = _row(graph, contender="scipy.sparse")
    out.append(("graph_from_knn, n = 10^5, k = 50", _ratio(row["time ÷ deepret's"]), "scipy.sparse"))
    diffusion = _table(tables, "Acceptance targets: diffusion")
    for graph_name in ("gaussian", "manifold"):
        row = _row(diffusion, graph=graph_name, queries="64")
        out.append((f"diffuse, n = 10^5, 64 queries, {graph_name}", _ratio(row["speed-up"]),
                    "scipy cg looped"))
    egm = _table(tables, "EGM regions (bench_regions.py)")
    row = _row(egm, case="64x64: deepret vs sklearn")
    out.append(("egm, one 64×64 map", _ratio(row["speed-up"]), "sklearn GaussianMixture+BIC"))
    return out


def _machine(text: str) -> str:
    match = re.search(r"^- CPU: (.*)$", text, flags=re.MULTILINE)
    date = re.search(r"^- Date: (\d{4}-\d{2}-\d{2})", text, flags=re.MULTILINE)
    cpu = match.group(1).split(", /proc")[0] if match else "see bench/RESULTS.md"
    return f"{date.group(1) if date else ''}\n{cpu}"


def draw_speedups(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    text = RESULTS.read_text(encoding="utf-8")
    cases = speedups(markdown_tables(text))
    labels = [f"{case}\nvs {peer}" for case, _, peer in cases]
    values = [value for _, value, _ in cases]
    figure, axes = plt.subplots(figsize=(7.5, 0.55 * len(cases) + 1.2), dpi=90)
    bars = axes.barh(range(len(cases)), values, color="#3b75af")
    axes.set_xscale("log")
    axes.axvline(1.0, color="gray", linewidth=1)
    axes.set_yticks(range(len(cases)), labels, fontsize=7)
    axes.invert_yaxis()
    for bar, value in zip(bars, values):
        axes.text(bar.get_width() * 1.05, bar.get_y() + bar.get_height() / 2, f"{value:g}x",
                  va="center", fontsize=7)
    axes.set_xlim(0.8, max(values) * 3)
    axes.set_xlabel("speed-up over the peer (peer median ÷ deepret median, log scale)", fontsize=8)
    axes.set_title(f"bench/RESULTS.md, {_machine(text)}", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def shrink(path: Path, colors: int = 64) -> None:
    """Store a figure as a palette PNG (line art needs few colours): a third
    of the size in the repository, no visible change."""
    from PIL import Image  # matplotlib's own dependency

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("regions", "map", "speedups"))
    args = parser.parse_args(argv)
    if args.only in (None, "regions"):
        subprocess.run([sys.executable, str(ROOT / "bench" / "plot_regions.py"), "-o",
                        str(ROOT / "bench" / "egm_regions.png")], check=True)
    if args.only in (None, "map"):
        subprocess.run([sys.executable, "-m", "deepret", "demo", "--no-reference", "--repeats", "1",
                        "--plot", str(HERE / "map_alpha_k.png")], check=True)
        shrink(HERE / "map_alpha_k.png")
    if args.only in (None, "speedups"):
        draw_speedups(HERE / "speedups.png")
        shrink(HERE / "speedups.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
