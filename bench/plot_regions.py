"""Render bench/egm_regions.png for the README: EGM regions (the paper's FS
settings) on real feature-saliency maps of tests/data/effnet_lite0_acts.npz.

    python bench/plot_regions.py [-o bench/egm_regions.png]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import deepret
import deepret.plot

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data", "effnet_lite0_acts.npz")
NAMES = ("chelsea", "coins", "astronaut", "immunohistochemistry")


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=os.path.join(HERE, "egm_regions.png"))
    args = parser.parse_args(argv)
    data = np.load(DATA)
    fig, axes = plt.subplots(1, len(NAMES), figsize=(3.2 * len(NAMES), 3.0))
    for ax, name in zip(axes, NAMES):
        s = deepret.feature_saliency(data[name])
        r = deepret.egm(s, sigma=2.5, threshold=0.4, power=5.0)
        deepret.plot.regions(s, r, ax=ax)
        ax.set_title(f"{name} {s.shape[0]}x{s.shape[1]}: {len(r.weights)} regions", fontsize=9)
    fig.suptitle("EGM regions on feature-saliency maps of EfficientNet-Lite0 activations", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=80)
    print("wrote", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
