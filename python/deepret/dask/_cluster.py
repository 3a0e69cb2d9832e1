"""The client, the input's row blocks and their checks, shared by the
deepret.dask functions."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..knn import _check_magnitude


def get_client(client=None):
    """The distributed.Client to run on: ``client`` itself, a new Client to
    the scheduler address ``client``, or the current default client.
    RuntimeError when there is none, ConnectionError when its scheduler
    cannot be reached."""
    from distributed import Client, default_client

    if client is None:
        try:
            client = default_client()
        except ValueError:
            raise RuntimeError(
                "deepret.dask runs on a distributed.Client and none exists: create one first, "
                "e.g. distributed.Client(LocalCluster()) or Client('tcp://scheduler:8786'), or pass "
                "client=") from None
    elif isinstance(client, str):
        address = client
        try:
            client = Client(address)  # waits distributed.comm.timeouts.connect
        except (OSError, TimeoutError) as error:
            raise ConnectionError(f"cannot reach the Dask scheduler at {address!r}: {error}") from error
    elif not isinstance(client, Client):
        raise TypeError(f"client must be a distributed.Client or a scheduler address, got "
                        f"{type(client).__name__}")
    if client.status != "running":
        raise ConnectionError(f"the Dask client is not connected to its scheduler (status "
                              f"{client.status!r}); the scheduler may have stopped")
    return client


class Tasks:
    """A client's submit/map/compute/scatter that holds the futures it
    returns for as long as the scheduler may still need them.

    A future released before the scheduler has registered the tasks that
    depend on it cancels them ("lost dependencies"); one held to the end
    keeps every intermediate result in the workers' memory. So an
    intermediate future is let go once every task submitted on it has
    finished (the scheduler then has its lineage: a lost result is
    recomputed from it), and the rest when this object goes.
    """

    def __init__(self, client):
        import threading

        self.client = client
        self.held = {}        # key -> future
        self._waiting = {}    # key -> dependents (futures) not yet finished
        self._lock = threading.Lock()

    def _hold(self, future, args):
        from distributed import Future

        inputs = [a for a in args if isinstance(a, Future)]
        with self._lock:
            self.held[future.key] = future
            for dep in inputs:
                self._waiting.setdefault(dep.key, set()).add(future.key)
        if inputs:
            future.add_done_callback(lambda f, keys=[d.key for d in inputs]: self._finished(f.key, keys))

    def _finished(self, key, inputs):
        with self._lock:
            for dep in inputs:
                waiting = self._waiting.get(dep)
                if waiting is None:
                    continue
                waiting.discard(key)
                if not waiting:
                    del self._waiting[dep]
                    self.held.pop(dep, None)

    def submit(self, function, *args, **kwargs):
        future = self.client.submit(function, *args, **kwargs)
        self._hold(future, args)
        return future

    def map(self, function, *iterables, **kwargs):
        futures = self.client.map(function, *iterables, **kwargs)
        for future, args in zip(futures, zip(*iterables)):
            self._hold(future, args)
        return futures

    def compute(self, collections):
        futures = self.client.compute(collections)
        for future in futures:
            self._hold(future, ())
        return futures

    def scatter(self, data, **kwargs):
        # A fresh key each time: an equal object scattered by an earlier call
        # may be in the middle of being released under its content hash.
        future = self.client.scatter(data, hash=False, **kwargs)
        self._hold(future, ())
        return future

    def gather(self, futures):
        return self.client.gather(futures)

    def wait(self, futures):
        from distributed import wait

        wait(futures)


class Blocks(NamedTuple):
    """A row-chunked (n, d) array on the cluster: one future per row block."""

    futures: list      # futures of the (rows, d) numpy blocks, in row order
    starts: np.ndarray  # (blocks + 1,) int64: block b holds rows starts[b] .. starts[b + 1]
    d: int
    dtype: np.dtype
    largest: float     # max |value|

    @property
    def n(self) -> int:
        return int(self.starts[-1])

    def sizes(self):
        return np.diff(self.starts)


def _value_range(block):
    """(min, max) of a block; NaN propagates."""
    return float(block.min()), float(block.max())


def row_blocks(name: str, x, tasks: Tasks) -> Blocks:
    """Validates a dask array (n, d) chunked along rows only, float32 or
    float64, finite, and computes its blocks on the cluster."""
    import dask.array as da

    if not isinstance(x, da.Array):
        raise TypeError(f"{name} must be a dask.array.Array (n, d), got {type(x).__name__} "
                        f"(wrap a numpy array with dask.array.from_array(x, chunks=(rows, -1)))")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    if any(np.isnan(c) for c in x.chunks[0]):
        raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {x.shape}")
    if len(x.chunks[1]) != 1:
        raise ValueError(
            f"{name} must be chunked along rows only (one chunk of all {x.shape[1]} columns), got "
            f"column chunks {x.chunks[1]}: rechunk with {name}.rechunk({{1: -1}})")
    keep = [b for b, rows in enumerate(x.chunks[0]) if rows > 0]
    delayed = x.to_delayed()[:, 0]
    futures = tasks.compute([delayed[b] for b in keep])
    sizes = np.array([x.chunks[0][b] for b in keep], dtype=np.int64)
    ranges = tasks.gather(tasks.map(_value_range, futures, pure=False))
    if not np.isfinite(ranges).all():  # NaN propagates through each block's min and max
        raise ValueError(f"{name} contains NaN or infinity")
    low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return Blocks(futures, starts, int(x.shape[1]), np.dtype(x.dtype), max(-low, high))


def check_magnitude(largest: float, d: int, dtype, metric: str) -> None:
    _check_magnitude(largest, d, dtype, metric)
