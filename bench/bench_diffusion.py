"""deepret.diffuse against the reference practice (scipy.sparse.linalg.cg
looped over the queries) and scipy.sparse.linalg.spsolve, on the same graph
and right-hand sides; the Fashion-MNIST retrieval pipeline end to end against
faiss + scipy; plus the SpMM's memory bandwidth against a large numpy copy
measured in the same run.

Graphs: float32 rows, mutual 50-NN, gamma 3, normalized (deepret.knn_graph,
built once per session):
- gaussian: n = 100,000 random Gaussian points in 128-D (an unrealistically
  easy graph: CG converges in few iterations; no row order makes it local);
- manifold: n = 100,000 points along many noisy random curves in 128-D,
  where CG needs all its iterations;
- random-order: n = 50,000 points along such curves in 64-D (about 19 CG
  iterations), the rows in random order: the batched product gathers rows
  all over memory unless deepret finds the locality again (order="auto");
- fashion-mnist: the 60,000 Fashion-MNIST training images (784-D raw
  pixels, cosine), queries from the test images; skipped with a message
  when the Debian package dataset-fashion-mnist is absent.
spsolve factorizes I - alpha W, which is out of reach at n = 100,000: it runs
in a group of its own on n = 10,000. Right-hand sides are query vectors (10
nearest items, weight s^3) of held-out points; tol 1e-6 and maxiter 20 for
everyone, alpha 0.99.

End to end (test_fashion_end_to_end): DiffusionIndex(x, k=50,
k_includes_self=True) + search(200 test images, topk=100) against the
pipeline of the reference diffusion code (fyang93/diffusion style): faiss
IndexFlatIP kNN of the database (k = 50 counting the point itself), the
scipy.sparse mutual graph (bench_graph.scipy_graph), faiss search of the
queries' 10 nearest items, scipy cg per query, top 100 by argpartition; at
20,000 and 60,000 database images. Both rankings are checked against each
other before timing, and the mAP of the diffusion scores and of plain cosine
similarity (labels as relevance, AP over the whole database) are recorded.
Threads: deepret and faiss get THREADS; scipy's sparse product and cg run on
one thread whatever they are given.
"""

from __future__ import annotations

import functools
import inspect
import os
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spl

import deepret
from benchlib import FASHION_MNIST_MISSING, fashion_mnist, label_map

N = 100_000
N_RANDOM_ORDER = 50_000
D_RANDOM_ORDER = 64
N_FASHION = 60_000
END_TO_END_SIZES = (20_000, 60_000)
END_TO_END_QUERIES = 200
TOPK = 100
N_SMALL = 10_000
N_SMOKE = 3_000
D = 128
K = 50
ALPHA = 0.99
TOL = 1e-6
MAXITER = 20
THREADS = 2
SCIPY_THREADS = 1  # scipy.sparse products and cg are single-threaded
KINDS = ["gaussian", "manifold", "random-order", "fashion-mnist"]
FULL_SIZE = {"gaussian": N, "manifold": N, "random-order": N_RANDOM_ORDER, "fashion-mnist": N_FASHION}


def _n(request, n):
    return min(n, N_SMOKE) if request.config.getoption("benchmark_disable") else n


@functools.lru_cache(maxsize=None)
def dataset(kind: str, n: int, queries: int = 64):
    """(database rows, held-out queries), L2-normalized float32."""
    if kind == "fashion-mnist":
        data = fashion_mnist()
        if data is None:
            pytest.skip(FASHION_MNIST_MISSING)
        train, _, test, _ = data
        return np.ascontiguousarray(train[:n]), np.ascontiguousarray(test[:queries])
    d = D_RANDOM_ORDER if kind == "random-order" else D
    rng = np.random.default_rng([n, 7 if kind == "manifold" else 11 if kind == "random-order" else 3])
    total = n + queries
    if kind == "gaussian":
        points = rng.standard_normal((total, d), dtype=np.float32)
    else:  # noisy random curves: a random walk per curve, small steps; rows shuffled
        per_curve = 100
        curves = -(-total // per_curve)
        starts = rng.standard_normal((curves, 1, d))
        steps = 0.15 * rng.standard_normal((curves, per_curve, d)) / np.sqrt(d)
        points = (starts + np.cumsum(steps, axis=1)).reshape(-1, d)[:total]
        points = (points + 0.01 * rng.standard_normal(points.shape)).astype(np.float32)
        points = points[rng.permutation(total)]
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return np.ascontiguousarray(points[:n]), np.ascontiguousarray(points[n:])


@functools.lru_cache(maxsize=None)
def problem(kind: str, n: int):
    """(W float32 csr, Y (n, 64) float32 dense) for one data set."""
    x, queries = dataset(kind, n)
    W = deepret.knn_graph(x, k=K, num_threads=THREADS)
    Y = deepret.query_vector(x, queries, k=10, gamma=3.0).toarray().astype(np.float32)
    return W, Y


def _quiet(function):
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", deepret.ConvergenceWarning)
            return function()
    return run


def _deepret(W, Y):
    return _quiet(lambda: deepret.diffuse(W, Y, ALPHA, TOL, MAXITER, num_threads=THREADS))


def _scipy_cg_loop(W, Y):
    A = (sp.eye(W.shape[0], dtype=W.dtype, format="csr") - ALPHA * W).tocsr()

    def run():
        return np.stack([spl.cg(A, Y[:, c], rtol=TOL, atol=0.0, maxiter=MAXITER)[0]
                         for c in range(Y.shape[1])], axis=1)
    return run


def _scipy_spsolve(W, Y):
    A = sp.csc_matrix(sp.eye(W.shape[0], dtype=np.float64) - ALPHA * W.astype(np.float64))
    return lambda: spl.spsolve(A, Y.astype(np.float64)).reshape(Y.shape)


CONTENDERS = {"deepret": _deepret, "scipy cg looped": _scipy_cg_loop, "scipy spsolve": _scipy_spsolve}


def _check(result, W, Y, contender):
    """Same f as scipy's CG iterates (spsolve: the exact solution, which 20
    iterations at alpha = 0.99 only approach: compare the top-ranked items)."""
    reference = _scipy_cg_loop(W, Y)()
    result = np.asarray(result).reshape(reference.shape)
    if contender == "scipy spsolve":
        top_ref = np.argsort(-reference, axis=0)[:10]
        top = np.argsort(-result, axis=0)[:10]
        overlap = np.mean([len(set(top[:, c]) & set(top_ref[:, c])) / 10 for c in range(Y.shape[1])])
        assert overlap > 0.5, overlap
        return float(overlap)
    error = float(np.abs(result - reference).max() / np.abs(reference).max())
    assert error < 1e-4, error
    return error


@pytest.mark.parametrize("queries", [64, 1])
@pytest.mark.parametrize("contender", ["deepret", "scipy cg looped"])
@pytest.mark.parametrize("kind", KINDS)
def test_diffuse(benchmark, request, kind, contender, queries):
    n = _n(request, FULL_SIZE[kind])
    W, Y = problem(kind, n)
    Y = np.ascontiguousarray(Y[:, :queries])
    function = CONTENDERS[contender](W, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepret.ConvergenceWarning)
        _, info = deepret.diffuse(W, Y, ALPHA, TOL, MAXITER, return_info=True)
    relabelled = queries >= deepret.diffusion._REORDER_FROM_COLUMNS and deepret.diffusion._auto_order(W) is not None
    benchmark.group = f"diffuse {kind} n={n} nnz={W.nnz} queries={queries} alpha={ALPHA} float32"
    benchmark.extra_info.update(
        contender=contender, ours=contender == "deepret", device="cpu", kind="diffuse",
        data=kind, n=n, nnz=int(W.nnz), queries=queries, dtype="float32",
        threads=THREADS if contender == "deepret" else SCIPY_THREADS,
        simd_path=deepret.simd_path(), relabelled=bool(relabelled),
        mean_iterations=float(info.iterations.mean()), max_residual=float(info.residuals.max()),
        flops=2 * MAXITER * (W.nnz + 5 * n) * queries,
    )
    benchmark.extra_info["agreement"] = _check(function(), W, Y, contender)
    benchmark.pedantic(function, rounds=1 if benchmark.disabled else (5 if queries == 64 else 20),
                       iterations=1, warmup_rounds=0)


@pytest.mark.parametrize("contender", list(CONTENDERS))
def test_diffuse_small_with_spsolve(benchmark, request, contender):
    n = _n(request, N_SMALL)
    W, Y = problem("manifold", n)
    function = CONTENDERS[contender](W, Y)
    benchmark.group = f"diffuse manifold n={n} nnz={W.nnz} queries=64 alpha={ALPHA} float32 (with spsolve)"
    benchmark.extra_info.update(
        contender=contender, ours=contender == "deepret", device="cpu", kind="diffuse_small",
        data="manifold", n=n, nnz=int(W.nnz), queries=64, dtype="float32",
        threads=THREADS if contender == "deepret" else SCIPY_THREADS, flops=2 * MAXITER * (W.nnz + 5 * n) * 64,
    )
    benchmark.extra_info["agreement"] = _check(function(), W, Y, contender)
    benchmark.pedantic(function, rounds=1 if benchmark.disabled else 3, iterations=1, warmup_rounds=0)


def test_spmm_bandwidth(benchmark, request):
    """Y = W X for 64 columns; bytes = W's arrays once + X read once + Y written."""
    n = _n(request, N)
    W, Y = problem("gaussian", n)
    X = np.ascontiguousarray(np.random.default_rng(0).random((n, 64), dtype=np.float32))
    out = np.empty_like(X)
    W32 = sp.csr_array(W)
    np.testing.assert_allclose(
        (deepret._backend._core.spmm(n, n, W32.indptr, W32.indices, W32.data, X, out, THREADS), out)[1],
        W32 @ X, rtol=1e-4, atol=1e-6)
    moved = W32.data.nbytes + W32.indices.nbytes + W32.indptr.nbytes + X.nbytes + out.nbytes
    benchmark.group = f"spmm bandwidth n={n} nnz={W.nnz} columns=64 float32"
    benchmark.extra_info.update(contender="deepret spmm", ours=True, device="cpu", kind="spmm",
                                n=n, nnz=int(W.nnz), bytes=int(moved), dtype="float32",
                                threads=THREADS, flops=2 * int(W.nnz) * 64)
    benchmark.pedantic(lambda: deepret._backend._core.spmm(n, n, W32.indptr, W32.indices, W32.data,
                                                           X, out, THREADS),
                       rounds=1 if benchmark.disabled else 20, iterations=1, warmup_rounds=1)


def test_numpy_copy_bandwidth(benchmark, request):
    """The machine's practical memory bandwidth: a 256 MiB copy (read + write)."""
    size = (1 << 22) if request.config.getoption("benchmark_disable") else (1 << 26)
    source = np.ones(size, dtype=np.float32)
    target = np.empty_like(source)
    benchmark.group = "memory bandwidth: numpy copy 256 MiB"
    benchmark.extra_info.update(contender="numpy copyto", ours=False, device="cpu", kind="copy",
                                bytes=2 * source.nbytes, dtype="float32", flops=0,
                                threads=os.environ.get("OMP_NUM_THREADS", "numpy (1)"))
    benchmark.pedantic(lambda: np.copyto(target, source), rounds=1 if benchmark.disabled else 20,
                       iterations=1, warmup_rounds=1)
    assert target[-1] == 1.0


# ----------------------------------------------------------------------- GPU
def _gpu_deepret(cp, W, Y):
    def run():
        f = _quiet(lambda: deepret.diffuse(W, Y, ALPHA, TOL, MAXITER))()
        cp.cuda.Device().synchronize()
        return f
    return run


def _gpu_cupyx_cg_loop(cp, W, Y):
    """The reference practice on the GPU: cupyx.scipy.sparse.linalg.cg per query."""
    import cupyx.scipy.sparse as csp
    import cupyx.scipy.sparse.linalg as cspl

    A = (csp.identity(W.shape[0], dtype=W.dtype, format="csr") - ALPHA * W).tocsr()
    # CuPy names the relative tolerance `tol` (scipy's old name) or, in newer releases, `rtol`.
    relative = "rtol" if "rtol" in inspect.signature(cspl.cg).parameters else "tol"

    def run():
        f = cp.stack([cspl.cg(A, Y[:, c], atol=0.0, maxiter=MAXITER, **{relative: TOL})[0]
                      for c in range(Y.shape[1])], axis=1)
        cp.cuda.Device().synchronize()
        return f
    return run


GPU_CONTENDERS = {"deepret": _gpu_deepret, "cupyx cg looped": _gpu_cupyx_cg_loop}


@pytest.mark.gpu
@pytest.mark.parametrize("queries", [256, 1])
@pytest.mark.parametrize("contender", list(GPU_CONTENDERS))
def test_gpu_diffuse(benchmark, cupy_device, request, contender, queries):
    # 256 queries at once over 100,000 rows: the batch `deepret rank --gpu`
    # solves (its grid stays within CUDA's limits at any n, launch.h).
    cp, gpu_name = cupy_device
    import cupyx.scipy.sparse as csp

    n = _n(request, N)
    W_host, Y_host = problem("manifold", n)
    Y_host = np.ascontiguousarray(np.tile(Y_host, (1, -(-queries // Y_host.shape[1])))[:, :queries])
    W, Y = csp.csr_matrix(W_host), cp.asarray(Y_host)
    function = GPU_CONTENDERS[contender](cp, W, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepret.ConvergenceWarning)
        f_cpu, info_cpu = deepret.diffuse(W_host, Y_host, ALPHA, TOL, MAXITER, return_info=True)
        _, info_gpu = deepret.diffuse(W, Y, ALPHA, TOL, MAXITER, return_info=True)
    # The GPU engine runs the CPU engine's recurrence and stopping rule.
    np.testing.assert_array_equal(info_gpu.iterations.get(), info_cpu.iterations)
    result = cp.asnumpy(function())
    error = float(np.abs(result - f_cpu).max() / np.abs(f_cpu).max())
    assert error < 1e-4, error
    benchmark.group = f"gpu diffuse manifold n={n} nnz={W_host.nnz} queries={queries} alpha={ALPHA} float32"
    benchmark.extra_info.update(
        contender=contender, ours=contender == "deepret", device="gpu", gpu_name=gpu_name,
        kind="diffuse_gpu", data="manifold", n=n, nnz=int(W_host.nnz), queries=queries, dtype="float32",
        mean_iterations=float(info_cpu.iterations.mean()), max_error_vs_cpu=error,
        flops=2 * MAXITER * (W_host.nnz + 5 * n) * queries,
    )
    benchmark.pedantic(function, rounds=1 if benchmark.disabled else 3, iterations=1, warmup_rounds=1)


# ----------------------------------------------------------- end to end
def _fashion(n):
    """(database x, labels, 200 query images, their labels)."""
    data = fashion_mnist()
    if data is None:
        pytest.skip(FASHION_MNIST_MISSING)
    train, train_labels, test, test_labels = data
    q = END_TO_END_QUERIES
    return (np.ascontiguousarray(train[:n]), train_labels[:n], np.ascontiguousarray(test[:q]),
            test_labels[:q])


def _deepret_pipeline(x, queries):
    """knn_graph + DiffusionIndex.search: (ranked ids (nq, TOPK), full f (n, nq))."""
    index = deepret.DiffusionIndex(x, k=K, k_includes_self=True, num_threads=THREADS)
    _, ids = index.search(queries, topk=TOPK)
    return ids, index


def _reference_pipeline(x, queries):
    """faiss IndexFlatIP kNN + the scipy.sparse graph + scipy cg per query,
    as the reference diffusion code does: (ranked ids (nq, TOPK), f (n, nq))."""
    import faiss
    from bench_graph import scipy_graph

    faiss.omp_set_num_threads(THREADS)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    scores, ids = index.search(x, K)  # k = 50 counting the point itself
    is_self = ids == np.arange(len(x))[:, None]
    drop = np.where(is_self.any(1), is_self.argmax(1), K - 1)  # the point, else the worst
    keep = np.ones_like(is_self)
    keep[np.arange(len(x)), drop] = False
    W = scipy_graph(scores[keep].reshape(len(x), K - 1), ids[keep].reshape(len(x), K - 1))
    A = (sp.eye(W.shape[0], dtype=W.dtype, format="csr") - ALPHA * W).tocsr()
    qs, qi = index.search(queries, 10)
    f = np.empty((len(x), len(queries)), dtype=np.float32)
    for j in range(len(queries)):
        y = np.zeros(len(x), dtype=np.float32)
        y[qi[j]] = np.maximum(qs[j], 0) ** 3.0
        f[:, j] = spl.cg(A, y, rtol=TOL, atol=0.0, maxiter=MAXITER)[0]
    top = np.argpartition(-f, TOPK, axis=0)[:TOPK]
    order = np.argsort(-np.take_along_axis(f, top, axis=0), axis=0, kind="stable")
    return np.take_along_axis(top, order, axis=0).T, f


@functools.lru_cache(maxsize=None)
def _reference_result(n):
    x, _, queries, _ = _fashion(n)
    return _reference_pipeline(x, queries)


def _check_end_to_end(ids, n):
    """deepret's top 100 against the reference pipeline's: same graph and
    CG, so the lists agree but for float32 rounding at near-ties."""
    ref_ids, _ = _reference_result(n)
    overlap = float(np.mean([len(set(a) & set(b)) / TOPK for a, b in zip(ids, ref_ids)]))
    assert overlap > 0.95, overlap
    return overlap


@pytest.mark.parametrize("contender", ["deepret", "faiss + scipy"])
@pytest.mark.parametrize("size", END_TO_END_SIZES)
def test_fashion_end_to_end(benchmark, request, size, contender):
    pytest.importorskip("faiss")
    n = _n(request, size)
    x, labels, queries, query_labels = _fashion(n)
    if contender == "deepret":
        def run():
            return _deepret_pipeline(x, queries)[0]
    else:
        def run():
            return _reference_pipeline(x, queries)[0]
    benchmark.group = (f"Fashion-MNIST end to end n={n} d=784 k={K} queries={len(queries)} "
                       f"topk={TOPK} float32")
    benchmark.extra_info.update(
        contender=contender, ours=contender == "deepret", device="cpu", kind="end_to_end",
        data="fashion-mnist", n=n, queries=len(queries), dtype="float32", flops=0,
        threads=(THREADS if contender == "deepret" else f"faiss {THREADS}, scipy {SCIPY_THREADS}"),
        simd_path=deepret.simd_path())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepret.ConvergenceWarning)
        ids = run()  # warm-up and the result checked before timing
        benchmark.extra_info["agreement"] = _check_end_to_end(ids, n)
        if contender == "deepret":  # retrieval quality, on the whole ranking
            _, index = _deepret_pipeline(x, queries)
            y = deepret.query_vector(x, queries, k=10, gamma=3.0)
            f = deepret.diffuse(index.W, y, ALPHA, TOL, MAXITER, order=index._order)
        else:
            f = _reference_result(n)[1]
        benchmark.extra_info["map_diffusion"] = label_map(f, labels, query_labels)
        benchmark.extra_info["map_cosine"] = label_map(x @ queries.T, labels, query_labels)
        benchmark.pedantic(run, rounds=1 if benchmark.disabled else 3, iterations=1,
                           warmup_rounds=0)
