"""pytest glue of the benchmark suite: collection of ``bench_*.py``, the
machine description stored in the JSON, and the GPU fixture. The data,
agreement check and timing helper live in benchlib.py.

Run from the repository root:

    python -m pytest bench --benchmark-disable -q          # smoke: one call each
    python -m pytest bench --benchmark-json bench/results/convolve.json
"""

from __future__ import annotations

import os
import platform
import sys

import numpy as np
import pytest

# bench_*.py import benchlib; make that independent of pytest's import mode.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------- collection
# The repository's pyproject sets testpaths=["tests"] and the default
# python_files (test_*.py); bench files are named bench_*.py so that plain
# ``pytest`` never runs them. This hook collects them when pytest is pointed
# at this directory (``python -m pytest bench``). Files named explicitly on
# the command line are already collected by pytest itself, hence the
# isinitpath test (otherwise every case would run twice).
def pytest_collect_file(file_path, parent):
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


# ------------------------------------------------------------------- machine
def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def _blas_name() -> str:
    """numpy's BLAS as numpy reports it (e.g. 'scipy-openblas 0.3.31')."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: show_config has no mode
        return "unknown"


@pytest.hookimpl(optionalhook=True)  # a pytest-benchmark hook
def pytest_benchmark_update_machine_info(config, machine_info):
    """Everything report.py prints about the machine, recorded where the
    benchmarks ran (the report may be rendered elsewhere)."""
    import scipy

    import deepret

    flags = (_cpuinfo_field("flags") or "").split()
    machine_info["deepret"] = {
        "version": deepret.__version__,
        "simd_path": deepret.simd_path(),
        "cuda_built": deepret.cuda_built(),
        "has_cuda": deepret.has_cuda(),
        "cpu_model": _cpuinfo_field("model name") or platform.processor(),
        "cpu_mhz": float(_cpuinfo_field("cpu MHz") or "nan"),
        "cpu_avx512f": "avx512f" in flags,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "blas": _blas_name(),
        # Environment that changes the speed of the kernels or of the matmul
        # peak; recorded, never changed here.
        "env": {key: value for key, value in sorted(os.environ.items())
                if key.startswith(("OMP_", "OPENBLAS_", "MKL_", "GOMP_", "CUPY_", "DEEPRET_"))},
    }


# ----------------------------------------------------------------------- GPU
@pytest.fixture(scope="session")
def cupy_device():
    """(cupy, GPU name); skips without cupy, a CUDA-built deepret, or a GPU."""
    import deepret

    cupy = pytest.importorskip("cupy")
    if not deepret.has_cuda():
        pytest.skip("deepret has no CUDA engine or sees no GPU")
    try:
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    except Exception as error:  # cupy present but no usable driver
        pytest.skip(f"cupy cannot use the GPU: {error}")
    return cupy, name.decode() if isinstance(name, bytes) else str(name)
