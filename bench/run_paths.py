"""Run bench_diffusion.py's acceptance cases once per SIMD path this CPU has,
each in its own process with DEEPRET_SIMD pinned, and render one column per
path (report_diffusion.py):

    python bench/run_paths.py                      # every path, timed, all diffusion cases
    python bench/run_paths.py --paths avx2 -k "fashion"
    python bench/run_paths.py --smoke              # each case once, checked, no table (~2 min)

Writes bench/results/diffusion-<path>.json and prints (or -o writes) the table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import report_diffusion  # noqa: E402  (bench/ is not a package)


def paths_here() -> list[str]:
    """DEEPRET_SIMD values this CPU can run, asked of a fresh interpreter
    (so that this process's own pin, if any, does not matter)."""
    env = {k: v for k, v in os.environ.items() if k != "DEEPRET_SIMD"}
    code = "from deepret import _backend; print(' '.join(_backend.supported_simd_paths()))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.split()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", help="comma-separated DEEPRET_SIMD values (default: all this CPU has)")
    parser.add_argument("-k", default="test_diffuse and not small or fashion_end_to_end",
                        help="pytest -k expression (default: the acceptance cases)")
    parser.add_argument("--smoke", action="store_true", help="--benchmark-disable: one checked call each")
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    parser.add_argument("-o", "--output", help="Markdown file for the table (default: stdout)")
    args = parser.parse_args(argv)
    paths = args.paths.split(",") if args.paths else paths_here()
    os.makedirs(args.out_dir, exist_ok=True)
    outputs = []
    for path in paths:
        out = os.path.join(args.out_dir, f"diffusion-{path}.json")
        # (pytest-benchmark writes no JSON with --benchmark-disable)
        command = [sys.executable, "-m", "pytest", str(HERE / "bench_diffusion.py"), "-q", "-k", args.k]
        command += ["--benchmark-disable"] if args.smoke else ["--benchmark-json", out]
        print(f"DEEPRET_SIMD={path}: {' '.join(command)}", flush=True)
        done = subprocess.run(command, env=dict(os.environ, DEEPRET_SIMD=path), cwd=HERE.parent)
        if done.returncode != 0:
            print(f"DEEPRET_SIMD={path}: pytest failed (exit {done.returncode})", file=sys.stderr)
            return done.returncode
        outputs.append(out)
    if args.smoke:
        print("smoke run: every case checked on every path, nothing timed")
        return 0
    return report_diffusion.main(outputs + (["-o", args.output] if args.output else []))


if __name__ == "__main__":
    sys.exit(main())
