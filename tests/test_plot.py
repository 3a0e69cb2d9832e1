"""deepret.plot: regions drawn with matplotlib (skipped without it), and a
clear error when matplotlib is missing."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import deepret
import deepret.plot


def _map():
    yy, xx = np.mgrid[0:20, 0:30]
    return np.exp(-((yy - 6) ** 2 + (xx - 8) ** 2) / 8.0) + np.exp(-((yy - 14) ** 2 + (xx - 22) ** 2) / 8.0)


def test_regions_drawn():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = _map()
    r = deepret.egm(s)
    ax = deepret.plot.regions(s, r)
    assert len(ax.patches) == len(r.weights) == 2
    rect = ax.patches[0]
    y0, x0, y1, x1 = r.boxes[0]
    assert rect.get_xy() == pytest.approx((x0, y0)) and rect.get_width() == pytest.approx(x1 - x0)
    # An image twice the map's size: coordinates scale pixel centre to pixel centre.
    image = np.zeros((40, 60, 3))
    ax2 = deepret.plot.regions(image, r, map_shape=s.shape, labels=False)
    assert ax2.patches[0].get_xy() == pytest.approx(((x0 + 0.5) * 2 - 0.5, (y0 + 0.5) * 2 - 0.5))
    with pytest.raises(ValueError, match="one map"):
        deepret.plot.regions(s, deepret.egm(np.stack([s, s])))
    plt.close("all")


def test_missing_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"deepret\[plot\]"):
        deepret.plot.regions(_map(), deepret.egm(_map()))
