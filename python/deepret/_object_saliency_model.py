"""The object-saliency model of a collection (ObjectSaliency): the region
graph of a RegionSet, its global and local centralities, and the OS maps and
OS.EGM descriptors of database and new images. Reached as
deepret.ObjectSaliency and deepret.objects.ObjectSaliency; the definitions, as
formulas, are deepret.objects' docstring (and docs/objects.md)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import _arrays, _backend
from .diffusion import ConvergenceWarning, _check_alpha, diffuse, katz
from .graph import _check_gamma
from .knn import knn
from .objects import CENTRALITIES, COVERS, READOUTS, _readout, _rows_of, object_saliency
from .regions import _check_params
from .region_graph import _check_region_set, _choice, region_graph
from .regionset import RegionSet, count_images, extract, image_batches, is_single, shape_like
from .saliency import feature_saliency
from ._typing import Array, ArrayInput


class ObjectSaliency:
    """Object saliency fitted on a collection's regions; describes any image.

    Parameters
    ----------
    k, gamma, mutual, same_image
        The region graph (see :func:`region_graph`; k = 200 as in the
        reference code, capped at the number of candidates).
    alpha : float in (0, 1)
        Diffusion: L_alpha = (I - alpha W) / (1 - alpha).
    centrality : {"both", "global", "local", "constant"}, keyword-only
        Region weight c_i = f_i g_i, g_i, f_i or 1 (the control that shows
        what the graph adds). See the module docstring for f and g.
    cover : {"box", "all"}, keyword-only
        N_p: the image's regions whose box holds p, or all of them.
    readout : {"sum", "weighted", "heaviest", "spatial"}, keyword-only
        How ``describe`` turns an OS map into a descriptor.
    query_k : int, keyword-only
        Database regions each region of a new image attaches to.
    sigma, threshold, power, lam, tau, max_iter, box_scale : keyword-only
        EGM on the OS maps (the paper's OS settings by default: sigma 2,
        threshold 0, power 2).
    tol, maxiter : keyword-only
        CG stopping, as in :func:`deepret.diffuse` (``cg_info_`` keeps the
        outcome of the last solves).
    batch_size : int, keyword-only
        Right-hand sides per CG call, and at most that many images per
        engine call (batches also stop at 32 MB of float32 activations).

    Attributes
    ----------
    region_set_ : RegionSet
        After :meth:`fit`: the database regions.
    W_ : scipy.sparse.csr_array (K, K)
        After :meth:`fit`: the region graph.
    global_ : (K,) float64 array
        After :meth:`fit`: the global centrality g of each database region.
    local_ : (K,) float64 array
        After :meth:`fit`: the local centrality f of each database region in
        its own image's local search.

    Raises
    ------
    ValueError, TypeError
        A parameter out of range or of the wrong type (checked here, before
        any work).

    See Also
    --------
    RegionSet, object_saliency, saliency_pool, describe

    Notes
    -----
    The definitions are the documentation's "Object saliency" page
    (docs/objects.md).

    Examples
    --------
    >>> import numpy as np, deepret
    >>> acts = [np.random.default_rng(i).random((8, 6, 7), dtype=np.float32) for i in range(5)]
    >>> os_ = deepret.ObjectSaliency(k=5).fit(deepret.RegionSet.from_activations(acts))
    >>> os_.describe(acts).shape
    (5, 8)
    """

    def __init__(self, k=200, gamma=3.0, alpha=0.99, mutual=True, same_image=False, *, centrality="both",
                 cover="box", readout="sum", query_k=10, sigma=2.0, threshold=0.0, power=2.0, lam=0.0,
                 tau=0.55, max_iter=20, box_scale=2.0, tol=1e-6, maxiter=20, batch_size=256,
                 progress=False, num_threads=None):
        self.k = _arrays.positive_int("k", k)
        self.gamma = _check_gamma(gamma)
        self.alpha = _check_alpha(alpha)
        self.mutual, self.same_image = bool(mutual), bool(same_image)
        self.centrality = _choice("centrality", centrality, CENTRALITIES)
        self.cover = _choice("cover", cover, COVERS)
        self.readout = _choice("readout", readout, READOUTS)
        self.query_k = _arrays.positive_int("query_k", query_k)
        self.egm_params = dict(zip(("sigma", "lam", "tau", "threshold", "power", "max_iter", "box_scale"),
                                   _check_params(sigma, lam, tau, threshold, power, max_iter, box_scale)))
        self.tol = float(tol)
        if not self.tol > 0:
            raise ValueError(f"tol must be positive, got {tol!r}")
        self.maxiter = _arrays.positive_int("maxiter", maxiter)
        self.batch_size = _arrays.positive_int("batch_size", batch_size)
        self.progress = bool(progress)
        _backend.threads_arg(num_threads)
        self.num_threads = num_threads

    # ----------------------------------------------------------------- fit
    def fit(self, region_set: RegionSet) -> ObjectSaliency:
        """Build the region graph and both centralities of the database regions.

        Parameters
        ----------
        region_set : RegionSet
            At least 2 regions, of at least 2 images (``same_image=False``).

        Returns
        -------
        self

        Raises
        ------
        TypeError
            Not a RegionSet.
        ValueError
            Too few regions, or descriptors all zero.
        """
        rs = _check_region_set(region_set)
        if not rs.descriptors.any():
            raise ValueError("region_set's descriptors are all zero (all-zero activations)")
        self.region_set_ = rs
        self.W_ = region_graph(rs, self.k, self.gamma, self.mutual, self.same_image,
                               progress=self.progress, num_threads=self.num_threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.global_ = np.asarray(katz(self.W_, self.alpha, self.tol, self.maxiter,
                                           num_threads=self.num_threads), dtype=np.float64)
        self.local_ = np.empty(len(rs), dtype=np.float64)
        owner = rs.image
        for start, stop, f in self._solve(lambda lo, hi: self._indicator(lo, hi)):
            rows = slice(rs.offsets[start], rs.offsets[stop])
            self.local_[rows] = f[np.arange(rows.start, rows.stop), owner[rows] - start]
        return self

    # --------------------------------------------------------- persistence
    _SETTINGS = ("k", "gamma", "alpha", "mutual", "same_image", "centrality", "cover", "readout", "query_k",
                 "tol", "maxiter", "batch_size")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted state (settings, region set, graph, centralities)
        to a .npz file (plain arrays, no pickles); :meth:`load` reads it.

        Raises
        ------
        ValueError
            Not fitted.
        """
        self._check_fitted()
        from .regionset import _FIELDS

        rs, W = self.region_set_, self.W_
        arrays = {f"rs_{f}": getattr(rs, f) for f in _FIELDS}
        arrays.update({f"rs_param_{k}": np.asarray(v) for k, v in rs.params.items()})
        arrays.update({f"set_{k}": np.asarray(getattr(self, k)) for k in self._SETTINGS})
        arrays.update({f"egm_{k}": np.asarray(v) for k, v in self.egm_params.items()})
        arrays.update(W_data=W.data, W_indices=W.indices, W_indptr=W.indptr, global_=self.global_,
                      local_=self.local_)
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ObjectSaliency:
        """Read a file written by :meth:`save`; the result describes images at once."""
        from .regionset import _FIELDS

        with np.load(path, allow_pickle=False) as z:
            if "W_data" not in z.files:
                raise ValueError(f"{path} is not an ObjectSaliency file")
            settings = {k: z[f"set_{k}"].item() for k in cls._SETTINGS}
            egm_settings = {k[4:]: z[k].item() for k in z.files if k.startswith("egm_")}
            rs = RegionSet(**{f: z[f"rs_{f}"] for f in _FIELDS},
                           params={k[9:]: z[k].item() for k in z.files if k.startswith("rs_param_")})
            n = len(rs)
            W = sp.csr_array((z["W_data"], z["W_indices"], z["W_indptr"]), shape=(n, n))
            g, f = z["global_"], z["local_"]
        k, gamma, alpha, mutual, same = (settings.pop(name) for name in ("k", "gamma", "alpha", "mutual",
                                                                        "same_image"))
        out = cls(k, gamma, alpha, mutual, same, **settings, **egm_settings)
        out.region_set_, out.W_, out.global_, out.local_ = rs, W, g, f
        return out

    def _indicator(self, lo, hi):
        rs = self.region_set_
        y = np.zeros((len(rs), hi - lo), dtype=np.float32)
        rows = np.arange(rs.offsets[lo], rs.offsets[hi])
        y[rows, rs.image[rows] - lo] = 1.0
        return y

    def _solve(self, columns_of, total=None):
        """Yield (lo, hi, f) for right-hand sides built by columns_of(lo, hi),
        ``batch_size`` columns per batched CG call."""
        total = self.region_set_.n_images if total is None else total
        infos = []
        for lo in range(0, total, self.batch_size):
            hi = min(lo + self.batch_size, total)
            y = columns_of(lo, hi)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                f, info = diffuse(self.W_, (1.0 - self.alpha) * y, self.alpha, self.tol, self.maxiter,
                                  return_info=True, num_threads=self.num_threads)
            infos.append(info)
            yield lo, hi, f
        self.cg_info_ = infos

    def _check_fitted(self):
        if not hasattr(self, "W_"):
            raise ValueError("this ObjectSaliency is not fitted yet: call fit(region_set) first")

    # ------------------------------------------------------ region weights
    def _weights(self, f, g):
        if self.centrality == "both":
            return f * g
        if self.centrality == "global":
            return g
        if self.centrality == "local":
            return f
        return np.ones_like(g)

    def _database_table(self, images, shapes):
        """Region table (descriptors, boxes, c, offsets) of database images."""
        rs = self.region_set_
        images = np.asarray(images)
        if images.ndim != 1 or images.dtype.kind not in "iu" or len(images) != len(shapes):
            raise ValueError(f"images must be {len(shapes)} database image ids (one per map), got {images!r}")
        if len(images) and (images.min() < 0 or images.max() >= rs.n_images):
            raise ValueError(f"images must lie in [0, {rs.n_images}), got {images!r}")
        images = images.astype(np.int64)
        if not (rs.shapes[images] == shapes).all():
            bad = int(np.flatnonzero((rs.shapes[images] != shapes).any(axis=1))[0])
            raise ValueError(f"map {bad} has shape {tuple(shapes[bad])} but database image {images[bad]} "
                             f"has {tuple(rs.shapes[images[bad]])}")
        rows, counts = _rows_of(rs.offsets, images)
        c = self._weights(self.local_[rows], self.global_[rows])
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return rs.float32_descriptors()[rows], rs.boxes[rows], c, offsets

    def _query_table(self, acts):
        """Region table of new images: their FS.EGM regions, attached to the
        graph through their query_k nearest database regions."""
        rs = self.region_set_
        batches, n, channels, _, _ = image_batches(acts, "acts", self.batch_size)
        if channels != rs.channels:
            raise ValueError(f"acts have {channels} channels but the fitted region set has {rs.channels}")
        parts = []
        for ids, batch in batches:
            regions, _, desc = extract(batch, rs.params, self.num_threads)
            parts.append((np.repeat(ids, regions.counts), regions.boxes, desc.astype(np.float32, copy=False)))
        owner = np.concatenate([p[0] for p in parts])
        order = np.argsort(owner, kind="stable")
        owner = owner[order]
        boxes = np.concatenate([p[1] for p in parts])[order]
        desc = np.ascontiguousarray(np.concatenate([p[2] for p in parts])[order])
        kq = min(self.query_k, len(rs))
        scores, near = knn(rs.float32_descriptors(), desc, k=kq, num_threads=self.num_threads)
        w = np.maximum(scores.astype(np.float64), 0.0) ** self.gamma  # (J, kq)
        total = w.sum(axis=1, keepdims=True)
        wbar = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
        g = (wbar * self.global_[near]).sum(axis=1)
        if self.centrality in ("both", "local"):
            f = np.zeros(len(desc))
            qoff = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))]).astype(np.int64)
            y_all = sp.csc_array((w.ravel(), (near.ravel(), np.repeat(owner, kq))), shape=(len(rs), n))
            for lo, hi, fq in self._solve(lambda lo, hi: y_all[:, lo:hi].toarray().astype(np.float32), n):
                rows = np.arange(qoff[lo], qoff[hi])
                f[rows] = (wbar[rows] * fq[near[rows], (owner[rows] - lo)[:, None]]).sum(axis=1)
        else:
            f = np.ones_like(g)
        offsets = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))]).astype(np.int64)
        return desc, boxes, self._weights(f, g), offsets

    def _maps(self, acts, images):
        """Yield (image ids, batch, OS maps) over the input's batches (the batch buffer is reused)."""
        self._check_fitted()
        batches, n, channels, shapes, _ = image_batches(acts, "acts", self.batch_size)
        if channels != self.region_set_.channels:
            raise ValueError(f"acts have {channels} channels but the fitted region set has "
                             f"{self.region_set_.channels}")
        table = self._query_table(acts) if images is None else self._database_table(images, shapes)
        desc, boxes, c, offsets = table
        for ids, batch in batches:
            rows, counts = _rows_of(offsets, ids)
            # image_batches checked the batch while loading it
            fs = feature_saliency(batch, num_threads=self.num_threads, check_input=False)
            maps = object_saliency(batch, desc[rows], boxes[rows], c[rows], counts=counts, fs=fs,
                                   cover=self.cover, num_threads=self.num_threads, check_input=False)
            yield ids, batch, maps

    # ------------------------------------------------------------- outputs
    def saliency(self, acts: ArrayInput | Sequence[ArrayInput], *, images: ArrayInput | None = None) -> Any:
        """Object-saliency maps of images.

        Parameters
        ----------
        acts : (C, H, W), (B, C, H, W) or a sequence of (C, H, W)
            Activations with the fitted region set's channels.
        images : (B,) ints, keyword-only
            When the maps are database images: their ids in the region set
            (their own regions and exact local centralities are used).
            Default: new images (regions found anew, attached to the graph).

        Returns
        -------
        (H, W) for one image, (B, H, W) for a batch, a list for a sequence.

        Raises
        ------
        ValueError
            Not fitted, channels unlike the database's, bad activations,
            image ids out of range or of another shape.
        """
        out = [None] * count_images(acts)
        for ids, _, maps in self._maps(acts, images):
            for i, m in zip(ids, maps):
                out[i] = m
        return shape_like(acts, out)

    def describe(self, acts: ArrayInput | Sequence[ArrayInput], *, images: ArrayInput | None = None,
                 readout: str | None = None) -> Array:
        """OS.EGM descriptors: EGM on each OS map, regional max pooling, the read-out.

        Parameters
        ----------
        acts : (C, H, W), (B, C, H, W) or a sequence of (C, H, W)
            Activations with the fitted region set's channels.
        images : (B,) ints, keyword-only
            As in :meth:`saliency`.
        readout : {"sum", "weighted", "heaviest", "spatial"}, keyword-only
            Overrides the constructor's.

        Returns
        -------
        (B, C) array (or (C,) for one image), L2-normalized, float32

        Raises
        ------
        ValueError
            As :meth:`saliency`; an unknown readout.
        """
        readout = self.readout if readout is None else _choice("readout", readout, READOUTS)
        out = None
        for ids, batch, maps in self._maps(acts, images):
            rows = _readout(batch, maps, readout, self.egm_params, self.num_threads, check_input=False)
            if out is None:
                out = np.empty((count_images(acts), rows.shape[1]), dtype=rows.dtype)
            out[ids] = rows
        return out[0] if is_single(acts) else out  # type: ignore[index,return-value]  # set by the first batch
