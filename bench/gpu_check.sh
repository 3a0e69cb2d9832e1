#!/usr/bin/env bash
# One command for a GPU machine: build deepret with the CUDA engine (for this
# GPU's architecture only, to build fast) in a virtual environment, run every
# GPU test (tests/, marker "gpu") under compute-sanitizer memcheck, then a
# small subset (the kernels with shared memory and block reductions) under
# racecheck, then every GPU benchmark (bench/, marker "gpu") against its peers
# (cupy/cupyx; torch/cuDNN with GPU_CHECK_TORCH=1; faiss-gpu where it
# installs), and render their report.
#
#   bash bench/gpu_check.sh
#
# Logs, gpu.json and RESULTS-gpu.md go to $OUT when it is set, else to
# bench/results/. The whole run stays under GPU_CHECK_BUDGET_S (default 570 s,
# under a 10-minute limit): each step runs under `timeout`, capped by what is
# left. A sanitizer step fails on any report (--error-exitcode).
#
# Settings (environment): CUPY_PACKAGE (default cupy-cuda13x; cupy-cuda12x
# for a CUDA 12 driver), GPU_CHECK_VENV (default /tmp/deepret-gpu-venv),
# GPU_CHECK_REUSE=1 (keep an existing venv and its packages: for a machine
# without a package index, or a second run), GPU_CHECK_BUDGET_S,
# GPU_CHECK_TORCH=1 (also install torch: the cuDNN peer of conv2d),
# GPU_CHECK_FAISS=1 (also try faiss-gpu: the peer of the GPU kNN; FAISS_PACKAGE,
# default faiss-gpu-cu12).
set -euo pipefail
cd "$(dirname "$0")/.."

RESULTS=${OUT:-bench/results}
BUDGET=${GPU_CHECK_BUDGET_S:-570}
CUPY_PACKAGE=${CUPY_PACKAGE:-cupy-cuda13x}
FAISS_PACKAGE=${FAISS_PACKAGE:-faiss-gpu-cu12}
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
# optional: a step whose failure is only logged (a peer that may not install).
optional() { step "$@" || log "$1 failed (optional, continuing)"; }

# nvcc and compute-sanitizer are often installed but not on PATH.
for dir in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer; do
  if [ -d "$dir" ]; then export PATH=$PATH:$dir; fi
done

check machine 30 bash -c 'nvidia-smi; echo; nvcc --version; echo; compute-sanitizer --version; echo;
  python3 --version; nproc'
if ! command -v compute-sanitizer >/dev/null; then
  log "compute-sanitizer not found (it ships with the CUDA toolkit); the sanitizer steps will fail"
fi

if [ "${GPU_CHECK_REUSE:-0}" = 1 ] && [ -x "$VENV/bin/python" ]; then
  log "venv: reusing $VENV and its packages"
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
else
  rm -rf "$VENV"
  must venv 60 python3 -m venv "$VENV"
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  # The build requirements too: the build below runs without isolation (no
  # second download of them).
  must deps 240 python -m pip install --upgrade pip "$CUPY_PACKAGE" pytest-benchmark scikit-build-core \
    pybind11 cmake ninja numpy scipy tqdm pytest hypothesis matplotlib
  if [ "${GPU_CHECK_TORCH:-0}" = 1 ]; then
    optional torch 200 python -m pip install torch
  fi
  if [ "${GPU_CHECK_FAISS:-0}" = 1 ]; then
    optional faiss 120 python -m pip install "$FAISS_PACKAGE"
  fi
fi

# Real code for this GPU's architecture only (compute capability 9.0 -> 90):
# a wheel builds for several, a check need not.
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .' || true)
arch=${arch:-90}
log "building for CUDA architecture $arch"
# DEEPRET_CUDA=ON: fail the build rather than quietly build the CPU engine.
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
must build 300 env DEEPRET_CUDA=ON python -m pip install --no-build-isolation --no-deps -v . \
  "-Ccmake.define.CMAKE_CUDA_ARCHITECTURES=$arch" -Cbuild-dir=build/gpu-check

# Without this the GPU cases below would all skip and the run would look green.
must sanity 60 python -c '
import cupy, deepret
print("cuda_built", deepret.cuda_built(), "has_cuda", deepret.has_cuda(), "simd", deepret.simd_path())
print("device", cupy.cuda.runtime.getDeviceProperties(0)["name"], "cupy", cupy.__version__)
assert deepret.cuda_built() and deepret.has_cuda(), "deepret cannot use the GPU"
'

# The tests from outside the source tree would import the same installed
# package; running them here keeps tests/ and bench/ importable.
sanitize() {  # sanitize TOOL PYTEST-ARGS...: pytest under compute-sanitizer
  local tool=$1
  shift
  # CuPy's pool off (bench/no_cupy_pool.py): every allocation, deepret's
  # scratch included, is then its own cudaMalloc, whose bounds memcheck knows
  # (inside a pooled block an overrun would go unseen).
  PYTHONPATH=bench compute-sanitizer --tool "$tool" --error-exitcode 1 --target-processes all \
    --print-limit 20 python -m pytest -p no_cupy_pool -p no:cacheprovider -m gpu -rs -q "$@"
}

if [ -d tests ]; then
  # Every GPU test (they also compare the GPU with the CPU engine: kNN ids,
  # scores, diffusion and CG iteration counts) under memcheck.
  check memcheck 200 sanitize memcheck tests
  # Shared-memory races: the tiled and block-reduction kernels, small cases.
  check racecheck 120 sanitize racecheck tests/test_knn.py tests/test_diffusion.py tests/test_conv_cuda.py \
    tests/test_pooling.py -k "not large and not oxford"
else
  log "memcheck, racecheck: no tests/ directory in this checkout"
fi

check gpu_bench 150 python -m pytest bench -m gpu -v -rs -p no:cacheprovider \
  --benchmark-json "$RESULTS/gpu.json"

if [ -s "$RESULTS/gpu.json" ]; then
  check report 30 python bench/report.py "$RESULTS/gpu.json" -o "$RESULTS/RESULTS-gpu.md" \
    --title "deepret GPU benchmark" --note "bench/gpu_check.sh run"
  # EGM (bench_regions.py: a batch of 10,000 16x16 maps in one CuPy call) has its own section.
  check report_regions 30 bash -c "python bench/report_regions.py '$RESULTS/gpu.json' \
    --note 'bench/gpu_check.sh run' > '$RESULTS/RESULTS-regions-gpu.md'"
fi

if ((${#failures[@]})); then
  log "FAILED steps: ${failures[*]} (logs in $RESULTS)"
  exit 1
fi
log "all steps passed; results in $RESULTS"
