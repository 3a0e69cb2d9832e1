"""deepret.dask on a LocalCluster (processes, 2 workers x 1 thread, one
cluster for the module) against single-machine deepret: kNN, the kNN graph,
diffusion and DiffusionIndex for several chunkings (uneven last chunks,
chunks smaller than k, blocks that span several engine tiles), exact ties,
bad input, a worker that dies mid-run."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import deepret

pytest.importorskip("distributed", reason="deepret.dask needs dask[distributed]: "
                    "pip install \".[test]\" (or \".[dask]\") installs it")
import dask.array as da  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

import deepret.dask as dd  # noqa: E402


@pytest.fixture(scope="module")
def client():
    # ":0": the scheduler's HTTP server on a free port (None still binds 8787,
    # and warns when another cluster on the machine holds it).
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0", memory_limit="2GiB")
    with Client(cluster) as c:
        yield c
    cluster.close()


def unit_rows(rng, n, d, dtype=np.float32):
    x = rng.standard_normal((n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(dtype)


def chunked(x, chunks):
    return da.from_array(x, chunks=(chunks, -1))


def test_import_deepret_does_not_import_dask_and_no_client_is_a_clear_error():
    # One fresh interpreter for both (starting one costs seconds here).
    code = ("import sys, deepret\n"
            "bad = [m for m in ('dask', 'distributed') if m in sys.modules]\n"
            "assert not bad, bad\n"
            "import dask.array as da, deepret.dask as dd\n"
            "try:\n    dd.knn(da.ones((6, 2), chunks=(3, 2)), k=2)\n"
            "except RuntimeError as e:\n    assert 'distributed.Client' in str(e), e\n"
            "else:\n    raise SystemExit('no error without a client')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# n = 41 (prime): one chunk; uneven last chunk (20, 20, 1); chunks smaller
# than k = 10 (7, ..., 6); an explicit uneven split.
CHUNKINGS = [41, 20, 7, (15, 4, 22)]


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_knn_equals_single_machine(client, chunks, metric):
    rng = np.random.default_rng(61)
    x = unit_rows(rng, 41, 12)
    for exclude_self in (True, False) if chunks == 20 else (True,):
        scores, ids = dd.knn(chunked(x, chunks), k=10, metric=metric, exclude_self=exclude_self,
                             num_threads=1)
        want_scores, want_ids = deepret.knn(x, k=10, metric=metric, exclude_self=exclude_self)
        np.testing.assert_array_equal(ids.compute(), want_ids)
        np.testing.assert_allclose(scores.compute(), want_scores, rtol=2e-7, atol=1e-7)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_knn_ties_follow_the_single_machine_rule(client, metric):
    # Small integers: every score is exact, so ties are real, and across
    # blocks the smaller index must win exactly as in one process.
    rng = np.random.default_rng(3)
    x = rng.integers(-1, 2, size=(90, 4)).astype(np.float32)
    scores, ids = dd.knn(chunked(x, (13, 40, 37)), k=12, metric=metric, exclude_self=True,
                         num_threads=1)
    want_scores, want_ids = deepret.knn(x, k=12, metric=metric, exclude_self=True)
    np.testing.assert_array_equal(ids.compute(), want_ids)
    np.testing.assert_array_equal(scores.compute(), want_scores)


def test_knn_large_blocks_float64(client):
    # Blocks of several engine tiles (512 rows at d = 16): the tiled self
    # search on the diagonal and the pair search's rounds with unequal sides.
    rng = np.random.default_rng(7)
    x = unit_rows(rng, 2700, 16, np.float64)
    scores, ids = dd.knn(chunked(x, (2100, 600)), k=20, metric="l2", exclude_self=True,
                         num_threads=2)
    want_scores, want_ids = deepret.knn(x, k=20, metric="l2", exclude_self=True)
    np.testing.assert_array_equal(ids.compute(), want_ids)
    np.testing.assert_allclose(scores.compute(), want_scores, rtol=1e-13, atol=1e-14)


def test_knn_queries(client):
    rng = np.random.default_rng(11)
    x, q = unit_rows(rng, 53, 8), unit_rows(rng, 23, 8)
    scores, ids = dd.knn(chunked(x, 9), chunked(q, (10, 13)), k=15, metric="l2", num_threads=1)
    want_scores, want_ids = deepret.knn(x, q, k=15, metric="l2")
    np.testing.assert_array_equal(ids.compute(), want_ids)
    np.testing.assert_allclose(scores.compute(), want_scores, rtol=2e-7, atol=1e-7)


def assert_same_graph(W, want):
    assert isinstance(W, sp.csr_array) and W.shape == want.shape and W.dtype == want.dtype
    np.testing.assert_array_equal(W.indptr, want.indptr)
    np.testing.assert_array_equal(W.indices, want.indices)
    rtol = 4 * np.finfo(want.dtype).eps
    np.testing.assert_allclose(W.data, want.data, rtol=rtol, atol=0)


@pytest.mark.parametrize("chunks", [20, 7])
@pytest.mark.parametrize("mutual,metric,normalize", [(True, "ip", True), (False, "l2", True),
                                                     (True, "l2", False)])
def test_knn_graph_equals_single_machine(client, chunks, mutual, metric, normalize):
    rng = np.random.default_rng(5)
    x = unit_rows(rng, 41, 6)
    W = dd.knn_graph(chunked(x, chunks), k=10, mutual=mutual, metric=metric, normalize=normalize,
                     num_threads=1)
    assert_same_graph(W, deepret.knn_graph(x, k=10, mutual=mutual, metric=metric,
                                           normalize=normalize))


def test_knn_graph_k_includes_self_and_overflow_rescaling(client):
    rng = np.random.default_rng(8)
    x = unit_rows(rng, 47, 5) * np.float32(1e12)  # s^3 ~ 1e72 overflows float32: rescaled
    W = dd.knn_graph(chunked(x, (4, 40, 3)), k=9, k_includes_self=True, num_threads=1)
    assert_same_graph(W, deepret.knn_graph(x, k=9, k_includes_self=True))


def test_knn_graph_blocks_stay_on_the_cluster(client):
    rng = np.random.default_rng(9)
    x = unit_rows(rng, 40, 6)
    pieces = dd.knn_graph(chunked(x, 15), k=6, num_threads=1, blocks=True)
    rows = client.gather(pieces)
    assert [p.shape for p in rows] == [(15, 40), (15, 40), (10, 40)]
    assert_same_graph(sp.csr_array(sp.vstack(rows)), deepret.knn_graph(x, k=6))


def test_diffuse_equals_single_machine(client):
    rng = np.random.default_rng(12)
    x = unit_rows(rng, 80, 8)
    W = deepret.knn_graph(x, k=8)
    y = rng.random((80, 19)).astype(np.float32)
    with pytest.warns(deepret.ConvergenceWarning):
        want, want_info = deepret.diffuse(W, y, return_info=True)
    with pytest.warns(deepret.ConvergenceWarning):
        f, info = dd.diffuse(W, y, return_info=True, columns_per_task=7, num_threads=1)
    np.testing.assert_allclose(f, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    np.testing.assert_array_equal(info.iterations, want_info.iterations)
    # a dask y (column chunks are the batches), a 1-D y and a sparse y
    f = dd.diffuse(W, da.from_array(y, chunks=(80, 5)), alpha=0.5, tol=1e-6, maxiter=200)
    np.testing.assert_allclose(f, deepret.diffuse(W, y, alpha=0.5, tol=1e-6, maxiter=200),
                               rtol=1e-5, atol=1e-6)
    f = dd.diffuse(W, y[:, 3], alpha=0.5, tol=1e-6, maxiter=200)
    assert f.shape == (80,)
    np.testing.assert_allclose(f, deepret.diffuse(W, y[:, 3], alpha=0.5, tol=1e-6, maxiter=200),
                               rtol=1e-5, atol=1e-6)
    Y = deepret.query_vector(x, x[:9], k=4)
    f = dd.diffuse(W, Y, alpha=0.5, tol=1e-6, maxiter=200, columns_per_task=4)
    np.testing.assert_allclose(f, deepret.diffuse(W, Y, alpha=0.5, tol=1e-6, maxiter=200),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("truncation", ["restrict", "renormalize"])
def test_offline_diffusion_equals_single_machine_truncated_search(client, truncation):
    # Row i of the offline matrix is the truncated diffusion from item i: what
    # deepret.DiffusionIndex(truncate=T, query_k=1) gives for the query x_i,
    # whose y is s_ii^gamma (not exactly 1) at i: compare f / y_i.
    rng = np.random.default_rng(13)
    x = unit_rows(rng, 70, 6, np.float64)
    T = 25
    single = deepret.DiffusionIndex(x, k=8, alpha=0.9, truncate=T, truncation=truncation,
                                    query_k=1, tol=1e-14, maxiter=1000)
    want_scores, want_ids = single.search(x, topk=T)
    A = single._A if truncation == "renormalize" else None
    L, info = dd.offline_diffusion(chunked(x, (30, 4, 36)), single.W, T, alpha=0.9,
                                   truncation=truncation, A=A, tol=1e-14, maxiter=1000,
                                   num_threads=1)
    assert L.shape == (70, 70) and L.nnz == 70 * T and (info.residuals < 1e-12).all()
    y_self = np.sum(x * x, axis=1) ** 3
    dense = L.toarray()
    for i in range(70):
        np.testing.assert_array_equal(np.sort(L.indices[L.indptr[i]:L.indptr[i + 1]]),
                                      np.sort(want_ids[i]))
        np.testing.assert_allclose(dense[i, want_ids[i]] * y_self[i], want_scores[i], rtol=1e-10,
                                   atol=1e-14)


@pytest.mark.parametrize("truncate,truncation", [(None, "renormalize"), (30, "renormalize"),
                                                 (30, "restrict")])
def test_diffusion_index_equals_single_machine(client, truncate, truncation):
    rng = np.random.default_rng(14)
    x, q = unit_rows(rng, 64, 8), unit_rows(rng, 5, 8)
    index = dd.DiffusionIndex(chunked(x, (20, 20, 24)), k=7, truncate=truncate,
                              truncation=truncation, query_k=4, num_threads=1)
    single = deepret.DiffusionIndex(x, k=7, truncate=truncate, truncation=truncation, query_k=4)
    assert_same_graph(index.W, single.W)
    scores, ids = index.search(q, topk=10)
    want_scores, want_ids = single.search(q, topk=10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5)


def test_diffusion_index_offline_search(client):
    # Online work only: the weighted sum of the query neighbours' offline rows.
    rng = np.random.default_rng(15)
    x, q = unit_rows(rng, 50, 6, np.float64), unit_rows(rng, 4, 6, np.float64)
    index = dd.DiffusionIndex(chunked(x, 16), k=6, truncate=20, truncation="restrict",
                              query_k=3, offline=True, num_threads=1)
    scores, ids = index.search(q, topk=8)
    f = (index.offline_matrix.toarray().T @ deepret.query_vector(x, q, k=3).toarray()).T
    for j in range(len(q)):
        order = np.lexsort((np.arange(50), -f[j]))[:8]
        np.testing.assert_array_equal(ids[j], order)
        np.testing.assert_allclose(scores[j], f[j, order], rtol=1e-12)


def test_bad_input(client):
    x = np.ones((10, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="chunked along rows only"):
        dd.knn(da.from_array(x, chunks=(5, 2)), k=3)
    with pytest.raises(TypeError, match="dtype"):
        dd.knn(chunked(x, 5), chunked(x.astype(np.float64), 5), k=3)
    with pytest.raises(ValueError, match="larger than n - 1"):
        dd.knn(chunked(x, 5), k=10, exclude_self=True)
    with pytest.raises(ValueError, match="larger than n - 1"):
        dd.knn_graph(chunked(x, 5), k=10)
    with pytest.raises(TypeError, match="dask.array"):
        dd.knn(x, k=3)
    bad = x.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dd.knn(chunked(bad, 5), k=3)
    with pytest.raises(ValueError, match="truncate"):
        dd.DiffusionIndex(chunked(x, 5), k=3, offline=True)


def test_unreachable_scheduler(client):
    import dask

    x = chunked(np.ones((10, 4), dtype=np.float32), 5)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(ConnectionError, match="cannot reach"):
            dd.knn(x, k=3, client="tcp://127.0.0.1:9")
    closed = Client(client.scheduler.address)
    closed.close()
    with pytest.raises(ConnectionError, match="not connected"):
        dd.knn(x, k=3, client=closed)


def _kill_worker_once(block, marker, block_info=None):
    """The block of rows 20..: the first time, kill this worker process."""
    if block_info[0]["chunk-location"][0] == 2 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return block


def _fail(block, block_info=None):
    if block_info[0]["chunk-location"][0] == 1:
        raise RuntimeError("a failing input block")
    return block


def test_worker_death_is_retried_and_the_graph_is_complete(client, tmp_path):
    # A worker dies while the graph is being built (computing one input
    # block); Dask restarts it and recomputes what it held. The result must
    # be the whole graph, not a partial one.
    rng = np.random.default_rng(16)
    x = unit_rows(rng, 45, 6)
    marker = str(tmp_path / "killed")
    dying = chunked(x, 10).map_blocks(_kill_worker_once, marker, dtype=x.dtype)
    W = dd.knn_graph(dying, k=6, num_threads=1)
    assert os.path.exists(marker)  # the worker did die
    assert_same_graph(W, deepret.knn_graph(x, k=6))
    client.wait_for_workers(2, timeout=60)


def test_failing_task_raises(client):
    x = np.ones((20, 4), dtype=np.float32)
    with pytest.raises(RuntimeError, match="failing input block"):
        dd.knn_graph(chunked(x, 5).map_blocks(_fail, dtype=x.dtype), k=3)
