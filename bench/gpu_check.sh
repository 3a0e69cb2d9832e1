#!/usr/bin/env bash
# One command for a GPU machine: build deepret with the CUDA engine in a fresh
# virtual environment, run every GPU test (tests/, marker "gpu") and every GPU
# benchmark (bench/, marker "gpu"), and render their report.
#
#   bash bench/gpu_check.sh
#
# Logs, gpu.json and RESULTS-gpu.md go to $OUT when it is set, else to
# bench/results/. The whole run stays under GPU_CHECK_BUDGET_S (default 570 s,
# under a 10-minute limit): each step runs under `timeout`, capped by what is
# left. Needs only PyPI (build requirements, cupy, pytest-benchmark).
#
# Settings (environment): CUPY_PACKAGE (default cupy-cuda13x; cupy-cuda12x
# for a CUDA 12 driver), GPU_CHECK_VENV (default /tmp/deepret-gpu-venv, wiped
# first), GPU_CHECK_BUDGET_S, GPU_CHECK_TORCH=1 (also install torch: the cuDNN
# peer of the conv2d layers in bench_conv2d.py; without it only deepret's GPU
# conv2d runs, checked against itself in float64).
set -euo pipefail
cd "$(dirname "$0")/.."

RESULTS=${OUT:-bench/results}
BUDGET=${GPU_CHECK_BUDGET_S:-570}
CUPY_PACKAGE=${CUPY_PACKAGE:-cupy-cuda13x}
VENV=${GPU_CHECK_VENV:-/tmp/deepret-gpu-venv}
mkdir -p "$RESULTS"
failures=()

log() { echo "[gpu_check +${SECONDS}s] $*" | tee -a "$RESULTS/gpu_check.log"; }

# step NAME CAP COMMAND...: run COMMAND under timeout (CAP seconds, or what is
# left of the budget if less), all output to $RESULTS/NAME.log, whose tail is
# echoed; returns the command's status (124: timed out). The log is complete
# on disk before the caller decides whether to stop.
step() {
  local name=$1 cap=$2 status=0 left limit
  shift 2
  left=$((BUDGET - SECONDS))
  limit=$((cap < left ? cap : left))
  if ((limit < 10)); then
    log "$name: not run, the time budget is spent"
    return 124
  fi
  log "$name: start, limit ${limit}s: $*"
  timeout --kill-after=10 "$limit" "$@" >"$RESULTS/$name.log" 2>&1 || status=$?
  tail -n 30 "$RESULTS/$name.log" || true
  log "$name: exit $status$([ "$status" = 124 ] && echo ' (timed out)' || true)"
  return "$status"
}

# must: a step everything after it needs; its failure ends the run (status 1).
must() { step "$@" || { log "FAILED: $1, see $RESULTS/$1.log"; exit 1; }; }
# check: a step whose failure is reported, and turned into status 1, at the end.
check() { step "$@" || failures+=("$1"); }

# nvcc is often installed but not on PATH.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi

check machine 30 bash -c 'nvidia-smi; echo; nvcc --version; echo; python3 --version; nproc'

rm -rf "$VENV"
must venv 60 python3 -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
must deps 240 python -m pip install --upgrade pip "$CUPY_PACKAGE" pytest-benchmark
# torch with CUDA: the cuDNN peer of the conv2d GPU benchmarks (and the
# reference of tests/test_conv2d.py). Large, so optional: GPU_CHECK_TORCH=1.
if [ "${GPU_CHECK_TORCH:-0}" = 1 ]; then
  check torch 200 python -m pip install torch
fi

# DEEPRET_CUDA=ON: fail the build rather than quietly build the CPU engine.
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
must build 360 env DEEPRET_CUDA=ON python -m pip install -v ".[test]"

# Without this the GPU cases below would all skip and the run would look green.
must sanity 60 python -c '
import cupy, deepret
print("cuda_built", deepret.cuda_built(), "has_cuda", deepret.has_cuda(), "simd", deepret.simd_path())
print("device", cupy.cuda.runtime.getDeviceProperties(0)["name"], "cupy", cupy.__version__)
assert deepret.cuda_built() and deepret.has_cuda(), "deepret cannot use the GPU"
'

if [ -d tests ]; then
  check gpu_tests 180 python -m pytest tests -m gpu -v -rs -p no:cacheprovider
else
  log "gpu_tests: no tests/ directory in this checkout"
fi

check gpu_bench 180 python -m pytest bench -m gpu -v -rs -p no:cacheprovider \
  --benchmark-json "$RESULTS/gpu.json"

if [ -s "$RESULTS/gpu.json" ]; then
  check report 30 python bench/report.py "$RESULTS/gpu.json" -o "$RESULTS/RESULTS-gpu.md" \
    --title "deepret GPU benchmark" --note "bench/gpu_check.sh run"
fi

# EGM (bench_regions.py: a batch of 10,000 16x16 maps in one CuPy call) has its own section.
if [ -s "$RESULTS/gpu.json" ]; then
  check report_regions 30 bash -c "python bench/report_regions.py '$RESULTS/gpu.json' \
    --note 'bench/gpu_check.sh run' > '$RESULTS/RESULTS-regions-gpu.md'"
fi

if ((${#failures[@]})); then
  log "FAILED steps: ${failures[*]} (logs in $RESULTS)"
  exit 1
fi
log "all steps passed; results in $RESULTS"
