"""Render bench/fs_vs_os.png for the README: feature-saliency maps with their
FS.EGM regions beside object-saliency maps with their OS.EGM regions, the
object saliency fitted on the 19 real activation maps of
tests/data/effnet_lite0_acts.npz (a tiny collection: the picture shows the
mechanics, not the method's quality).

    python bench/plot_objects.py [-o bench/fs_vs_os.png]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import deepret
import deepret.plot

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data", "effnet_lite0_acts.npz")
NAMES = ("chelsea", "coins", "astronaut", "coffee")


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=os.path.join(HERE, "fs_vs_os.png"))
    args = parser.parse_args(argv)
    with np.load(DATA) as z:
        names = list(z.files)
        acts = [z[n].astype(np.float32) for n in names]
    fitted = deepret.ObjectSaliency(k=20).fit(deepret.RegionSet.from_activations(acts))
    ids = np.array([names.index(n) for n in NAMES])
    fig = deepret.plot.fs_vs_os([acts[i] for i in ids], fitted, titles=NAMES, images=ids)
    fig.savefig(args.output, dpi=80)
    print("wrote", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
