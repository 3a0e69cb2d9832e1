#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer: builds
# deepret's C++ engine and bindings with DEEPRET_SANITIZE=ON (CPU only) in a
# virtual environment of its own (SANITIZE_VENV, default build/sanitize-venv,
# created on the first run; the build folder is build/sanitize), and runs
# pytest with libasan preloaded (the Python interpreter is not built with
# ASan, so its runtime must be loaded first). Any report stops the test
# process (halt_on_error) and fails the run; leak checking is off (the
# interpreter keeps its objects alive until exit), and huge allocations return
# NULL (the engine's MemoryError paths) instead of aborting.
# pytest captures only sys.stderr (--capture=sys), so a sanitizer report,
# written to the C-level stderr just before the abort, is not lost.
#
#   bash bench/sanitize.sh                       # the whole suite
#   bash bench/sanitize.sh tests/test_boundary.py tests/test_fuzz.py   # a subset
#
# SANITIZE_PYTHON picks the interpreter of a new venv (CI: the oldest Python).
# Needs g++ with libasan/libubsan and PyPI (or a pip cache) for the build and
# test requirements.
set -euo pipefail
cd "$(dirname "$0")/.."

CXX_COMPILER=${CXX:-g++}
libasan=$("$CXX_COMPILER" -print-file-name=libasan.so)
libubsan=$("$CXX_COMPILER" -print-file-name=libubsan.so)
if [[ ! -e $libasan ]]; then
  echo "sanitize.sh: $CXX_COMPILER has no libasan.so" >&2
  exit 2
fi

VENV=${SANITIZE_VENV:-build/sanitize-venv}
if [[ ! -x $VENV/bin/python ]]; then
  echo "[sanitize] creating $VENV with ${SANITIZE_PYTHON:-python3}"
  "${SANITIZE_PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip  # an old Python's pip lacks -C
  "$VENV/bin/python" -m pip install --quiet scikit-build-core pybind11 numpy scipy tqdm pytest \
    hypothesis matplotlib ninja cmake
fi
. "$VENV/bin/activate"

echo "[sanitize] building with ASan + UBSan into build/sanitize"
build_start=$SECONDS
DEEPRET_CUDA=OFF DEEPRET_SANITIZE=ON python -m pip install --quiet --no-build-isolation -e . \
  -Cbuild-dir=build/sanitize -Ccmake.build-type=RelWithDebInfo
echo "[sanitize] built in $((SECONDS - build_start)) s"

export LD_PRELOAD="$libasan:$libubsan"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
export PYTHONMALLOC=malloc  # Python's own allocations visible to ASan too
export PYTHONFAULTHANDLER=1

echo "[sanitize] python -m pytest -x -q -p no:cacheprovider --capture=sys ${*:-tests}"
start=$SECONDS
status=0
python -m pytest -x -q -p no:cacheprovider --capture=sys "${@:-tests}" || status=$?
echo "[sanitize] pytest exit status $status after $((SECONDS - start)) s"
exit $status
