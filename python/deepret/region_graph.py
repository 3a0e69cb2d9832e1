"""The region graph of a :class:`RegionSet` (object saliency and regional
diffusion build on it): each region's k nearest regions by inner product, of
other images by default, as a normalized mutual kNN graph. The definitions are
in docs/objects.md."""

from __future__ import annotations

import numpy as np

from . import _arrays, _backend
from .graph import graph_from_knn
from .knn import knn
from .regionset import RegionSet
from ._typing import Array, Sparse

__all__ = ["region_graph", "region_neighbors"]


def _choice(name, value, options):
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def _check_region_set(region_set):
    if not isinstance(region_set, RegionSet):
        raise TypeError(f"region_set must be a deepret.RegionSet, got {type(region_set).__name__}")
    if len(region_set) < 2:
        raise ValueError(f"region_set must hold at least 2 regions, got {len(region_set)}")
    return region_set


def region_neighbors(region_set: RegionSet, k: int = 200, same_image: bool = False, *, progress: bool = False,
                     num_threads: int | None = None) -> tuple[Array, Array]:
    """The nearest regions of every region of a RegionSet.

    Inner product, best first, excluding the region itself and, unless
    ``same_image``, the regions of its own image.

    Parameters
    ----------
    region_set : RegionSet
    k : int
        Neighbours per region.
    same_image : bool
        Whether regions of the same image may be neighbours.
    progress, num_threads : keyword-only

    Returns
    -------
    scores : (K, k') float32 array
    ids : (K, k') int64 array
        Rows with fewer candidates are padded with id -1 (and the score
        after the last real one). k' = min(k, the largest number of
        candidates).

    Raises
    ------
    TypeError
        Not a RegionSet.
    ValueError
        Fewer than 2 regions; ``same_image=False`` with one image only.

    See Also
    --------
    knn : the search; region_graph : the graph of these lists.

    Examples
    --------
    >>> import numpy as np, deepret
    >>> from deepret.region_graph import region_neighbors
    >>> acts = [np.random.default_rng(i).random((8, 6, 6), dtype=np.float32) for i in range(3)]
    >>> rs = deepret.RegionSet.from_activations(acts)
    >>> scores, ids = region_neighbors(rs, k=2)
    >>> other = rs.image[ids] != rs.image[:, None]          # always another image's region
    >>> bool(other[ids >= 0].all())
    True
    """
    rs = _check_region_set(region_set)
    k = _arrays.positive_int("k", k)
    x = rs.float32_descriptors()
    n = len(x)
    if same_image:
        return knn(x, k=min(k, n - 1), exclude_self=True, progress=progress, num_threads=num_threads)
    widest = int(rs.counts.max())
    if widest == n:
        raise ValueError("same_image=False needs regions of at least 2 images; all regions are of one image")
    searched = min(k + widest - 1, n - 1)
    scores, ids = knn(x, k=searched, exclude_self=True, progress=progress, num_threads=num_threads)
    keep = min(k, n - int(rs.counts.min()))
    out_scores = np.empty((n, keep), dtype=scores.dtype)
    out_ids = np.empty((n, keep), dtype=np.int64)
    _backend._core.drop_same_group(scores, ids, rs.image, keep, out_scores, out_ids,
                                   _backend.threads_arg(num_threads))
    return out_scores, out_ids


def region_graph(region_set: RegionSet, k: int = 200, gamma: float = 3.0, mutual: bool = True,
                 same_image: bool = False, *, progress: bool = False, num_threads: int | None = None) -> Sparse:
    """The normalized kNN graph over a RegionSet's regional descriptors.

    Parameters
    ----------
    region_set : RegionSet
    k : int
        Neighbours per region (200 as in the regional-diffusion reference
        code); capped at the number of candidates.
    gamma, mutual
        As in :func:`deepret.graph_from_knn`.
    same_image : bool
        Whether regions of one image may link. Default False: regions of one
        image overlap and share activations, so they are each other's nearest
        neighbours; those links would form one clique per image whose
        centrality counts how many regions an image has, not how often a
        pattern recurs across the collection, which is what centrality is
        meant to measure here.
    progress, num_threads : keyword-only

    Returns
    -------
    scipy.sparse.csr_array (K, K), float32, symmetric.

    Raises
    ------
    TypeError, ValueError
        As :func:`deepret.region_graph.region_neighbors` and
        :func:`deepret.graph_from_knn`.

    See Also
    --------
    knn_graph : the same graph over any descriptors.

    Examples
    --------
    >>> import numpy as np, deepret
    >>> acts = [np.random.default_rng(i).random((8, 6, 6), dtype=np.float32) for i in range(4)]
    >>> W = deepret.region_graph(deepret.RegionSet.from_activations(acts), k=3)
    >>> W.shape[0] == W.shape[1]
    True
    """
    scores, ids = region_neighbors(region_set, k, same_image, progress=progress, num_threads=num_threads)
    return graph_from_knn(scores, ids, gamma=gamma, mutual=mutual, num_threads=num_threads)
