"""numpy's and scipy's own convolution test classes, run against deepret's
functions installed in place of theirs (tests/dropin/deepret_dropin.py), as a
program using deepret as a drop-in backend would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy

import deepret

HERE = Path(__file__).parent


def _installed_test_file(package, *candidates: str) -> Path:
    root = Path(package.__file__).parent
    for relative in candidates:
        if (root / relative).is_file():
            return root / relative
    raise AssertionError(f"none of {candidates} in {root}: this {package.__name__} ships no tests")


def _run_reference_suite(tmp_path, node_ids):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE / "dropin"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "deepret_dropin", "-p", "no:cacheprovider", "-q", *node_ids],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "deepret drop-in calls" in proc.stdout, proc.stdout[-2000:]
    return proc.stdout


def test_numpy_convolve_and_correlate_suites_pass_against_deepret(tmp_path):
    numeric = _installed_test_file(np, "_core/tests/test_numeric.py", "core/tests/test_numeric.py")
    out = _run_reference_suite(tmp_path, [f"{numeric}::TestConvolve", f"{numeric}::TestCorrelate"])
    assert " passed" in out and " failed" not in out


def test_scipy_convolve2d_and_correlate2d_suites_pass_against_deepret(tmp_path):
    signaltools = _installed_test_file(scipy, "signal/tests/test_signaltools.py")
    out = _run_reference_suite(tmp_path, [f"{signaltools}::TestConvolve2d", f"{signaltools}::TestCorrelate2d"])
    assert " passed" in out and " failed" not in out


def test_object_arrays_reach_numpy_even_when_deepret_replaced_it(monkeypatch):
    a = np.array([1, 2, 3], dtype=object)
    expected_convolve = np.convolve(a, a)
    expected_correlate = np.correlate(a, a[::-1], "full")
    monkeypatch.setattr(np, "convolve", deepret.convolve)
    monkeypatch.setattr(np, "correlate", deepret.correlate)
    assert deepret.convolve(a, a).tolist() == expected_convolve.tolist() == [1, 4, 10, 12, 9]
    assert deepret.correlate(a, a[::-1], "full").tolist() == expected_correlate.tolist()


def test_scipy_fallback_dtypes_reach_scipy_even_when_deepret_replaced_it(monkeypatch):
    """deepret hands the dtypes scipy rejects (float16, bool, object) to scipy,
    whose exception is by definition scipy's: it must come from scipy's
    original, not from deepret called again."""
    import scipy.signal

    image = np.arange(12, dtype=np.float16).reshape(3, 4)
    kernel = np.ones((2, 2), np.float16)
    with pytest.raises(ValueError) as expected:
        scipy.signal.convolve2d(image, kernel)
    monkeypatch.setattr(scipy.signal, "convolve2d", deepret.convolve2d)
    monkeypatch.setattr(scipy.signal, "correlate2d", deepret.correlate2d)
    for function in (deepret.convolve2d, deepret.correlate2d):
        with pytest.raises(ValueError) as ours:
            function(image, kernel)
        assert str(ours.value) == str(expected.value)
