"""Helpers of the benchmark suite: the data every contender of a case
shares, the agreement check against numpy.convolve, and the timing helper.

A plain module rather than conftest.py content, so bench files can import it
(conftest.py puts this directory on sys.path).
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np

# Each timed case aims at about this many seconds of measured calls, between
# MIN_ROUNDS and MAX_ROUNDS rounds of one call each: a median of >= 5 rounds
# for the slow contenders, a few hundred for the sub-millisecond ones.
TARGET_SECONDS = 1.0
MIN_ROUNDS = 5
MAX_ROUNDS = 300

# Agreement with numpy.convolve, as max|ours - numpy| / max(|a| conv |v|).
# Direct summation in float32 stays near 1e-7 at these sizes, float64 near
# 1e-16; the bounds leave room for other summation orders. FFT error grows
# with log(n) and with the signal's energy rather than the local sum, so it
# gets a bound 10x (float32) / 100x (float64) looser -- still far below
# what a wrong index or a dropped tap would produce (order 1e-2 or more).
TOLERANCE = {
    ("direct", "float32"): 1e-4,
    ("direct", "float64"): 1e-12,
    ("fft", "float32"): 1e-3,
    ("fft", "float64"): 1e-10,
}


# ---------------------------------------------------------------------- data
@functools.lru_cache(maxsize=None)
def case_data(n: int, m: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """The signal and taps of one case, the same arrays for every contender.

    Seeded by the case so that a single selected test (-k) sees the same
    data as the full run.
    """
    rng = np.random.default_rng([n, m, np.dtype(dtype).itemsize])
    signal = rng.standard_normal(n).astype(dtype)
    taps = rng.standard_normal(m).astype(dtype)
    signal.flags.writeable = taps.flags.writeable = False  # shared: nobody may modify them
    return signal, taps


@functools.lru_cache(maxsize=None)
def numpy_reference(n: int, m: int, dtype: str) -> tuple[np.ndarray, float]:
    """numpy.convolve's full result and the error scale max(|a| conv |v|).

    Cached: at m = 3001 numpy takes ~0.3 s, and every contender of the case
    is checked against it. The scale is only a magnitude, so an FFT of the
    absolute values (in float64) is good enough and cheap.
    """
    from scipy.signal import fftconvolve

    signal, taps = case_data(n, m, dtype)
    reference = np.convolve(signal, taps, "full")
    scale = float(fftconvolve(np.abs(signal.astype(np.float64)),
                              np.abs(taps.astype(np.float64))).max())
    return reference, scale


def relative_error(result, n: int, m: int, dtype: str) -> float:
    reference, scale = numpy_reference(n, m, dtype)
    result = np.asarray(result)
    assert result.shape == reference.shape, (result.shape, reference.shape)
    assert result.dtype == reference.dtype, (result.dtype, reference.dtype)
    return float(np.abs(result.astype(np.float64) - reference).max() / scale)


def assert_agrees(result, n: int, m: int, dtype: str, method: str) -> float:
    """Fail unless ``result`` (host array) matches numpy.convolve; returns the error."""
    error = relative_error(result, n, m, dtype)
    bound = TOLERANCE[(method, dtype)]
    assert error <= bound, f"max relative error {error:.3e} > {bound:.0e} ({method}, {dtype}, m={m})"
    return error


# -------------------------------------------------------------------- timing
def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def run_timed(benchmark, function, check, **info):
    """Warm up, check the result, then time ``function`` with pedantic rounds.

    ``check(result)`` asserts agreement and returns the error it measured;
    it runs on the warm-up result before any timing (with
    --benchmark-disable, on the result of the single call). ``info`` goes
    to benchmark.extra_info for report.py, with the error and the rounds.
    """
    benchmark.extra_info.update(info)
    if benchmark.disabled:  # smoke run: one call, still checked
        benchmark.extra_info["max_rel_error"] = check(benchmark.pedantic(function, rounds=1))
        return
    # Warm-up call: thread pool start, page faults, GPU kernel compilation.
    benchmark.extra_info["max_rel_error"] = check(function())
    one_call = max(_seconds(function), 1e-6)
    rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, math.ceil(TARGET_SECONDS / one_call)))
    benchmark.extra_info["rounds"] = rounds
    benchmark.pedantic(function, rounds=rounds, iterations=1, warmup_rounds=0)


# ------------------------------------------------------------ Fashion-MNIST
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_MISSING = (
    "Fashion-MNIST not found in /usr/share/datasets/fashion-mnist (the Debian package "
    "dataset-fashion-mnist: `sudo apt-get install dataset-fashion-mnist`)")


def _idx(path):
    """An idx-format array (the MNIST files): magic, dims, then the data."""
    import gzip

    with gzip.open(path) as handle:
        raw = handle.read()
    dims = raw[3]
    if raw[:2] != b"\0\0" or raw[2] != 0x08:  # unsigned bytes, as all MNIST files
        raise ValueError(f"{path} is not an idx file of unsigned bytes")
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


@functools.lru_cache(maxsize=None)
def fashion_mnist():
    """(train images (60000, 784), train labels, test images (10000, 784),
    test labels): the pixels as float32, L2-normalized rows (cosine
    similarity on raw pixels), labels uint8; None when the files are absent
    (callers skip with FASHION_MNIST_MISSING)."""
    import os

    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    paths = [os.path.join(FASHION_MNIST_DIR, name) for name in names]
    if not all(os.path.exists(path) for path in paths):
        return None
    train, train_labels, test, test_labels = (_idx(path) for path in paths)

    def rows(images):
        x = images.reshape(len(images), -1).astype(np.float32)
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        x.flags.writeable = False
        return x

    return rows(train), train_labels, rows(test), test_labels


def label_map(scores, labels, query_labels):
    """Mean average precision of rankings by `scores` (n, nq), higher first
    (ties by the smaller index), with relevance = same label: AP over the
    whole database per query, averaged."""
    aps = []
    for j in range(scores.shape[1]):
        order = np.argsort(-scores[:, j], kind="stable")
        relevant = labels[order] == query_labels[j]
        ranks = np.flatnonzero(relevant) + 1
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks) if len(ranks) else 0.0)
    return float(np.mean(aps))
