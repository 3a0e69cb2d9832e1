"""The README's main-job command: `deepret demo` runs, checks deepret against
numpy on the same data and prints one table row per case."""

import re
import subprocess
import sys

from deepret import cli


def test_demo_prints_a_row_per_case_with_small_errors(capsys):
    assert cli.main(["demo", "--n", "20000", "--repeats", "1"]) == 0
    printed = capsys.readouterr().out
    rows = re.findall(r"^\s*(float32|float64)\s+(\d+)\s+([0-9.e+-]+)\s", printed, flags=re.M)
    assert [(dtype, int(m)) for dtype, m, _ in rows] == [
        ("float32", 3), ("float32", 31), ("float32", 301),
        ("float64", 3), ("float64", 31), ("float64", 301),
    ]
    for dtype, _, error in rows:
        assert float(error) < (1e-5 if dtype == "float32" else 1e-13)


def test_console_entry_point_runs_as_module():
    result = subprocess.run(
        [sys.executable, "-m", "deepret", "demo", "--n", "5000", "--repeats", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "speed-up" in result.stdout


def test_unknown_command_exits_with_usage():
    result = subprocess.run([sys.executable, "-m", "deepret", "nonsense"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "usage: deepret" in result.stderr
