"""deepret.graph_from_knn / knn_graph against the faiss + scipy.sparse pipeline.

Data: n random L2-normalized float32 vectors (d = 128), their exact k = 50
nearest neighbours (faiss IndexFlatIP, self excluded) computed once per
session and cached under bench/results/cache/. Every contender of a group
builds the graph from the same neighbours and is checked against the plain
scipy.sparse construction before it is timed:

    a = max(0, s) ** gamma;  W = csr(a, indices);  A = W.minimum(W.T)  (or maximum)
    D^-1/2 A D^-1/2 with zeros for isolated nodes.

n = 100,000 in timed runs; the smoke run (--benchmark-disable) uses n = 5,000
so the whole file stays within seconds. knn_graph end to end (kNN search
included) is timed in bench_knn.py.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
import scipy.sparse as sp

import deepret
from benchlib import run_timed

D = 128
K = 50
GAMMA = 3.0
N_TIMED = 100_000
N_SMOKE = 5_000
CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "cache")

DEEPRET_THREADS = (int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0] or 0)
                   or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()))


# ---------------------------------------------------------------------- data
@functools.lru_cache(maxsize=None)
def descriptors(n: int) -> np.ndarray:
    rng = np.random.default_rng([n, D])
    x = rng.standard_normal((n, D), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x.flags.writeable = False
    return x


def faiss_knn(x: np.ndarray, k: int):
    """faiss IndexFlatIP all-vs-all, each point's own row dropped: (n, k)."""
    import faiss

    faiss.omp_set_num_threads(DEEPRET_THREADS)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    scores, indices = index.search(x, k + 1)
    n = len(x)
    is_self = indices == np.arange(n)[:, None]
    # Drop the point itself where listed, else the last (worst) column.
    drop = np.where(is_self.any(1), is_self.argmax(1), k)
    keep = np.ones_like(is_self)
    keep[np.arange(n), drop] = False
    return scores[keep].reshape(n, k), indices[keep].reshape(n, k)


@functools.lru_cache(maxsize=None)
def knn_data(n: int):
    """(scores, indices) of descriptors(n), from the disk cache when present."""
    pytest.importorskip("faiss")
    path = os.path.join(CACHE, f"knn_n{n}_d{D}_k{K}.npz")
    if os.path.exists(path):
        with np.load(path) as f:
            scores, indices = f["scores"], f["indices"]
    else:
        scores, indices = faiss_knn(descriptors(n), K)
        os.makedirs(CACHE, exist_ok=True)
        np.savez(path, scores=scores, indices=indices)
    scores.flags.writeable = indices.flags.writeable = False
    return scores, indices


@pytest.fixture(scope="module")
def n(request) -> int:
    return N_SMOKE if request.config.getoption("benchmark_disable", False) else N_TIMED


# ------------------------------------------------------------ scipy pipeline
def scipy_graph(scores, indices, gamma=GAMMA, mutual=True, normalize=True):
    """The faiss + scipy.sparse pipeline of the reference diffusion code."""
    n, k = scores.shape
    a = np.maximum(scores, 0) ** gamma
    W = sp.csr_array((a.ravel(), indices.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))
    A = W.minimum(W.T) if mutual else W.maximum(W.T)
    A = sp.csr_array(A)
    A.eliminate_zeros()
    if normalize:
        d = np.asarray(A.sum(axis=1)).ravel()
        with np.errstate(divide="ignore"):
            dinv = np.where(d > 0, 1 / np.sqrt(d), 0).astype(scores.dtype)
        A = sp.csr_array(sp.diags_array(dinv) @ A @ sp.diags_array(dinv))
    A.sort_indices()
    return A


@functools.lru_cache(maxsize=None)
def reference(n: int, mutual: bool) -> sp.csr_array:
    return scipy_graph(*knn_data(n), mutual=mutual)


def check_against(n: int, mutual: bool):
    """Structure equal to scipy's, values to float32 rounding; returns the error."""
    def check(G):
        R = reference(n, mutual)
        G = sp.csr_array(G)
        G.sort_indices()
        assert G.shape == R.shape and G.dtype == R.dtype
        assert np.array_equal(G.indptr, R.indptr) and np.array_equal(G.indices, R.indices)
        error = float((np.abs(G.data.astype(np.float64) - R.data) / np.abs(R.data)).max()) if R.nnz else 0.0
        assert error < 1e-4, error
        return error
    return check


# ---------------------------------------------------------- graph_from_knn
CONTENDERS = {
    "deepret": (DEEPRET_THREADS, lambda s, i, m: lambda: deepret.graph_from_knn(s, i, GAMMA, m)),
    "deepret 1 thread": (1, lambda s, i, m: lambda: deepret.graph_from_knn(s, i, GAMMA, m, num_threads=1)),
    "scipy.sparse": (1, lambda s, i, m: lambda: scipy_graph(s, i, GAMMA, m)),
}


@pytest.mark.parametrize("contender", list(CONTENDERS))
@pytest.mark.parametrize("mutual", [True, False], ids=["mutual", "union"])
def test_graph_from_knn(benchmark, n, mutual, contender):
    threads, factory = CONTENDERS[contender]
    scores, indices = knn_data(n)
    benchmark.group = f"graph_from_knn n={n} k={K} float32 {'mutual' if mutual else 'union'}"
    run_timed(
        benchmark, factory(scores, indices, mutual), check=check_against(n, mutual),
        contender=contender, ours=contender == "deepret", device="cpu", kind="graph",
        n=n, k=K, d=D, dtype="float32", mutual=mutual, threads=threads,
    )
