"""deepret.convolve against its peers, one pytest-benchmark group per case.

A case is (n, m, dtype) in mode "full"; every contender of a case gets the
same arrays (benchlib.case_data), is checked against numpy.convolve before it
is timed, and records in extra_info what report.py needs: contender, n, m,
dtype, flops = 2*n*m (one multiply-add = 2 flops, the direct method's work,
also charged to FFT methods so GFLOP/s compare like for like).

The "peak" group times a large numpy matmul, the machine's practical
GFLOP/s, so the report can give each kernel's share of it. The GPU cases
(marker ``gpu``) skip unless cupy and a CUDA-built deepret see a GPU.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import deepret
from benchlib import assert_agrees, case_data, run_timed

N = 1_000_000
TAPS = (3, 31, 301, 3001)
DTYPES = ("float32", "float64")
MATMUL_N = 2048  # 2*N^3 = 17 GFLOP: ~0.1 s at the expected peak, long enough to reach it
GPU_MATMUL_N = 8192

# deepret's thread count when num_threads is None (OMP_NUM_THREADS, else the affinity mask).
DEEPRET_THREADS = (int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0] or 0)
                   or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()))


def _torch():
    """torch is no dependency of deepret: a peer only where it is installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


# ----------------------------------------------------------------- CPU peers
# Each contender: (accuracy class, threads it uses, factory). The factory gets
# the shared arrays and returns the zero-argument call that is timed, so any
# conversion (torch tensors) happens outside the timing.
def _deepret(a, v):
    return lambda: deepret.convolve(a, v, "full")


def _deepret_one_thread(a, v):
    # Not a peer: deepret on numpy's single thread, to separate the kernel's
    # speed from the threading (and to show what oversubscription costs).
    return lambda: deepret.convolve(a, v, "full", num_threads=1)


def _numpy(a, v):
    return lambda: np.convolve(a, v, "full")


def _scipy_direct(a, v):
    # For 1-D inputs scipy hands "direct" to numpy.convolve, so it costs the
    # same as numpy (no need to cap it at m = 3001); it is kept because it
    # is what scipy users call.
    from scipy.signal import convolve
    return lambda: convolve(a, v, mode="full", method="direct")


def _scipy_fft(a, v):
    from scipy.signal import convolve
    return lambda: convolve(a, v, mode="full", method="fft")


def _torch_conv1d(a, v):
    torch = _torch()
    # torch's CPU conv1d unfolds the signal (im2col): n * m values, 24 GB at
    # m = 3001 in float64, which the OOM killer ends. Skip what would not fit.
    if len(a) * len(v) * a.itemsize > 2**31:
        pytest.skip(f"torch conv1d would unfold {len(a) * len(v) * a.itemsize / 2**30:.0f} GiB")
    # conv1d is a correlation: flip the taps; padding m-1 gives mode "full".
    signal = torch.from_numpy(np.array(a)).reshape(1, 1, -1)
    taps = torch.from_numpy(np.array(v[::-1])).reshape(1, 1, -1)
    pad = len(v) - 1
    return lambda: torch.nn.functional.conv1d(signal, taps, padding=pad).reshape(-1).numpy()


CPU_CONTENDERS = {
    "deepret": ("direct", DEEPRET_THREADS, _deepret),
    "deepret 1 thread": ("direct", 1, _deepret_one_thread),
    "numpy.convolve": ("direct", 1, _numpy),
    "scipy direct": ("direct", 1, _scipy_direct),
    "scipy fft": ("fft", 1, _scipy_fft),
}
if _torch() is not None:
    CPU_CONTENDERS["torch conv1d"] = ("direct", _torch().get_num_threads(), _torch_conv1d)


@pytest.mark.parametrize("contender", list(CPU_CONTENDERS))
@pytest.mark.parametrize("m", TAPS, ids=lambda m: f"m{m}")
@pytest.mark.parametrize("dtype", DTYPES)
def test_convolve(benchmark, dtype, m, contender):
    method, threads, factory = CPU_CONTENDERS[contender]
    a, v = case_data(N, m, dtype)
    benchmark.group = f"convolve full n={N} m={m} {dtype}"
    run_timed(
        benchmark, factory(a, v),
        check=lambda result: assert_agrees(result, N, m, dtype, method),
        contender=contender, ours=contender == "deepret", device="cpu", kind="convolve",
        n=N, m=m, dtype=dtype, mode="full", flops=2 * N * m, threads=threads,
    )


# ---------------------------------------------------------------------- peak
def _matmul_check(a, b, flop_dtype):
    """A matmul result's first rows against a float64 product of the same rows."""
    def check(c):
        rows = 8
        exact = a[:rows].astype(np.float64) @ b.astype(np.float64)
        scale = np.abs(a[:rows]).astype(np.float64) @ np.abs(b).astype(np.float64)
        error = float((np.abs(c[:rows] - exact) / scale).max())
        assert error < (1e-4 if flop_dtype == "float32" else 1e-12), error
        return error
    return check


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_peak(benchmark, dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((MATMUL_N, MATMUL_N)).astype(dtype)
    b = rng.standard_normal((MATMUL_N, MATMUL_N)).astype(dtype)
    benchmark.group = f"peak: numpy matmul {MATMUL_N}x{MATMUL_N} {dtype}"
    run_timed(
        benchmark, lambda: a @ b, check=_matmul_check(a, b, dtype),
        contender="numpy matmul", ours=False, device="cpu", kind="peak",
        n=MATMUL_N, dtype=dtype, flops=2 * MATMUL_N**3,
        # BLAS threads: recorded so a slow peak can be explained, not tuned.
        threads=os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "BLAS default",
        openblas_env={k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
    )


# ----------------------------------------------------------------------- GPU
# Timed functions synchronize the device, so a round is the kernel's whole
# time, not its launch. Agreement is checked on the host copy.
def _gpu_deepret(cp, a, v):
    return lambda: deepret.convolve(a, v, "full")


def _gpu_cupy(cp, a, v):
    return lambda: cp.convolve(a, v, "full")


def _gpu_cupyx(method):
    def factory(cp, a, v):
        signal = pytest.importorskip("cupyx.scipy.signal")
        return lambda: signal.convolve(a, v, mode="full", method=method)
    return factory


GPU_CONTENDERS = {
    "deepret": ("direct", _gpu_deepret),
    # cupy.convolve picks direct or FFT by size: held to the FFT bound.
    "cupy.convolve": ("fft", _gpu_cupy),
    "cupyx direct": ("direct", _gpu_cupyx("direct")),
    "cupyx fft": ("fft", _gpu_cupyx("fft")),
}


def _synchronized(cp, call):
    def run():
        result = call()
        cp.cuda.Device().synchronize()
        return result
    return run


@pytest.mark.gpu
@pytest.mark.parametrize("contender", list(GPU_CONTENDERS))
@pytest.mark.parametrize("m", TAPS, ids=lambda m: f"m{m}")
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_convolve(benchmark, cupy_device, dtype, m, contender):
    cp, gpu_name = cupy_device
    method, factory = GPU_CONTENDERS[contender]
    host_a, host_v = case_data(N, m, dtype)
    a, v = cp.asarray(host_a), cp.asarray(host_v)
    benchmark.group = f"gpu convolve full n={N} m={m} {dtype}"
    run_timed(
        benchmark, _synchronized(cp, factory(cp, a, v)),
        check=lambda result: assert_agrees(cp.asnumpy(result), N, m, dtype, method),
        contender=contender, ours=contender == "deepret", device="gpu", gpu_name=gpu_name,
        kind="convolve", n=N, m=m, dtype=dtype, mode="full", flops=2 * N * m,
    )


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_matmul_peak(benchmark, cupy_device, dtype):
    cp, gpu_name = cupy_device
    rng = cp.random.default_rng(1)
    a = rng.standard_normal((GPU_MATMUL_N, GPU_MATMUL_N), dtype=dtype)
    b = rng.standard_normal((GPU_MATMUL_N, GPU_MATMUL_N), dtype=dtype)
    check = _matmul_check(cp.asnumpy(a), cp.asnumpy(b), dtype)
    benchmark.group = f"gpu peak: cupy matmul {GPU_MATMUL_N}x{GPU_MATMUL_N} {dtype}"
    run_timed(
        benchmark, _synchronized(cp, lambda: a @ b),
        check=lambda c: check(cp.asnumpy(c[:8])),
        contender="cupy matmul", ours=False, device="gpu", gpu_name=gpu_name, kind="peak",
        n=GPU_MATMUL_N, dtype=dtype, flops=2 * GPU_MATMUL_N**3,
        cupy_tf32=os.environ.get("CUPY_TF32", "0"),  # TF32 would inflate the float32 "peak"
    )
