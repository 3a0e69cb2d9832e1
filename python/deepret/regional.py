"""Regional diffusion (Iscen et al., CVPR 2017, "diffusion on region
manifolds"): every region of a RegionSet is a graph node; a query with
several regions marks, for each of them, its ``query_k`` nearest database
regions in y; one batched CG solves all queries; region scores are pooled
into image scores.

For query q with region descriptors v_j:
y^q = Σ_j Σ_{l in kNN(v_j)} max(0, <v_j, v_l>)^gamma e_l, (I - alpha W) f^q = y^q,
score(q, m) = Σ_{i in R(m)} f^q_i (``pooling="sum"``) or max_{i in R(m)} f^q_i
("max").
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from . import _arrays, _backend
from .diffusion import ConvergenceWarning, _check_alpha, _top, diffuse
from .graph import _check_gamma
from .knn import knn
from .region_graph import _check_region_set, region_graph
from .regionset import RegionSet
from ._typing import Array, ArrayInput

__all__ = ["RegionalDiffusionIndex"]

_POOLING = {"sum": 0, "max": 1}


class RegionalDiffusionIndex:
    """Diffusion search over the regions of a collection, images ranked.

    Parameters
    ----------
    region_set : RegionSet
        The database regions (nodes of the graph).
    k : int
        Region graph neighbours (200 as in the reference code; capped at the
        number of candidates).
    gamma, alpha, mutual
        As in :class:`deepret.DiffusionIndex`.
    same_image : bool
        Whether regions of one image may link. Default True here, as in the
        reference regional-diffusion code: scores are pooled per image anyway,
        and links inside an image only spread a matched region's score over
        its own image (for centrality, where they inflate the measure,
        :class:`deepret.ObjectSaliency` defaults to False).
    query_k : int, keyword-only
        Database regions marked in y per query region (default 10).
    pooling : {"sum", "max"}, keyword-only
        Region scores to image scores.
    tol, maxiter : keyword-only
        CG stopping (``last_info`` keeps the outcome).
    progress, num_threads : keyword-only

    Raises
    ------
    ValueError, TypeError
        A parameter out of range; a region set of fewer than 2 regions.

    See Also
    --------
    DiffusionIndex : diffusion over global descriptors, one node per image.
    region_graph, RegionSet

    Examples
    --------
    >>> import numpy as np, deepret
    >>> acts = [np.random.default_rng(i).random((8, 6, 6), dtype=np.float32) for i in range(6)]
    >>> rs = deepret.RegionSet.from_activations(acts)
    >>> index = deepret.RegionalDiffusionIndex(rs, k=5)
    >>> scores, images = index.search(rs, topk=3)
    >>> images.shape
    (6, 3)
    """

    def __init__(self, region_set, k=200, gamma=3.0, alpha=0.99, mutual=True, same_image=True, *,
                 query_k=10, pooling="sum", tol=1e-6, maxiter=20, progress=False, num_threads=None):
        self.region_set = _check_region_set(region_set)
        if pooling not in _POOLING:
            raise ValueError(f"pooling must be 'sum' or 'max', got {pooling!r}")
        self.pooling = pooling
        self.gamma = _check_gamma(gamma)
        self.alpha = _check_alpha(alpha)
        self.query_k = _arrays.positive_int("query_k", query_k)
        self.tol, self.maxiter = float(tol), _arrays.positive_int("maxiter", maxiter)
        _backend.threads_arg(num_threads)
        self.num_threads = num_threads
        self.W = region_graph(region_set, k, self.gamma, mutual, same_image, progress=progress,
                              num_threads=num_threads)
        self._x = region_set.float32_descriptors()
        self.last_info = None

    @property
    def nbytes(self) -> int:
        """Memory held by the index: region descriptors and the graph."""
        return int(self._x.nbytes + self.W.data.nbytes + self.W.indices.nbytes + self.W.indptr.nbytes)

    def _query_regions(self, queries):
        """(J, C) float32 region descriptors and (nq + 1,) offsets of the queries."""
        c = self._x.shape[1]
        if isinstance(queries, RegionSet):
            desc, counts = queries.float32_descriptors(), queries.counts
        else:
            items = [queries] if not isinstance(queries, (list, tuple)) else list(queries)
            if not items:
                raise ValueError("queries is an empty sequence")
            arrays = []
            for i, q in enumerate(items):
                q = np.asarray(q)
                if q.ndim == 1:
                    q = q[None]
                if q.ndim != 2 or q.shape[0] == 0:
                    raise ValueError(f"queries[{i}] must be (regions, {c}) region descriptors, got shape {q.shape}")
                arrays.append(q)
            counts = np.array([len(q) for q in arrays])
            desc = np.concatenate(arrays)
            if desc.dtype.kind not in "biuf":
                raise TypeError(f"queries must be real, got dtype {desc.dtype}")
            desc = np.ascontiguousarray(desc, dtype=np.float32)
        if desc.shape[1] != c:
            raise ValueError(f"queries have {desc.shape[1]} channels but the database regions have {c}")
        if not np.isfinite(desc).all():
            raise ValueError("queries contain NaN or infinity")
        return desc, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def search(self, queries: RegionSet | ArrayInput | Sequence[ArrayInput], topk: int = 100) -> tuple[Array, Array]:
        """Rank database images for each query.

        Parameters
        ----------
        queries : RegionSet, (J, C) array (one query's regions) or a list of them
        topk : int

        Returns
        -------
        scores : (nq, topk) float
            Pooled diffusion scores, best first.
        images : (nq, topk) int64
            Database image ids (ties by the smaller id).

        Raises
        ------
        ValueError
            topk larger than the database, queries of another dimension,
            empty or non-finite queries.
        """
        topk = _arrays.positive_int("topk", topk)
        rs = self.region_set
        if topk > rs.n_images:
            raise ValueError(f"topk ({topk}) is larger than the number of database images ({rs.n_images})")
        desc, qoff = self._query_regions(queries)
        nq, kq, n = len(qoff) - 1, min(self.query_k, len(self._x)), len(self._x)
        scores, near = knn(self._x, desc, k=kq, num_threads=self.num_threads)
        w = np.maximum(scores.astype(np.float64), 0.0) ** self.gamma
        owner = np.repeat(np.arange(nq), np.diff(qoff))
        y = sp.csc_array((w.ravel(), (near.ravel(), np.repeat(owner, kq))), shape=(n, nq))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            f, self.last_info = diffuse(self.W, y.toarray().astype(np.float32), self.alpha, self.tol,
                                        self.maxiter, return_info=True, num_threads=self.num_threads)
        pooled = np.empty((rs.n_images, nq), dtype=f.dtype)
        _backend._core.segment_reduce(np.ascontiguousarray(f), None, rs.offsets, _POOLING[self.pooling], False,
                                      pooled, _backend.threads_arg(self.num_threads))
        return _top(pooled, topk, self.num_threads)
