"""``deepret rank``: diffusion ranking of a user's own descriptors.

Reads the database (n, d) and the queries (nq, d) from .npy files (float32
or float64; rows need not be L2-normalized: they are normalized here, so the
similarity is the cosine; an all-zero row cannot be and is an error), builds
the mutual kNN graph once, solves the queries in batches of batched CG, and
writes the (nq, topk) int64 database row ids, best first, to ``--out``.

Every failure (bad input, bad option, an output that cannot be written, a
write that fails halfway, e.g. on a full disk or a file-size limit) stops
with one line on stderr and exit status 2; SIGTERM and Ctrl-C stop with one
line and 143 / 130. The output is written to a temporary file next to
``--out`` and renamed into place only when complete, and the temporary file
is removed on every failure and on SIGTERM, so no partial file is left
behind. ``--out`` must be a regular file or not exist yet: a device, FIFO or
socket is refused (it would be replaced by the rename). Progress bars are
drawn only when stderr is a terminal.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import stat
import sys
import tempfile
import threading

import numpy as np

QUERY_BATCH = 256  # queries per CG batch: bounds the (n, batch) solution in memory
MAX_GAMMA = 100.0  # cosines <= 1: beyond this every affinity but the exact duplicates underflows
MAX_ITER = 100_000

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


class InputError(Exception):
    """A bad input or argument: reported as one line, exit status 2."""


class _Terminated(Exception):
    """SIGTERM arrived: unwind (removing the temporary file), exit 143."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def _stat(path: str, name: str):
    """os.stat(path) (links followed), or None when nothing is there."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise InputError(f"cannot use {name} {path}: {error.strerror or error}") from None


def _read_header(path: str, name: str):
    """(shape, dtype) from the .npy header, checked against the file's size."""
    from numpy.lib import format as npy

    with open(path, "rb") as handle:
        start = handle.read(len(_NPY_MAGIC))
        if start[:4] == _ZIP_MAGIC:
            raise InputError(f"{name} must be one .npy array, got an .npz (zip) archive: {path}")
        if start != _NPY_MAGIC:
            raise InputError(f"{name} is not a .npy file (it does not start with the .npy magic "
                             f"string): {path}")
        handle.seek(0)
        try:
            version = npy.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = npy.read_array_header_1_0(handle)
            else:
                shape, _, dtype = npy.read_array_header_2_0(handle)
        except (ValueError, OSError, EOFError, SyntaxError) as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise InputError(f"{name} has a corrupt .npy header ({path}): {message}") from None
        offset = handle.tell()
    if dtype.hasobject:
        raise InputError(f"{name} holds Python objects (a pickled object array), not numbers: {path}")
    needed = offset + math.prod(shape) * dtype.itemsize
    size = os.path.getsize(path)
    if size < needed:
        raise InputError(f"{name} is truncated: its header says shape {shape} {dtype} ({needed} bytes), "
                         f"the file has {size} bytes ({path})")
    return shape, dtype


def _load(path: str, name: str) -> np.ndarray:
    info = _stat(path, name)
    if info is None:
        raise InputError(f"{name} file not found: {path}")
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{name} is a directory, not an .npy file: {path}")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{name} must be a regular .npy file, got {_kind(info.st_mode)}: {path}")
    if info.st_size == 0:
        raise InputError(f"{name} file is empty: {path}")
    try:
        shape, dtype = _read_header(path, name)
        if dtype not in (np.float32, np.float64):
            raise InputError(f"{name} must be float32 or float64, got {dtype} ({path})")
        if len(shape) != 2:
            raise InputError(f"{name} must be 2-D (rows, d), got shape {shape} ({path})")
        if shape[0] == 0 or shape[1] == 0:
            raise InputError(f"{name} has no data: shape {shape} ({path})")
        array = np.load(path, allow_pickle=False)
    except OSError as error:
        raise InputError(f"cannot read {name} {path}: {error.strerror or error}") from None
    except (ValueError, EOFError) as error:
        raise InputError(f"{name} is not a readable .npy array ({path}): {str(error).splitlines()[0]}") from None
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise InputError(f"{name} holds NaN or Inf (first in row {bad}) ({path})")
    # Each row scaled by its largest magnitude first: the norm of huge finite
    # values (1e30 in float32) would overflow, that of tiny ones underflow to 0.
    scale = np.abs(array).max(axis=1, keepdims=True)
    if not scale.all():
        bad = int(np.flatnonzero(scale.ravel() == 0)[0])
        raise InputError(f"{name} row {bad} is all zeros and cannot be L2-normalized ({path})")
    unit = array / scale
    return np.ascontiguousarray(unit / np.linalg.norm(unit, axis=1, keepdims=True), dtype=array.dtype)


def _check_arguments(args, database: np.ndarray, queries: np.ndarray) -> None:
    n, d = database.shape
    if queries.shape[1] != d:
        raise InputError(f"queries have d = {queries.shape[1]} but the database has d = {d}")
    if queries.dtype != database.dtype:
        raise InputError(f"queries are {queries.dtype} but the database is {database.dtype}; use one dtype")
    _check_options(args, n)


def _check_options(args, n=None) -> None:
    """Range checks of the options (n: the database size, once known)."""
    for name in ("k", "topk", "query_k", "maxiter"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.maxiter > MAX_ITER:
        raise InputError(f"--maxiter must be at most {MAX_ITER}, got {args.maxiter}")
    if not 0 < args.alpha < 1:
        raise InputError(f"--alpha must be in (0, 1), got {args.alpha}")
    if not 0 < args.gamma <= MAX_GAMMA:
        raise InputError(f"--gamma must be in (0, {MAX_GAMMA:g}], got {args.gamma}")
    if n is None:
        return
    if args.k >= n:
        raise InputError(f"--k ({args.k}) must be smaller than the database size ({n})")
    if args.query_k > n:
        raise InputError(f"--query-k ({args.query_k}) is larger than the database ({n})")
    if args.topk > n:
        raise InputError(f"--topk ({args.topk}) is larger than the database ({n})")


def _check_out(out: str) -> None:
    """--out must be a regular file (replaced) or a new path in an existing directory."""
    info = _stat(out, "--out")
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise InputError(f"--out is a directory: {out}")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise InputError(f"--out must be a regular file or a new path, got {_kind(info.st_mode)}: {out}")
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        raise InputError(f"--out directory does not exist: {directory}")


def _temporary_output(out: str):
    """An open temporary file in --out's directory (checks writability up front)."""
    _check_out(out)
    try:
        return tempfile.NamedTemporaryFile(dir=os.path.dirname(os.path.abspath(out)),
                                           prefix=".deepret-rank-", suffix=".npy", delete=False)
    except OSError as error:
        raise InputError(f"cannot write --out {out}: {error.strerror or error}") from None


def _save(temporary, ranks, out: str) -> None:
    """Write, flush and rename into place; any OSError (disk full, file-size
    limit, ...) becomes one line."""
    try:
        np.save(temporary, ranks, allow_pickle=False)
        temporary.flush()
        os.fsync(temporary.fileno())
        temporary.close()
        _check_out(out)  # still a regular file or nothing (the rename would replace anything)
        os.replace(temporary.name, out)
    except OSError as error:
        raise InputError(f"cannot write --out {out}: {error.strerror or error}") from None


def _rank(args, database, queries, bar):
    """The ranks by DiffusionIndex: on the CPU engine, or with --gpu on CuPy
    arrays (the same code on the CUDA engine)."""
    import deepret

    if args.gpu:
        if not deepret.has_cuda():
            raise InputError("--gpu: no usable GPU (needs the CUDA engine, CuPy and a visible device)")
        import cupy

        database, queries = cupy.asarray(database), cupy.asarray(queries)
    index = deepret.DiffusionIndex(database, k=args.k, gamma=args.gamma, alpha=args.alpha,
                                   query_k=args.query_k, maxiter=args.maxiter,
                                   progress=not bar.disable)
    ranks = np.empty((len(queries), args.topk), dtype=np.int64)
    for start in range(0, len(queries), QUERY_BATCH):
        stop = min(start + QUERY_BATCH, len(queries))
        _, ids = index.search(queries[start:stop], topk=args.topk)
        ranks[start:stop] = ids.get() if args.gpu else ids  # type: ignore[attr-defined]  # CuPy with --gpu
        bar.update(stop - start)
    return ranks


@contextlib.contextmanager
def _sigterm_deferred():
    """SIGTERM stays pending inside the block (where POSIX allows)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _on_sigterm(signum, frame):
    raise _Terminated()


def run(args) -> int:
    from tqdm.auto import tqdm

    # SIGTERM unwinds like an exception, so that `finally` removes the
    # temporary file (signal handlers can only be set from the main thread).
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    temporary = None
    try:
        _check_options(args)
        _check_out(args.out)
        database = _load(args.database, "--database")
        queries = _load(args.queries, "--queries")
        _check_arguments(args, database, queries)
        # disable=None: a bar only where stderr is a terminal, nothing in a log.
        # The bar exists before the temporary file does: a SIGTERM inside
        # tqdm's constructor would leave a half-built bar whose __del__ fails.
        with tqdm(total=len(queries), desc="diffusion", unit="query", file=sys.stderr,
                  disable=None) as bar:
            # SIGTERM waits while the file is made and named here, so that
            # `finally` always knows which file to remove.
            with _sigterm_deferred():
                temporary = _temporary_output(args.out)
            ranks = _rank(args, database, queries, bar)
        _save(temporary, ranks, args.out)
        temporary = None
    except (InputError, ValueError, TypeError) as error:  # deepret's own checks raise the latter two
        print(f"deepret rank: error: {error}", file=sys.stderr)
        return 2
    except MemoryError:
        print("deepret rank: error: out of memory (try fewer queries per run or a smaller --k)",
              file=sys.stderr)
        return 2
    except OSError as error:
        print(f"deepret rank: error: {error.strerror or error}"
              + (f": {error.filename}" if error.filename else ""), file=sys.stderr)
        return 2
    except _Terminated:
        print("deepret rank: terminated (SIGTERM); no output written", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("deepret rank: interrupted; no output written", file=sys.stderr)
        return 128 + signal.SIGINT
    finally:
        if temporary is not None:
            temporary.close()
            try:
                os.unlink(temporary.name)
            except OSError:
                pass
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(f"wrote {args.out}: ({len(queries)}, {args.topk}) int64 database row ids, best first")
    return 0
