"""Pictures of EGM regions (matplotlib, the optional extra ``plot``:
``pip install "deepret[plot]"``). matplotlib is imported on first use."""

from __future__ import annotations

import numpy as np

from ._arrays import host_array

__all__ = ["fs_vs_os", "regions"]


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
    return np.asarray(host_array(x))


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

    Raises
    ------
    ValueError
        A picture that is not (H, W) or (H, W, 3|4); regions of several maps.
    ImportError
        Without matplotlib.

    See Also
    --------
    matplotlib.axes.Axes.imshow : draws the picture.
    deepret.egm : finds the regions.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, deepret, deepret.plot
    >>> yy, xx = np.mgrid[0:12, 0:16]
    >>> s = np.exp(-((yy - 4) ** 2 + (xx - 5) ** 2) / 6)
    >>> ax = deepret.plot.regions(s, deepret.egm(s))
    >>> len(ax.patches)                  # one box per region
    1
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


def fs_vs_os(acts, saliency, *, titles=None, images=None, figsize_per_image=(5.0, 2.6)):
    """The "FS versus OS" figure: per image, its feature-saliency map with the
    FS.EGM regions beside its object-saliency map with the OS.EGM regions.

    Parameters
    ----------
    acts : sequence of (C, H, W) activations (or a (B, C, H, W) array)
    saliency : a fitted deepret.ObjectSaliency
    titles : sequence of str, keyword-only
        One per image (default "image i").
    images : (B,) ints, keyword-only
        Database ids of the images, as in ``ObjectSaliency.saliency``.

    Returns
    -------
    The matplotlib Figure (B rows, 2 columns).

    Raises
    ------
    ValueError
        No images, titles of another length.

    See Also
    --------
    regions, deepret.ObjectSaliency.saliency

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, deepret, deepret.plot
    >>> acts = [np.random.default_rng(i).random((8, 6, 7), dtype=np.float32) for i in range(4)]
    >>> os_ = deepret.ObjectSaliency(k=5).fit(deepret.RegionSet.from_activations(acts))
    >>> figure = deepret.plot.fs_vs_os(acts[:2], os_)
    >>> len(figure.axes)
    4
    """
    from .regions import egm
    from .saliency import feature_saliency

    plt, _ = _pyplot()
    items = list(acts)
    if not items:
        raise ValueError("acts is an empty sequence")
    titles = [f"image {i}" for i in range(len(items))] if titles is None else list(titles)
    if len(titles) != len(items):
        raise ValueError(f"titles must have one entry per image ({len(items)}), got {len(titles)}")
    os_maps = saliency.saliency(items, images=images)
    fs_params = saliency.region_set_.params
    fig, axes = plt.subplots(len(items), 2, squeeze=False,
                             figsize=(figsize_per_image[0], figsize_per_image[1] * len(items)))
    for row, a, s, title in zip(axes, items, os_maps, titles):
        fs = feature_saliency(a)
        fs_regions = egm(fs, **fs_params)
        os_regions = egm(s, **saliency.egm_params)
        regions(fs, fs_regions, ax=row[0], labels=False)
        regions(s, os_regions, ax=row[1], labels=False, color="orange")
        row[0].set_title(f"{title}: FS, {len(fs_regions.weights)} regions", fontsize=8)
        row[1].set_title(f"{title}: OS, {len(os_regions.weights)} regions", fontsize=8)
    fig.tight_layout()
    return fig
