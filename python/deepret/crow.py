"""CroW (Kalantidis, Mellina & Osindero, ECCVW 2016) and weighted sum
pooling with any spatial map (a CroW, FS or OS map) as weights.

CroW with its paper's alpha = beta = 2: spatial weights
s_p = sqrt(S_p / ||S||_2) with S_p = Σ_j a_jp (the summed activations);
channel weights b_j = log(Σ_i (q_i + eps) / (q_j + eps)), q_j the fraction
of positions where channel j is non-zero (sparse channels weigh more); the
descriptor L2N(b ⊙ Σ_p s_p a_p). (The paper's PCA whitening is a separate
step.) CuPy arrays run on the CUDA engine.
"""

from __future__ import annotations

import numpy as np

from . import _arrays, _backend
from .saliency import activations, raise_on_status
from ._typing import Array, ArrayInput

__all__ = ["crow", "crow_weights", "weighted_sum_pool"]


def _eps(eps):
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not np.isfinite(eps) \
            or eps <= 0:
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    return float(eps)


@_arrays.torch_interop
def crow_weights(a: ArrayInput, eps: float = 1e-6, *, num_threads: int | None = None) -> tuple[Array, Array]:
    """CroW's spatial and channel weights of non-negative activations.

    Spatial: s_p = sqrt(S_p / ||S||_2) with S_p = sum_j a_jp; channel:
    b_j = log(sum_i (q_i + eps) / (q_j + eps)), q_j the fraction of positions
    where channel j is non-zero.

    Parameters
    ----------
    a : (C, H, W) or (B, C, H, W) array_like, non-negative, finite
    eps : float > 0
    num_threads : int, optional, keyword-only

    Returns
    -------
    spatial : (H, W) or (B, H, W) array
    channel : (C,) or (B, C) array
        float32 (float64 for float64 input); CuPy for CuPy input.

    Raises
    ------
    ValueError
        Wrong ndim, negative or non-finite activations, eps <= 0.

    See Also
    --------
    crow : the descriptor from these weights.
    feature_saliency : the same channel weights, applied to a map.

    Examples
    --------
    >>> import numpy as np, deepret
    >>> a = np.zeros((2, 2, 2), np.float32); a[0] = 1; a[1, 0, 0] = 3
    >>> spatial, channel = deepret.crow_weights(a)
    >>> spatial.round(3)
    array([[0.958, 0.479],
           [0.479, 0.479]], dtype=float32)
    >>> channel.round(3)
    array([0.223, 1.609], dtype=float32)
    """
    eps = _eps(eps)
    xp = _backend.array_module("crow_weights", a)
    on_gpu = xp is not np
    x, single = activations(a, "a", xp)
    b, c, h, w = x.shape
    spatial = xp.empty((b, h * w), dtype=x.dtype)
    channel = xp.empty((b, c), dtype=x.dtype)
    if on_gpu:
        status = xp.zeros(1, dtype=xp.int32)
        flat = x.reshape(b, c, h * w)
        with _backend.cuda_call("crow_weights", flat) as call:
            call.core.crow_weights(flat, spatial, channel, status, eps=eps, stream=call.stream)
        raise_on_status(status, "a must be finite and non-negative (activations after a ReLU)")
    else:
        _backend._core.crow_weights(x.reshape(b, c, h * w), eps, spatial, channel,
                                    _backend.threads_arg(num_threads))
    spatial = spatial.reshape(b, h, w)
    return (spatial[0], channel[0]) if single else (spatial, channel)


@_arrays.torch_interop
def weighted_sum_pool(a: ArrayInput, weights: ArrayInput, *, channel_weights: ArrayInput | None = None,
                      normalize: bool = True, num_threads: int | None = None) -> Array:
    """Σ_p weights(p) a_p per channel, times channel_weights, L2-normalized.

    Parameters
    ----------
    a : (C, H, W) or (B, C, H, W) array_like, finite
    weights : (H, W) or (B, H, W) array_like
        Spatial weights, e.g. ``feature_saliency(a)`` or an OS map.
    channel_weights : (C,) or (B, C), optional, keyword-only
    normalize : bool, keyword-only

    num_threads : int, optional, keyword-only

    Returns
    -------
    (C,) or (B, C), float32 (float64 for float64 activations).

    Raises
    ------
    ValueError
        Shapes that do not match a's maps or channels; non-finite values.
    TypeError
        Non-real weights; CuPy and numpy inputs mixed.

    See Also
    --------
    numpy.einsum : ``einsum("chw,hw->c", a, weights)`` before the
        normalization.
    crow, saliency_pool

    Examples
    --------
    >>> import numpy as np, deepret
    >>> a = np.ones((2, 2, 2), np.float32); a[1, 0, 0] = 5
    >>> deepret.weighted_sum_pool(a, np.array([[1, 0], [0, 0]], np.float32), normalize=False)
    array([1., 5.], dtype=float32)
    >>> a = np.random.default_rng(0).random((4, 3, 5), dtype=np.float32)
    >>> d = deepret.weighted_sum_pool(a, deepret.feature_saliency(a))
    >>> d.shape
    (4,)
    """
    xp = _backend.array_module("weighted_sum_pool", a, weights, channel_weights)
    on_gpu = xp is not np
    x, single = activations(a, "a", xp)
    b, c, h, w = x.shape
    s = xp.asarray(weights)
    if s.dtype.kind not in "biuf":
        raise TypeError(f"weights must be real, got dtype {s.dtype}")
    if s.shape not in ((h, w), (b, h, w)) or (s.ndim == 2 and not single):
        raise ValueError(f"weights must be {'(' if single else f'({b}, '}{h}, {w}) like a's maps, got shape "
                         f"{tuple(s.shape)}")
    s = xp.ascontiguousarray(s.reshape(b, h * w), dtype=x.dtype)
    cw = None
    if channel_weights is not None:
        cw = xp.asarray(channel_weights)
        if cw.shape not in ((c,), (b, c)) or (cw.ndim == 1 and not single):
            raise ValueError(f"channel_weights must be ({c},) or ({b}, {c}), got shape {tuple(cw.shape)}")
        cw = xp.ascontiguousarray(cw.reshape(b, c), dtype=x.dtype)
    out = xp.empty((b, c), dtype=x.dtype)
    if on_gpu:
        status = xp.zeros(1, dtype=xp.int32)
        flat = x.reshape(b, c, h * w)
        with _backend.cuda_call("weighted_sum_pool", flat) as call:
            call.core.weighted_pool(flat, s, cw, out, status, normalize=bool(normalize), stream=call.stream)
        raise_on_status(status, "a, weights and channel_weights must be finite")
    else:
        _backend._core.weighted_pool(x.reshape(b, c, h * w), s, cw, out, bool(normalize),
                                     _backend.threads_arg(num_threads))
    return out[0] if single else out


@_arrays.torch_interop
def crow(a: ArrayInput, eps: float = 1e-6, *, num_threads: int | None = None) -> Array:
    """CroW descriptor(s): L2N(b ⊙ sum_p s_p a_p), CroW's weights of
    :func:`crow_weights` (Kalantidis et al. 2016, alpha = beta = 2).

    Parameters
    ----------
    a : (C, H, W) or (B, C, H, W) array_like, non-negative, finite
    eps : float > 0
    num_threads : int, optional, keyword-only

    Returns
    -------
    (C,) or (B, C) array, L2-normalized
        float32 (float64 for float64 input); CuPy for CuPy input.

    Raises
    ------
    ValueError
        Wrong ndim, negative or non-finite activations, eps <= 0.

    See Also
    --------
    crow_weights, weighted_sum_pool, describe

    Examples
    --------
    >>> import numpy as np, deepret
    >>> deepret.crow(np.ones((3, 2, 2), np.float32)).round(3)
    array([0.577, 0.577, 0.577], dtype=float32)
    """
    spatial, channel = crow_weights(a, eps, num_threads=num_threads)
    return weighted_sum_pool(a, spatial, channel_weights=channel, num_threads=num_threads)
