"""Pictures of EGM regions (matplotlib, the optional extra ``plot``:
``pip install "deepret[plot]"``). matplotlib is imported on first use."""

from __future__ import annotations

import numpy as np

__all__ = ["regions"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
        from matplotlib import patches
    except ImportError as error:
        raise ImportError(
            "deepret.plot needs matplotlib: pip install \"deepret[plot]\" (or pip install matplotlib)"
        ) from error
    return plt, patches


def _host(x):
    return x.get() if hasattr(x, "get") and not isinstance(x, np.ndarray) else np.asarray(x)


def regions(image_or_map, regions, ax=None, *, map_shape=None, color="red", cmap="viridis",
            labels=True, linewidth=1.5):
    """Draw EGM regions over a saliency map or an image.

    Parameters
    ----------
    image_or_map : (H, W) map or (H, W, 3|4) image
        Shown with ``imshow`` (maps with ``cmap``).
    regions : deepret.Regions of one map
        Boxes and means in map pixel coordinates (pixel centres at integers).
    ax : matplotlib Axes, optional
        Where to draw; default a new figure's.
    map_shape : (h, w), keyword-only
        The shape of the map the regions were found on, when the picture is
        an image of another size: coordinates are scaled from map to image
        pixels (pixel centres to pixel centres). Default: the picture's shape.
    color, cmap, labels, linewidth : keyword-only
        Box colour, colormap of a map, whether to print each region's weight.

    Returns
    -------
    The Axes drawn on.
    """
    plt, patches = _pyplot()
    picture = _host(image_or_map)
    if picture.ndim not in (2, 3):
        raise ValueError(f"image_or_map must be (H, W) or (H, W, 3|4), got shape {picture.shape}")
    if getattr(regions, "batched", False) and len(regions) != 1:
        raise ValueError(f"regions must be one map's regions (regions[i]), got {len(regions)} maps")
    boxes, means, weights = (_host(getattr(regions, f)) for f in ("boxes", "means", "weights"))
    size = np.array(picture.shape[:2], dtype=np.float64)
    h, w = map_shape if map_shape is not None else picture.shape[:2]
    scale = size / np.array([h, w], dtype=np.float64)

    def to_picture(yx):  # map pixel centres -> picture pixel centres
        return (np.asarray(yx, dtype=np.float64) + 0.5) * scale - 0.5

    if ax is None:
        _, ax = plt.subplots()
    ax.imshow(picture, cmap=cmap if picture.ndim == 2 else None)
    for (y0, x0, y1, x1), mean, weight in zip(boxes, means, weights):
        (py0, px0), (py1, px1) = to_picture([y0, x0]), to_picture([y1, x1])
        ax.add_patch(patches.Rectangle((px0, py0), px1 - px0, py1 - py0, fill=False, edgecolor=color,
                                       linewidth=linewidth))
        my, mx = to_picture(mean)
        ax.plot([mx], [my], marker="+", color=color, markersize=8)
        if labels:
            ax.text(px0, py0, f"{weight:.2f}", color="white", fontsize=8, va="bottom",
                    bbox=dict(facecolor=color, alpha=0.7, pad=1, linewidth=0))
    ax.set_xlim(-0.5, size[1] - 0.5)
    ax.set_ylim(size[0] - 0.5, -0.5)
    ax.set_axis_off()
    return ax
