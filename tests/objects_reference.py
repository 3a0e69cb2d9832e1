"""Slow, obvious numpy/scipy references of the object-saliency definitions
(python/deepret/objects.py, docs/objects.md): region sets, the region graph,
global and local centrality, OS maps, OS.EGM descriptors, regional diffusion
and CroW. Float64, loops over pixels and regions, dense matrices, exact
linear solves. Each stage takes the previous stage's output as input, so a
test pins one definition at a time."""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

import egm_reference as ref

FS = dict(sigma=2.5, lam=0.0, tau=0.55, threshold=0.4, power=5.0, max_iter=20, box_scale=2.0)
OS = dict(sigma=2.0, lam=0.0, tau=0.55, threshold=0.0, power=2.0, max_iter=20, box_scale=2.0)


def l2n(v, eps=1e-6):
    return v / (np.linalg.norm(v) + eps)


def l2n_rows(v, eps=1e-6):
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + eps)


def box_pixels(box, h, w):
    y0, x0, y1, x1 = box
    rows = range(max(0, math.ceil(y0)), min(h - 1, math.floor(y1)) + 1)
    cols = range(max(0, math.ceil(x0)), min(w - 1, math.floor(x1)) + 1)
    return [(y, x) for y in rows for x in cols]


def regions_of_map(s, params, egm=None):
    """EGM regions of one map (reference EGM unless egm is given), whole map when none."""
    h, w = s.shape
    r = ref.egm_map(s, **params) if egm is None else egm(s, **params)
    if len(r["weights"]) == 0:
        return dict(boxes=np.array([[0.0, 0.0, h - 1.0, w - 1.0]]), weights=np.array([1.0]), fallback=True)
    return dict(boxes=np.asarray(r["boxes"]), weights=np.asarray(r["weights"]), fallback=False)


def image_regions(a, params=FS, egm=None):
    """One image's FS map (rounded to float32, as the library stores it),
    regions and L2-normalized regional max-pooled descriptors."""
    a = np.asarray(a, np.float64)
    fs = ref.feature_saliency(a).astype(np.float32)
    r = regions_of_map(fs.astype(np.float64), params, egm)
    h, w = fs.shape
    desc = []
    for box in r["boxes"]:
        pix = box_pixels(box, h, w)
        desc.append(l2n(np.max([a[:, y, x] for y, x in pix], axis=0)))
    return fs, r, np.array(desc)


def neighbours(x, image, k, same_image):
    """Each row's k best other rows by inner product (ties: smaller index),
    excluding its own image unless same_image."""
    s = x @ x.T
    # Ties are judged on scores rounded to 10 decimals: two identical
    # descriptors (tests/data has such pairs) can score
    # 1 ulp apart in float64 depending on the BLAS kernel, which would make
    # the tie-break depend on the machine.
    key = np.round(s, 10)
    out = []
    for i in range(len(x)):
        cand = [j for j in range(len(x)) if j != i and (same_image or image[j] != image[i])]
        cand.sort(key=lambda j: (-key[i, j], j))
        out.append(cand[:k])
    return s, out


def region_graph(x, image, k, gamma, mutual, same_image):
    """Dense normalized affinity matrix W."""
    x = np.asarray(x, np.float64)
    n = len(x)
    s, nn = neighbours(x, image, k, same_image)
    a = np.zeros((n, n))
    for i in range(n):
        for j in nn[i]:
            a[i, j] = max(0.0, s[i, j]) ** gamma
    listed = a > 0
    if mutual:
        a = np.where(listed & listed.T, np.minimum(a, a.T), 0.0)
    else:
        a = np.maximum(a, a.T)
    d = a.sum(axis=1)
    inv = np.where(d > 0, 1.0 / np.sqrt(np.where(d > 0, d, 1.0)), 0.0)
    return inv[:, None] * a * inv[None, :]


def solve(W, y, alpha):
    """f with L_alpha f = y, L_alpha = (I - alpha W) / (1 - alpha)."""
    return scipy.linalg.solve(np.eye(len(W)) - alpha * W, (1 - alpha) * np.asarray(y, np.float64))


def centralities(W, image, alpha):
    """Global g (L g = 1) and each region's local f in its own image's search."""
    n = len(W)
    g = solve(W, np.ones(n), alpha)
    f = np.empty(n)
    for m in np.unique(image):
        y = (image == m).astype(np.float64)
        f[image == m] = solve(W, y, alpha)[image == m]
    return g, f


def weight(f, g, centrality):
    return {"both": f * g, "global": g, "local": f, "constant": np.ones_like(g)}[centrality]


def query_centralities(desc_q, x, W, g, alpha, query_k, gamma):
    """f_j, g_j of one new image's regions (module docstring of objects.py)."""
    x = np.asarray(x, np.float64)
    s = desc_q @ x.T
    y = np.zeros(len(x))
    near, wts = [], []
    for j in range(len(desc_q)):
        order = sorted(range(len(x)), key=lambda l: (-s[j, l], l))[:query_k]
        wj = np.array([max(0.0, s[j, l]) ** gamma for l in order])
        for l, wl in zip(order, wj):
            y[l] += wl
        near.append(order)
        wts.append(wj)
    fq = solve(W, y, alpha)
    fj, gj = [], []
    for order, wj in zip(near, wts):
        wbar = wj / wj.sum() if wj.sum() > 0 else np.zeros_like(wj)
        fj.append(float((wbar * fq[order]).sum()))
        gj.append(float((wbar * g[order]).sum()))
    return np.array(fj), np.array(gj)


def os_map(a, fs, desc, boxes, c, cover="box"):
    """S(p) = F(p) sum_{i in N_p} max(0, <v_i, u_p>) c_i, pixel by pixel."""
    a = np.asarray(a, np.float64)
    _, h, w = a.shape
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            ap = a[:, y, x]
            norm = np.linalg.norm(ap)
            u = ap / norm if norm > 0 else ap * 0
            total = 0.0
            for v, box, ci in zip(desc, boxes, c):
                if cover == "box" and (y, x) not in box_pixels(box, h, w):
                    continue
                total += max(0.0, float(np.dot(v, u))) * ci
            out[y, x] = float(fs[y, x]) * total
    return out


def os_egm(a, s, readout="sum", egm=None, params=OS):
    """OS.EGM descriptor of one image from its OS map s (EGM settings params)."""
    a = np.asarray(a, np.float64)
    _, h, w = a.shape
    if readout == "spatial":
        return l2n((a * s[None]).sum(axis=(1, 2)))
    r = regions_of_map(np.asarray(s, np.float64), params, egm)
    d = np.array([l2n(np.max([a[:, y, x] for y, x in box_pixels(b, h, w)], axis=0)) for b in r["boxes"]])
    if readout == "heaviest":
        return d[int(np.argmax(r["weights"]))]
    wts = r["weights"] if readout == "weighted" else np.ones(len(d))
    return l2n((wts[:, None] * d).sum(axis=0))


def regional_scores(W, x, image, queries, alpha, query_k, gamma, pooling):
    """(n_images, nq) pooled diffusion scores of query region lists."""
    x = np.asarray(x, np.float64)
    cols = []
    for q in queries:
        s = np.asarray(q, np.float64) @ x.T
        y = np.zeros(len(x))
        for j in range(len(q)):
            for l in sorted(range(len(x)), key=lambda l: (-s[j, l], l))[:query_k]:
                y[l] += max(0.0, s[j, l]) ** gamma
        f = scipy.linalg.solve(np.eye(len(W)) - alpha * W, y)
        pool = np.sum if pooling == "sum" else np.max
        cols.append([pool(f[image == m]) for m in range(image.max() + 1)])
    return np.array(cols).T


def crow(a, eps=1e-6):
    a = np.asarray(a, np.float64)
    c = a.shape[0]
    s = a.sum(axis=0)
    norm = np.sqrt((s**2).sum())
    s = np.sqrt(s / norm) if norm > 0 else s
    q = (a.reshape(c, -1) != 0).mean(axis=1)
    b = np.log((q + eps).sum() / (q + eps))
    return l2n(b * (a * s[None]).sum(axis=(1, 2)))
