"""``deepret rank``: diffusion ranking of a user's own descriptors.

Reads the database (n, d) and the queries (nq, d) from .npy files (float32
or float64; rows need not be L2-normalized: they are normalized here, so the
similarity is the cosine; an all-zero row cannot be and is an error), builds
the mutual kNN graph once, solves the queries in batches of batched CG, and
writes the (nq, topk) int64 database row ids, best first, to ``--out``.

Every bad input stops with one line on stderr and exit status 2 before any
output exists; the output is written to a temporary file next to ``--out``
and renamed into place only when complete, so a failure never leaves a
partial file behind.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings

import numpy as np

QUERY_BATCH = 256  # queries per CG batch: bounds the (n, batch) solution in memory


class InputError(Exception):
    """A bad input or argument: reported as one line, exit status 2."""


def _load(path: str, name: str) -> np.ndarray:
    if not os.path.exists(path):
        raise InputError(f"{name} file not found: {path}")
    if os.path.isdir(path):
        raise InputError(f"{name} is a directory, not an .npy file: {path}")
    if os.path.getsize(path) == 0:
        raise InputError(f"{name} file is empty: {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise InputError(f"{name} is not a readable .npy array ({path}): {str(error).splitlines()[0]}")
    if not isinstance(array, np.ndarray):
        raise InputError(f"{name} must be one .npy array, got an .npz archive: {path}")
    if array.dtype not in (np.float32, np.float64):
        raise InputError(f"{name} must be float32 or float64, got {array.dtype} ({path})")
    if array.ndim != 2:
        raise InputError(f"{name} must be 2-D (rows, d), got shape {array.shape} ({path})")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"{name} has no data: shape {array.shape} ({path})")
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise InputError(f"{name} holds NaN or Inf (first in row {bad}) ({path})")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if not norms.all():
        bad = int(np.flatnonzero(norms.ravel() == 0)[0])
        raise InputError(f"{name} row {bad} is all zeros and cannot be L2-normalized ({path})")
    return np.ascontiguousarray(array / norms, dtype=array.dtype)


def _check_arguments(args, database: np.ndarray, queries: np.ndarray) -> None:
    n, d = database.shape
    if queries.shape[1] != d:
        raise InputError(f"queries have d = {queries.shape[1]} but the database has d = {d}")
    if queries.dtype != database.dtype:
        raise InputError(f"queries are {queries.dtype} but the database is {database.dtype}; use one dtype")
    for name in ("k", "topk", "query_k", "maxiter"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.k >= n:
        raise InputError(f"--k ({args.k}) must be smaller than the database size ({n})")
    if args.query_k > n:
        raise InputError(f"--query-k ({args.query_k}) is larger than the database ({n})")
    if args.topk > n:
        raise InputError(f"--topk ({args.topk}) is larger than the database ({n})")
    if not 0 < args.alpha < 1:
        raise InputError(f"--alpha must be in (0, 1), got {args.alpha}")


def _temporary_output(out: str):
    """An open temporary file in --out's directory (checks writability up front)."""
    directory = os.path.dirname(os.path.abspath(out))
    if os.path.isdir(out):
        raise InputError(f"--out is a directory: {out}")
    if not os.path.isdir(directory):
        raise InputError(f"--out directory does not exist: {directory}")
    try:
        return tempfile.NamedTemporaryFile(dir=directory, prefix=".deepret-rank-", suffix=".npy",
                                           delete=False)
    except OSError as error:
        raise InputError(f"cannot write --out {out}: {error.strerror or error}")


def _rank_cpu(args, database, queries, bar):
    import deepret

    index = deepret.DiffusionIndex(database, k=args.k, gamma=args.gamma, alpha=args.alpha,
                                   query_k=args.query_k, maxiter=args.maxiter, progress=True)
    ranks = np.empty((len(queries), args.topk), dtype=np.int64)
    for start in range(0, len(queries), QUERY_BATCH):
        stop = min(start + QUERY_BATCH, len(queries))
        _, ranks[start:stop] = index.search(queries[start:stop], topk=args.topk)
        bar.update(stop - start)
    return ranks


def _rank_gpu(args, database, queries, bar):
    import deepret
    from deepret import _arrays

    if not deepret.has_cuda():
        raise InputError("--gpu: no usable GPU (needs the CUDA engine, CuPy and a visible device)")
    cp = _arrays.cupy_module()
    x = cp.asarray(database)
    W = deepret.knn_graph(x, k=args.k, gamma=args.gamma)
    n = len(database)
    ranks = np.empty((len(queries), args.topk), dtype=np.int64)
    for start in range(0, len(queries), QUERY_BATCH):
        stop = min(start + QUERY_BATCH, len(queries))
        scores, ids = deepret.knn(x, cp.asarray(queries[start:stop]), k=args.query_k)
        y = cp.zeros((n, stop - start), dtype=x.dtype)
        columns = cp.broadcast_to(cp.arange(stop - start)[:, None], ids.shape)
        y[ids.ravel(), columns.ravel()] = (cp.maximum(scores, 0) ** args.gamma).ravel()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", deepret.ConvergenceWarning)
            f = deepret.diffuse(W, y, args.alpha, 1e-6, args.maxiter)
        ranks[start:stop] = cp.asnumpy(cp.argsort(-f, axis=0)[:args.topk].T)
        bar.update(stop - start)
    return ranks


def run(args) -> int:
    from tqdm.auto import tqdm

    temporary = None
    try:
        database = _load(args.database, "--database")
        queries = _load(args.queries, "--queries")
        _check_arguments(args, database, queries)
        temporary = _temporary_output(args.out)
        with tqdm(total=len(queries), desc="diffusion", unit="query", file=sys.stderr) as bar:
            ranks = (_rank_gpu if args.gpu else _rank_cpu)(args, database, queries, bar)
        np.save(temporary, ranks, allow_pickle=False)
        temporary.close()
        os.replace(temporary.name, args.out)
        temporary = None
    except (InputError, ValueError, TypeError) as error:  # deepret's own checks raise the latter two
        print(f"deepret rank: error: {error}", file=sys.stderr)
        return 2
    except MemoryError:
        print("deepret rank: error: out of memory (try fewer queries per run or a smaller --k)",
              file=sys.stderr)
        return 2
    finally:
        if temporary is not None:
            temporary.close()
            os.unlink(temporary.name)
    print(f"wrote {args.out}: ({len(queries)}, {args.topk}) int64 database row ids, best first")
    return 0
