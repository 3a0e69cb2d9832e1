"""The slow, obvious numpy reference of EGM (docs/egm.md) that the native
engines must match, plus the reference definitions of feature saliency and of
the pooling functions. Float64 throughout; nothing here is clever.

Numerics (the same in the engines; see python/deepret/regions.py):
- pixel (y, x) is the sample at coordinates (y, x): pixel centres at integers;
- samples are the pixels whose preprocessed value is > 0, in row-major order;
- start: one component per sample, mean = its pixel, variance sigma^2 on both
  axes, weight proportional to its value;
- E-step in the log domain, normalized per sample by its largest term; terms
  more than 700 (natural log units) below it count as zero;
- inner samples of k are those whose largest term is k's (first k on ties);
- expand: Var = w Var_in + (1 - w) Var_out, w = (l_in / l)(1 - lam), where an
  empty side takes the other side's variance; then floored by sigma^2;
- components with zero mass are dropped; purge visits components by
  descending weight (ties: lower index first) and keeps ratio >= tau;
  survivors' weights are renormalized to sum 1 and keep that order;
- stop after iteration t >= 2 when the count after t equals the count after
  t - 1 and after t - 2, or after max_iter iterations.
"""

from __future__ import annotations

import math
import struct

import numpy as np

LOG_CUT = -700.0


def preprocess(s, threshold, power):
    s = np.asarray(s, dtype=np.float64)
    top = s.max() if s.size else 0.0
    if top <= 0:
        return np.zeros_like(s)
    s = s / top
    s = np.where(s < threshold, 0.0, s)
    return np.where(s > 0, s**power, 0.0)


def _log_gauss(points, mean, var):
    """log N(points | mean, diag(var)) for points (n, 2)."""
    d = points - mean
    return -math.log(2 * math.pi) - 0.5 * (np.log(var[0]) + np.log(var[1])) \
        - 0.5 * (d[:, 0] ** 2 / var[0] + d[:, 1] ** 2 / var[1])


def _overlap(mi, vi, mj, vj):
    """N(mi | mj, vi + vj) for diagonal variances."""
    v = vi + vj
    d = mi - mj
    return math.exp(-0.5 * (d[0] ** 2 / v[0] + d[1] ** 2 / v[1])) / (2 * math.pi * math.sqrt(v[0] * v[1]))


def egm_map(s, sigma=2.5, lam=0.0, tau=0.55, threshold=0.4, power=5.0, max_iter=20, box_scale=2.0):
    """EGM on one (H, W) map -> dict of means (K,2), variances (K,2), weights (K,), boxes (K,4)."""
    s = np.asarray(s, dtype=np.float64)
    h, w = s.shape
    pre = preprocess(s, threshold, power)
    ys, xs = np.nonzero(pre > 0)
    points = np.stack([ys, xs], axis=1).astype(np.float64)
    weights = pre[ys, xs]
    n = len(points)
    empty = dict(means=np.zeros((0, 2)), variances=np.zeros((0, 2)), weights=np.zeros(0),
                 boxes=np.zeros((0, 4)))
    if n == 0:
        return empty
    s2 = sigma * sigma
    means = points.copy()
    variances = np.full((n, 2), s2)
    pis = weights / weights.sum()
    history = [n]
    for _ in range(max_iter):
        k = len(means)
        # E-step: log r_ik = log pi_k + log N(p_i | mu_k, Var_k + sigma^2).
        logr = np.empty((n, k))
        for j in range(k):
            logr[:, j] = math.log(pis[j]) + _log_gauss(points, means[j], variances[j] + s2)
        top = logr.max(axis=1, keepdims=True)
        rel = logr - top
        e = np.where(rel < LOG_CUT, 0.0, np.exp(rel))
        gamma = e / e.sum(axis=1, keepdims=True)
        inner = np.argmax(logr, axis=1)
        # M-step, saliency-weighted, with the expansion.
        new_means, new_vars, mass = [], [], []
        for j in range(k):
            g = weights * gamma[:, j]
            ell = g.sum()
            if ell <= 0:
                continue
            mu = (g[:, None] * points).sum(axis=0) / ell
            sq = (points - mu) ** 2
            is_in = inner == j
            l_in, l_out = g[is_in].sum(), g[~is_in].sum()
            v_in = (g[is_in, None] * sq[is_in]).sum(axis=0) / l_in if l_in > 0 else None
            v_out = (g[~is_in, None] * sq[~is_in]).sum(axis=0) / l_out if l_out > 0 else None
            if v_in is None:
                v_in = v_out
            if v_out is None:
                v_out = v_in
            wgt = (l_in / ell) * (1.0 - lam)
            var = np.maximum(wgt * v_in + (1.0 - wgt) * v_out, s2)
            new_means.append(mu)
            new_vars.append(var)
            mass.append(ell)
        mass = np.array(mass)
        pis = mass / mass.sum()
        means, variances = np.array(new_means), np.array(new_vars)
        # Purge by descending weight (stable: lower index first on ties).
        order = sorted(range(len(pis)), key=lambda j: (-pis[j], j))
        kept = []
        for j in order:
            self_term = pis[j] ** 2 * _overlap(means[j], variances[j], means[j], variances[j])
            cross = sum(pis[j] * pis[i] * _overlap(means[j], variances[j], means[i], variances[i])
                        for i in kept)
            if not kept or self_term / (self_term + cross) >= tau:
                kept.append(j)
        means, variances = means[kept], variances[kept]
        pis = pis[kept] / pis[kept].sum()
        history.append(len(kept))
        if len(history) >= 3 and history[-1] == history[-2] == history[-3]:
            break
    sd = np.sqrt(variances)
    boxes = np.stack([
        np.clip(means[:, 0] - box_scale * sd[:, 0], 0, h - 1),
        np.clip(means[:, 1] - box_scale * sd[:, 1], 0, w - 1),
        np.clip(means[:, 0] + box_scale * sd[:, 0], 0, h - 1),
        np.clip(means[:, 1] + box_scale * sd[:, 1], 0, w - 1),
    ], axis=1)
    return dict(means=means, variances=variances, weights=pis, boxes=boxes)


# ------------------------------------------------------- saliency and pooling
def feature_saliency(a, eps=1e-6):
    """CroW-style FS map of one (C, H, W) activation tensor."""
    a = np.asarray(a, dtype=np.float64)
    c = a.shape[0]
    q = (a.reshape(c, -1) != 0).mean(axis=1)
    b = np.log((q + eps).sum() / (q + eps))
    f = np.tensordot(b, a, axes=1)
    norm = np.sqrt((f**2).sum())
    return np.sqrt(f / norm) if norm > 0 else f


def l2n(v, eps=1e-6):
    return v / (np.linalg.norm(v) + eps)


def mac(a):
    return l2n(np.asarray(a, np.float64).max(axis=(1, 2)))


def spoc(a):
    return l2n(np.asarray(a, np.float64).sum(axis=(1, 2)))


def gem(a, p=3.0, eps=1e-6):
    """(mean x^p)^(1/p) per channel, written as m (mean (x/m)^p)^(1/p) with m
    the channel's maximum: the same value, without x^p overflowing (3^647) or
    underflowing (1e-6^54) in double for a large p."""
    x = np.maximum(np.asarray(a, np.float64), eps)
    m = x.max(axis=(1, 2))
    return l2n(m * ((x / m[:, None, None]) ** p).mean(axis=(1, 2)) ** (1.0 / p))


def _f32(v):
    """Round a Python float to the nearest float32 (one IEEE operation on
    float32 inputs, done in double and rounded once, is the float32 result)."""
    return struct.unpack("f", struct.pack("f", v))[0]


def rmac_regions(h, w, levels=3, overlap=0.4):
    """cirtorch.layers.functional.rmac's region loop, written out in plain
    Python with torch's float32 steps spelled out: ``steps`` is a float32
    tensor, ``int / tensor`` is ``tensor.reciprocal() * int``, tensor-scalar
    products and sums round to float32, torch.min returns the first minimum.
    Returns (i0, j0, size) per region (the whole map not included)."""
    wmin = min(w, h)
    crit = []
    for s in (2, 3, 4, 5, 6, 7):
        b = _f32(_f32(1.0 / _f32(s - 1)) * (max(h, w) - wmin))
        t = _f32(_f32(wmin**2 - _f32(wmin * b)) / wmin**2)
        crit.append(abs(_f32(t - _f32(overlap))))
    idx = crit.index(min(crit))
    Wd = idx + 1 if h < w else 0
    Hd = idx + 1 if h > w else 0
    out = []
    # Past level 2 wmin - 1 the side wl is 0 and cirtorch's loop adds no
    # region: stop there (a fuzzed levels=2**63 would loop for ever).
    for l in range(1, min(levels, 2 * wmin - 1) + 1):
        wl = math.floor(2 * wmin / (l + 1))
        wl2 = math.floor(wl / 2 - 1)

        def centres(size, extra):
            b = 0 if l + extra == 1 else (size - wl) / (l + extra - 1)
            return [int(math.floor(_f32(wl2 + _f32(k * _f32(b))))) - wl2 for k in range(l + extra)]

        for i in centres(h, Hd):
            for j in centres(w, Wd):
                if wl > 0:
                    out.append((i, j, wl))
    return out


def rmac(a, levels=3):
    a = np.asarray(a, np.float64)
    v = l2n(a.max(axis=(1, 2)))
    for i, j, size in rmac_regions(a.shape[1], a.shape[2], levels):
        v = v + l2n(a[:, i:i + size, j:j + size].max(axis=(1, 2)))
    return l2n(v)


def regional_max_pool(a, boxes):
    """Max over the pixels whose centres lie in each box (y0, x0, y1, x1), L2-normalized."""
    a = np.asarray(a, np.float64)
    rows = []
    for y0, x0, y1, x1 in boxes:
        r0, r1 = math.ceil(y0), math.floor(y1)
        c0, c1 = math.ceil(x0), math.floor(x1)
        rows.append(l2n(a[:, r0:r1 + 1, c0:c1 + 1].max(axis=(1, 2))))
    return np.array(rows).reshape(len(rows), a.shape[0])
