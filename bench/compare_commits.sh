#!/usr/bin/env bash
# Issue #12's speed check: "every benchmark case within 5 % of before, one run
# each, on the same machine". Builds two commits (BEFORE, and AFTER = HEAD by
# default) into virtual environments of their own, runs each bench file under
# both, one after the other (file by file, so that a change in the machine's
# load over the hour falls on both sides alike), and writes the per-case
# ratio of medians (after / before) to $out/report.md. Run it alone on the
# machine: about twice the time of one `python -m pytest bench` (1 h here).
#
#   bash bench/compare_commits.sh 9916d0b            # before = 9916d0b, after = HEAD
#   COMPARE_FILES="bench_knn bench_graph" bash bench/compare_commits.sh 9916d0b HEAD
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
before=${1:?usage: bench/compare_commits.sh BEFORE [AFTER]} after=${2:-HEAD}
out=${COMPARE_OUT:-$repo/bench/results/compare}
files=${COMPARE_FILES:-bench_convolve bench_knn bench_graph bench_diffusion bench_regions bench_conv2d}
mkdir -p "$out"

for side in before after; do
  rev=$([ $side = before ] && echo "$before" || echo "$after")
  src="$out/src-$side" venv="$out/venv-$side"
  if [ ! -d "$src" ]; then git worktree add --detach "$src" "$rev"; fi
  git -C "$src" checkout --quiet --detach "$rev"
  if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # The same peers on both sides (torch: the CPU build on disk; see .ci/run).
  "$venv/bin/python" -m pip install --quiet "$src[bench]" torch==2.13.0
  "$venv/bin/python" -c "import deepret, sys; print('$side', '$rev', deepret.__file__, deepret.simd_path())"
done

for file in $files; do
  for side in before after; do
    src="$out/src-$side"
    [ -f "$src/bench/$file.py" ] || { echo "[$side] bench/$file.py: not in this commit"; continue; }
    echo "[$side] bench/$file.py ($(date -u +%H:%M:%S))"
    (cd "$src" && "$out/venv-$side/bin/python" -m pytest "bench/$file.py" -q -p no:cacheprovider \
        --benchmark-json "$out/$side-$file.json") || echo "[$side] bench/$file.py: pytest exit status $?"
  done
done
python "$repo/bench/compare_report.py" "$out" --before "$before" --after "$after" | tee "$out/report.md"
