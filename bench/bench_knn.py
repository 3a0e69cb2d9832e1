"""deepret.knn against faiss-cpu (IndexFlatIP) and scikit-learn (brute force),
all-vs-all on the same data, plus the similarity kernel alone.

Issue #4's case: n = 100,000 L2-normalized float32 rows, d = 128 and 512,
k = 50, inner product, every contender on 2 threads. Each contender's result
is checked against faiss's before it is timed (scores to float32 rounding,
neighbour sets equal but for near-ties). A run takes several minutes; the
smoke run (--benchmark-disable) uses n = 2,000.

The similarity case times the kernel that knn's search uses, with no
selection, on 4,096 queries against the database (2 * nq * n * d flops):
report.py compares its GFLOP/s with the numpy matmul peak of bench_convolve.py
(run both files together).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

import deepret
from deepret import _backend

N = 100_000
N_SMOKE = 2_000
K = 50
DIMS = (128, 512)
THREADS = 2
SIMILARITY_QUERIES = 4096
# Rounds per contender at d = 128 (one at d = 512): these calls take seconds to minutes.
ROUNDS = {"deepret": 3, "faiss IndexFlatIP": 2, "sklearn brute": 1, "faiss + scipy.sparse": 2}


def _rows(request) -> int:
    return N_SMOKE if request.config.getoption("benchmark_disable") else N


@functools.lru_cache(maxsize=None)
def descriptors(n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng([n, d])
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x.flags.writeable = False
    return x


def _deepret(x):
    return lambda: deepret.knn(x, k=K, metric="ip", num_threads=THREADS)


def _faiss(x):
    faiss = pytest.importorskip("faiss")
    faiss.omp_set_num_threads(THREADS)

    def run():
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        return index.search(x, K)
    return run


def _sklearn(x):
    neighbors = pytest.importorskip("sklearn.neighbors")
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_limits

    def run():
        # Cosine distance = 1 - inner product on normalized rows: the same ranking.
        with threadpool_limits(THREADS):
            model = neighbors.NearestNeighbors(n_neighbors=K, algorithm="brute", metric="cosine",
                                               n_jobs=1).fit(x)
            distances, indices = model.kneighbors(x)
        return (1.0 - distances).astype(np.float32), indices
    return run


CONTENDERS = {"deepret": _deepret, "faiss IndexFlatIP": _faiss, "sklearn brute": _sklearn}


def _time(benchmark, function, check, rounds: int) -> float:
    """Check the result and time `rounds` calls. A single round is the checked
    call itself (these calls take up to minutes); more rounds follow a
    checked warm-up call. Returns what check() returns."""
    if rounds == 1 or benchmark.disabled:
        return check(benchmark.pedantic(function, rounds=1, iterations=1, warmup_rounds=0))
    result = check(function())
    benchmark.pedantic(function, rounds=rounds, iterations=1, warmup_rounds=0)
    return result


@functools.lru_cache(maxsize=None)
def faiss_search_plus_one(n: int, d: int):
    """faiss's k + 1 neighbours of every row (self first): the reference of
    both the knn cases (first k columns) and the graph cases (last k)."""
    faiss = pytest.importorskip("faiss")
    faiss.omp_set_num_threads(THREADS)
    x = descriptors(n, d)
    index = faiss.IndexFlatIP(d)
    index.add(x)
    return index.search(x, K + 1)


def faiss_reference(n: int, d: int):
    sims, ids = faiss_search_plus_one(n, d)
    return sims[:, :K], ids[:, :K]


def check_neighbours(result, n: int, d: int) -> float:
    """Scores as faiss's to float32 rounding; the neighbour sets agree except
    where two candidates score within rounding of the k-th. Returns the max
    score difference."""
    scores, indices = (np.asarray(part) for part in result)
    ref_scores, ref_indices = faiss_reference(n, d)
    assert scores.shape == indices.shape == (n, K)
    tol = 1e-5
    difference = float(np.abs(scores - ref_scores).max())
    assert difference <= tol, f"scores differ from faiss by {difference:.2e}"
    kth = ref_scores[:, -1:]
    for row in np.flatnonzero((indices != ref_indices).any(axis=1)):
        ours, theirs = set(indices[row].tolist()), set(ref_indices[row].tolist())
        # Anything in one set and not the other must be a near-tie at the k-th score.
        ours_only = [i for i in ours - theirs]
        theirs_only = [i for i in theirs - ours]
        x = descriptors(n, d)
        for i in ours_only + theirs_only:
            assert abs(float(x[row] @ x[i]) - float(kth[row, 0])) <= tol, (row, i)
    return difference


@pytest.mark.parametrize("contender", list(CONTENDERS))
@pytest.mark.parametrize("d", DIMS, ids=lambda d: f"d{d}")
def test_knn_all_vs_all(benchmark, request, d, contender):
    n = _rows(request)
    x = descriptors(n, d)
    function = CONTENDERS[contender](x)
    benchmark.group = f"knn all-vs-all n={n} d={d} k={K} ip float32"
    benchmark.extra_info.update(
        contender=contender, ours=contender == "deepret", device="cpu", kind="knn",
        n=n, d=d, k=K, dtype="float32", flops=2 * n * n * d, threads=THREADS,
    )
    rounds = ROUNDS[contender] if d == DIMS[0] else 1
    benchmark.extra_info["rounds"] = rounds
    benchmark.extra_info["max_score_error"] = _time(
        benchmark, function, lambda result: check_neighbours(result, n, d), rounds)


@pytest.mark.parametrize("d", DIMS, ids=lambda d: f"d{d}")
def test_knn_similarity_part(benchmark, request, d):
    n = _rows(request)
    x = descriptors(n, d)
    queries = np.ascontiguousarray(x[:SIMILARITY_QUERIES])
    database = _backend._core.KnnDatabaseF32(x, THREADS)
    benchmark.group = f"knn similarity kernel nq={len(queries)} n={n} d={d} float32"
    benchmark.extra_info.update(
        contender="deepret similarity kernel", ours=True, device="cpu", kind="knn_similarity",
        n=n, d=d, nq=len(queries), dtype="float32", flops=2 * len(queries) * n * d, threads=THREADS,
    )
    # The kernel's agreement with exact inner products is tests/test_knn.py's job;
    # here a finite checksum shows that it ran.
    checksum = database.similarity_only(queries, THREADS)
    assert np.isfinite(checksum)
    benchmark.pedantic(lambda: database.similarity_only(queries, THREADS),
                       rounds=1 if benchmark.disabled else 5, iterations=1, warmup_rounds=0)


# --------------------------------------------------------------------- graph
GAMMA = 3.0


def _deepret_graph(x):
    return lambda: deepret.knn_graph(x, k=K, gamma=GAMMA, num_threads=THREADS)


def _faiss_scipy_graph(x):
    """The pipeline of the reference diffusion code: faiss k+1 search (self
    first), then scipy.sparse: clip and power, mutual kNN by
    minimum(W, W.T), D^-1/2 W D^-1/2."""
    faiss = pytest.importorskip("faiss")
    faiss.omp_set_num_threads(THREADS)

    def run():
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        sims, ids = index.search(x, K + 1)
        return _scipy_graph(sims[:, 1:], ids[:, 1:])
    return run


def _scipy_graph(sims, ids):
    from scipy import sparse

    n = len(sims)
    weights = np.maximum(sims, 0) ** GAMMA
    graph = sparse.csr_matrix((weights.ravel(), ids.ravel(), np.arange(0, n * K + 1, K)), shape=(n, n))
    graph = graph.minimum(graph.T)
    degrees = np.asarray(graph.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        scale = 1.0 / np.sqrt(degrees)
    scale[~np.isfinite(scale)] = 0
    diagonal = sparse.diags(scale)
    return (diagonal @ graph @ diagonal).tocsr()


GRAPH_CONTENDERS = {"deepret": _deepret_graph, "faiss + scipy.sparse": _faiss_scipy_graph}


@functools.lru_cache(maxsize=None)
def graph_reference(n: int, d: int):
    """The pipeline's graph from the cached faiss search (k + 1, self first)."""
    sims, ids = faiss_search_plus_one(n, d)
    return _scipy_graph(sims[:, 1:], ids[:, 1:])


def check_graph(graph, n: int, d: int) -> float:
    """Same sparse matrix as the reference pipeline's, to float32 rounding,
    but for entries whose mutual-neighbour status hinges on a near-tie."""
    from scipy import sparse

    reference = graph_reference(n, d)
    graph = sparse.csr_matrix(graph)
    assert graph.shape == reference.shape == (n, n)
    difference = abs(graph - reference)
    # Entries off by more than rounding: a pair whose mutual-neighbour status
    # flipped on a near-tie at the k-th score (at most 0.1 % of entries).
    wrong = int((difference.data > 1e-4 * abs(reference).max()).sum())
    assert wrong <= max(10, reference.nnz // 1000), (wrong, reference.nnz)
    return float(difference.max()) if difference.nnz else 0.0


@pytest.mark.parametrize("contender", list(GRAPH_CONTENDERS))
@pytest.mark.parametrize("d", DIMS, ids=lambda d: f"d{d}")
def test_knn_graph(benchmark, request, d, contender):
    n = _rows(request)
    x = descriptors(n, d)
    function = GRAPH_CONTENDERS[contender](x)
    benchmark.group = f"knn_graph n={n} d={d} k={K} gamma={GAMMA:g} mutual float32"
    benchmark.extra_info.update(
        contender=contender, ours=contender == "deepret", device="cpu", kind="knn_graph",
        n=n, d=d, k=K, dtype="float32", flops=2 * n * n * d, threads=THREADS,
    )
    rounds = ROUNDS[contender] if d == DIMS[0] else 1
    benchmark.extra_info["rounds"] = rounds
    benchmark.extra_info["max_entry_error"] = _time(
        benchmark, function, lambda result: check_graph(result, n, d), rounds)


# ----------------------------------------------------------------------- GPU
GPU_N = 1_000_000
GPU_QUERIES = 10_000
GPU_QUERY_CHUNK = 1_000  # the peer's score matrix per chunk: 1,000 x 10^6 floats (4 GB)


def _gpu_deepret(cp, x, queries):
    def run():
        result = deepret.knn(x, queries, k=K)
        cp.cuda.Device().synchronize()
        return result
    return run


def _gpu_cupy_matmul_topk(cp, x, queries):
    """The obvious CuPy code: a chunk of scores by matmul, argpartition for the
    k best, then a sort of those k."""
    def run():
        scores, indices = [], []
        for start in range(0, len(queries), GPU_QUERY_CHUNK):
            s = queries[start:start + GPU_QUERY_CHUNK] @ x.T
            top = cp.argpartition(-s, K - 1, axis=1)[:, :K]
            top_scores = cp.take_along_axis(s, top, axis=1)
            order = cp.argsort(-top_scores, axis=1)
            scores.append(cp.take_along_axis(top_scores, order, axis=1))
            indices.append(cp.take_along_axis(top, order, axis=1))
        result = cp.concatenate(scores), cp.concatenate(indices)
        cp.cuda.Device().synchronize()
        return result
    return run


def _gpu_faiss(cp, x, queries):
    """faiss-gpu's exact GpuIndexFlatIP (where faiss-gpu is installed:
    bench/gpu_check.sh with GPU_CHECK_FAISS=1). Its Python API takes host
    arrays: the database is added once outside the timing; each timed search
    copies the queries to the device and the results back (10,000 x 128
    floats in, 10,000 x k out: small beside the search)."""
    faiss = pytest.importorskip("faiss")
    if not hasattr(faiss, "StandardGpuResources"):
        pytest.skip("faiss is installed without GPU support (faiss-cpu)")
    resources = faiss.StandardGpuResources()
    index = faiss.GpuIndexFlatIP(resources, x.shape[1])
    index.add(cp.asnumpy(x))
    host_queries = cp.asnumpy(queries)

    def run():
        scores, indices = index.search(host_queries, K)
        return cp.asarray(scores), cp.asarray(indices)
    return run


GPU_CONTENDERS = {"deepret": _gpu_deepret, "cupy matmul + argpartition": _gpu_cupy_matmul_topk,
                  "faiss-gpu GpuIndexFlatIP": _gpu_faiss}


@pytest.mark.gpu
@pytest.mark.parametrize("contender", list(GPU_CONTENDERS))
def test_gpu_knn(benchmark, cupy_device, request, contender):
    cp, gpu_name = cupy_device
    n = GPU_N if not request.config.getoption("benchmark_disable") else 20_000
    rng = cp.random.default_rng(7)
    x = rng.standard_normal((n, 128), dtype=cp.float32)
    x /= cp.linalg.norm(x, axis=1, keepdims=True)
    queries = x[:GPU_QUERIES]
    function = GPU_CONTENDERS[contender](cp, x, queries)
    benchmark.group = f"gpu knn nq={len(queries)} n={n} d=128 k={K} ip float32"
    benchmark.extra_info.update(
        contender=contender, ours=contender == "deepret", device="gpu", gpu_name=gpu_name,
        kind="knn_gpu", n=n, d=128, nq=len(queries), k=K, dtype="float32",
        flops=2 * len(queries) * n * 128,
    )
    scores, _ = function()  # warm-up; check the scores against a float64 host brute force on a few rows
    rows = 16
    exact = np.sort(cp.asnumpy(queries[:rows]).astype(np.float64) @ cp.asnumpy(x).astype(np.float64).T,
                    axis=1)[:, ::-1][:, :K]
    error = float(np.abs(cp.asnumpy(scores[:rows]) - exact).max())
    assert error < 1e-4, error
    benchmark.extra_info["max_score_error"] = error
    benchmark.pedantic(function, rounds=1 if benchmark.disabled else 3, iterations=1, warmup_rounds=0)
