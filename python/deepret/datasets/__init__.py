"""Small real retrieval data shipped inside the package (no network, no pickles).

- :func:`load_oxford5k`: the Oxford5k global descriptors (5063, 128) float32
  with the standard ground truth and the query rows.
- :func:`load_ground_truth`: the ground truth alone of ``"oxford5k"``,
  ``"paris6k"``, ``"roxford5k"`` or ``"rparis6k"`` (the revisited sets have
  ``easy``/``hard``/``junk`` per query, for
  :func:`deepret.evaluate.compute_map_revisited`).

The files live in ``deepret/datasets/data/`` and are read with
:mod:`importlib.resources`, so they work from an installed wheel. Each call
returns fresh arrays: modifying them does not affect later calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["GROUND_TRUTHS", "RetrievalData", "load_ground_truth", "load_oxford5k"]

#: The names :func:`load_ground_truth` accepts.
GROUND_TRUTHS = ("oxford5k", "paris6k", "roxford5k", "rparis6k")
_ID_KEYS = ("ok", "junk", "easy", "hard")


@dataclass(frozen=True, eq=False)
class RetrievalData:
    """A retrieval dataset: ground truth, image names and (maybe) descriptors.

    Attributes
    ----------
    name : str
        ``"oxford5k"``, ...
    gnd : list of n_queries dicts
        Per query: ``ok`` and ``junk`` (Oxford5k, Paris6k) or ``easy``,
        ``hard`` and ``junk`` (ROxford5k, RParis6k), each an int64 array of
        rows of ``imlist``; ``bbx``: the query box (x1, y1, x2, y2) in
        original image pixels, float64 (4,).
    imlist : list of n_images str
        Database image names (rows of ``descriptors``).
    qimlist : list of n_queries str
        Query image names.
    query_indices : (n_queries,) int64 array or None
        Row of each query in ``imlist`` (the reference ``qidx``); None for the
        revisited sets, whose queries are separate images.
    descriptors : (n_images, d) float32 array or None
        One global descriptor per database image, as shipped (not
        L2-normalized); None when only the ground truth is shipped.

    See Also
    --------
    load_oxford5k, load_ground_truth

    Examples
    --------
    >>> from deepret import datasets
    >>> data = datasets.load_oxford5k()
    >>> data
    RetrievalData(name='oxford5k', n_images=5063, n_queries=55, descriptors=(5063, 128) float32)
    >>> data.queries.shape, sorted(data.gnd[0])
    ((55, 128), ['bbx', 'junk', 'ok'])
    """

    name: str
    gnd: list[dict[str, Any]]
    imlist: list[str]
    qimlist: list[str]
    query_indices: Optional[np.ndarray] = None
    descriptors: Optional[np.ndarray] = None

    @property
    def queries(self) -> np.ndarray:
        """(n_queries, d) descriptors of the query images (``descriptors[query_indices]``)."""
        if self.descriptors is None or self.query_indices is None:
            raise ValueError(f"{self.name} ships no query descriptors")
        return self.descriptors[self.query_indices]

    def __repr__(self) -> str:
        desc = "None" if self.descriptors is None else \
            f"{self.descriptors.shape} {self.descriptors.dtype}"
        return (f"RetrievalData(name={self.name!r}, n_images={len(self.imlist)}, "
                f"n_queries={len(self.qimlist)}, descriptors={desc})")


def _resource(name: str, filename: str) -> Traversable:
    return resources.files(__name__) / "data" / name / filename


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in GROUND_TRUTHS:
        raise ValueError(f"name must be one of {GROUND_TRUTHS}, got {name!r}")
    return name


def _gnd_entry(entry: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if key in _ID_KEYS:
            out[key] = np.asarray(value, dtype=np.int64).reshape(-1)
        elif key == "bbx":
            out[key] = None if value is None else np.asarray(value, dtype=np.float64)
        else:
            out[key] = value
    return out


def load_ground_truth(name: str) -> RetrievalData:
    """The ground truth of a standard retrieval dataset, without descriptors.

    Parameters
    ----------
    name : {"oxford5k", "paris6k", "roxford5k", "rparis6k"}
        Oxford5k (5063 images, 55 queries) and Paris6k (6392, 55) have ``ok``
        and ``junk`` per query and ``query_indices``; the revisited ROxford5k
        (4993, 70) and RParis6k (6322, 70) have ``easy``, ``hard`` and
        ``junk`` and no ``query_indices``.

    Returns
    -------
    RetrievalData
        With ``descriptors=None``.

    Raises
    ------
    ValueError
        An unknown name.
    TypeError
        name not a str.

    See Also
    --------
    deepret.evaluate.compute_map_revisited : evaluates against the revisited sets.

    Examples
    --------
    >>> from deepret import datasets
    >>> rox = datasets.load_ground_truth("roxford5k")
    >>> len(rox.imlist), len(rox.gnd), sorted(rox.gnd[0])
    (4993, 70, ['bbx', 'easy', 'hard', 'junk'])
    """
    name = _check_name(name)
    raw = json.loads(_resource(name, "gnd.json").read_text(encoding="utf-8"))
    qidx = raw.get("qidx")
    return RetrievalData(
        name=name,
        gnd=[_gnd_entry(e) for e in raw["gnd"]],
        imlist=list(raw["imlist"]),
        qimlist=list(raw["qimlist"]),
        query_indices=None if qidx is None else np.asarray(qidx, dtype=np.int64),
    )


def load_oxford5k() -> RetrievalData:
    """Oxford5k: descriptors, ground truth and query rows.

    Returns
    -------
    RetrievalData
        ``descriptors``: (5063, 128) float32, one AlexNet-style fc7 descriptor
        reduced to 128-D by PCA per image (the LOPQ project's example data),
        rows in ``imlist`` order, not L2-normalized (normalize before cosine
        search); ``gnd``: 55 dicts with ``ok``, ``junk`` (int64 rows of
        ``imlist``) and ``bbx``; ``query_indices``: (55,) int64, the row of
        each query image in ``descriptors``; ``imlist``, ``qimlist``: names.

    See Also
    --------
    load_ground_truth, deepret.evaluate.compute_map

    Examples
    --------
    >>> import numpy as np
    >>> from deepret import datasets, evaluate
    >>> ds = datasets.load_oxford5k()
    >>> x = ds.descriptors / np.linalg.norm(ds.descriptors, axis=1, keepdims=True)
    >>> ranks = np.argsort(-(x @ x[ds.query_indices].T), axis=0, kind="stable")
    >>> round(evaluate.compute_map(ranks, ds.gnd).map, 3)      # cosine similarity
    0.403
    """
    base = load_ground_truth("oxford5k")
    with _resource("oxford5k", "fc7pca128.npy").open("rb") as f:
        descriptors = np.load(f, allow_pickle=False)
    return RetrievalData(name=base.name, gnd=base.gnd, imlist=base.imlist,
                         qimlist=base.qimlist, query_indices=base.query_indices,
                         descriptors=descriptors)
