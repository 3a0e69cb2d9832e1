"""PCA whitening learned without labels on a descriptor set, as retrieval
codes such as cirtorch (``pcawhitenlearn`` / ``whitenapply``) do: center by
the mean m, project on the eigenvectors of the covariance scaled by
lambda^-1/2, keep the leading ``n_components``, L2-normalize.

Optional shrinkage of the covariance towards a multiple of the identity,
C_s = (1 - s) C + s (tr C / d) I, tempers the amplification of the weakest
directions (s = 0: plain whitening; s = 1: a PCA rotation with a uniform
scale). The numerics are BLAS/LAPACK calls (a covariance product and one
symmetric eigendecomposition, both d x d); numpy in, numpy out, CuPy in,
CuPy out.
"""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

from . import _arrays, _backend
from ._typing import Array, ArrayInput

__all__ = ["PCAWhitening"]


def _module(*arrays):
    return _backend.array_module("PCAWhitening", *arrays, engine=False)  # CuPy's own operations only


class PCAWhitening:
    """PCA whitening (fit on descriptors, then transform and L2-normalize).

    Parameters
    ----------
    n_components : int, optional
        Keep this many leading whitened dimensions (default: all d).
    shrinkage : float in [0, 1]
        Shrink the covariance towards (tr C / d) I before whitening
        (default 0: cirtorch's whitening).
    eps : float
        Added to every eigenvalue before the inverse square root (guards
        rank-deficient sets; default 1e-12 relative to the largest).

    Attributes
    ----------
    mean_ : (d,) array
    projection_ : (n_components, d) array
        Rows: eigenvectors (largest eigenvalue first, each signed so that its
        largest-magnitude entry is positive) scaled by (lambda + eps)^-1/2.
    eigenvalues_ : (d,) array, descending

    Raises
    ------
    ValueError
        Bad parameters; fit on fewer than 2 rows or non-finite data;
        transform before fit or with the wrong d.

    See Also
    --------
    alpha_qe, DiffusionIndex

    See Also
    --------
    sklearn.decomposition.PCA : ``PCA(n_components, whiten=True)`` gives the
        same projection up to the signs (and without the L2 normalization).
    alpha_qe, DiffusionIndex

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, deepret
    >>> x = np.random.default_rng(0).standard_normal((200, 8)) * np.arange(1, 9)
    >>> w = deepret.PCAWhitening(n_components=4).fit(x)
    >>> xw = w.transform(x)                       # (n, 4), unit rows
    >>> xw.shape, bool(np.allclose(np.linalg.norm(xw, axis=1), 1, atol=1e-5))
    ((200, 4), True)
    >>> P = w.projection_                          # whitened: P C P^T = I
    >>> bool(np.allclose(P @ np.cov(x.T, bias=True) @ P.T, np.eye(4), atol=1e-8))
    True
    >>> path = os.path.join(tempfile.mkdtemp(), "white.npz")
    >>> w.save(path)
    >>> bool(np.allclose(deepret.PCAWhitening.load(path).transform(x), xw))
    True
    """

    n_components: int | None
    shrinkage: float
    eps: float
    mean_: Any          # (d,) array once fitted, else None
    projection_: Any    # (n_components, d) array once fitted, else None
    eigenvalues_: Any   # (d,) array once fitted, else None

    def __init__(self, n_components: int | None = None, *, shrinkage: float = 0.0, eps: float = 1e-12) -> None:
        if n_components is not None:
            n_components = _arrays.positive_int("n_components", n_components)
        if isinstance(shrinkage, bool) or not isinstance(shrinkage, numbers.Real) \
                or not 0.0 <= float(shrinkage) <= 1.0:
            raise ValueError(f"shrinkage must be a number in [0, 1], got {shrinkage!r}")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not float(eps) >= 0:
            raise ValueError(f"eps must be a number >= 0, got {eps!r}")
        self.n_components = n_components
        self.shrinkage = float(shrinkage)
        self.eps = float(eps)
        self.mean_ = self.projection_ = self.eigenvalues_ = None

    def fit(self, x: ArrayInput) -> PCAWhitening:
        """Learn the mean and the whitening projection from x (n, d), n >= 2.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Fewer than 2 rows, non-finite values, n_components > d, zero variance.
        TypeError
            A dtype other than float32/float64.
        """
        xp = _module(x)
        x = xp.asarray(x)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"x must be 2-D (n, d) with n >= 2, got shape {tuple(x.shape)}")
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"x must be float32 or float64, got {x.dtype}")
        if not bool(xp.isfinite(x).all()):
            raise ValueError("x contains NaN or infinity")
        d = x.shape[1]
        if self.n_components is not None and self.n_components > d:
            raise ValueError(f"n_components ({self.n_components}) is larger than d ({d})")
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=0)
        centred = x64 - mean
        cov = centred.T @ centred / x.shape[0]
        cov = (cov + cov.T) / 2
        if self.shrinkage:
            cov = (1 - self.shrinkage) * cov + self.shrinkage * (xp.trace(cov) / d) * xp.eye(d)
        values, vectors = xp.linalg.eigh(cov)
        values, vectors = values[::-1], vectors[:, ::-1]
        peak = xp.argmax(xp.abs(vectors), axis=0)
        signs = xp.sign(vectors[peak, xp.arange(d)])
        vectors = vectors * xp.where(signs == 0, 1.0, signs)
        values = xp.maximum(values, 0.0)
        floor = self.eps * float(values[0]) if float(values[0]) > 0 else self.eps
        keep = d if self.n_components is None else self.n_components
        self.eigenvalues_ = values
        self.mean_ = mean.astype(x.dtype)
        self.projection_ = ((vectors[:, :keep] / xp.sqrt(values[:keep] + floor)).T).astype(x.dtype)
        if not bool(xp.isfinite(self.projection_).all()):
            raise ValueError("x has (numerically) zero variance; raise eps or shrinkage")
        return self

    def transform(self, x: ArrayInput) -> Array:
        """Whiten x (n, d) or (d,): L2N(P (x - m)), ``v / (||v|| + 1e-6)`` as in cirtorch."""
        if self.projection_ is None:
            raise ValueError("PCAWhitening.transform called before fit (or load)")
        xp = _module(x, self.projection_)
        x = xp.asarray(x)
        single = x.ndim == 1
        rows = x[None, :] if single else x
        d = self.projection_.shape[1]
        if rows.ndim != 2 or rows.shape[1] != d:
            raise ValueError(f"x must be (n, {d}) or ({d},), got shape {tuple(x.shape)}")
        if rows.dtype.kind != "f":
            raise TypeError(f"x must be float32 or float64, got {rows.dtype}")
        out = (rows - self.mean_) @ self.projection_.T
        out /= xp.linalg.norm(out, axis=1, keepdims=True) + 1e-6
        return out[0] if single else out

    def fit_transform(self, x: ArrayInput) -> Array:
        """fit(x).transform(x)."""
        return self.fit(x).transform(x)

    def _state(self) -> dict[str, Any]:
        """The fitted arrays and parameters as numpy values (what save writes)."""
        if self.projection_ is None:
            raise ValueError("PCAWhitening.save called before fit")
        host = (lambda a: a.get()) if _arrays.is_cupy_array(self.projection_) else np.asarray
        return {"mean": host(self.mean_), "projection": host(self.projection_),
                "eigenvalues": host(self.eigenvalues_), "shrinkage": self.shrinkage,
                "eps": self.eps,
                "n_components": -1 if self.n_components is None else self.n_components}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> PCAWhitening:
        n_components = int(state["n_components"])
        obj = cls(None if n_components < 0 else n_components, shrinkage=float(state["shrinkage"]),
                  eps=float(state["eps"]))
        obj.mean_, obj.projection_ = state["mean"], state["projection"]
        obj.eigenvalues_ = state["eigenvalues"]
        return obj

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted whitening to a .npz file (numpy arrays)."""
        np.savez(path, **self._state())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PCAWhitening:
        """A PCAWhitening from a file written by save (numpy arrays)."""
        with np.load(path, allow_pickle=False) as f:
            return cls._from_state({name: f[name] for name in f.files})


def index_whitening(whitening: PCAWhitening | None, x: Any) -> tuple[PCAWhitening | None, Any]:
    """The whitening an index applies, and x whitened by it.

    ``whitening``: None (no whitening: x unchanged), a fitted PCAWhitening
    (applied as it is), or an unfitted one (fitted on x first: learned on the
    database itself). Queries of the index are then whitened by the same one.
    """
    if whitening is None:
        return None, x
    if not isinstance(whitening, PCAWhitening):
        raise TypeError(f"whitening must be a PCAWhitening or None, got {type(whitening).__name__}")
    if whitening.projection_ is None:
        whitening.fit(x)
    return whitening, whiten_as(whitening, x, x.dtype)


def whiten_as(whitening: PCAWhitening, a: Any, dtype: Any) -> Any:
    """whitening.transform(a) in the index's dtype: a new C-contiguous array
    on a's device (database rows at build time, queries at search time)."""
    return whitening.transform(a).astype(dtype, copy=False)
