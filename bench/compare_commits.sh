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
#
# A single run of a case on this shared VM can be off by 30 % or more (the
# peers' cases, the same code on both sides, show how much: the report gives
# their spread). To recheck some cases, list their pytest node ids (the
# report's names) in a file: COMPARE_CASES=cases.txt COMPARE_REPEATS=3 runs
# only those, before and after alternately, that many times each, into
# before-recheckN.json / after-recheckN.json beside the main pass; the report
# then takes each case's median over its runs. The environments and the
# main pass's files are kept (COMPARE_OUT), so a recheck builds nothing:
# give it the main pass's BEFORE and AFTER as commit ids, not a moved HEAD.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
before=${1:?usage: bench/compare_commits.sh BEFORE [AFTER]} after=${2:-HEAD}
out=${COMPARE_OUT:-$repo/bench/results/compare}
files=${COMPARE_FILES:-bench_convolve bench_knn bench_graph bench_diffusion bench_regions bench_conv2d}
cases=${COMPARE_CASES:-} repeats=${COMPARE_REPEATS:-1}
mkdir -p "$out"

for side in before after; do
  rev=$([ $side = before ] && echo "$before" || echo "$after")
  src="$out/src-$side" venv="$out/venv-$side"
  if [ ! -d "$src" ]; then git worktree add --detach "$src" "$rev"; fi
  git -C "$src" checkout --quiet --detach "$rev"
  if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
  if [ -z "$cases" ]; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # The same peers on both sides (torch: the CPU build on disk; see .ci/run).
    "$venv/bin/python" -m pip install --quiet "$src[bench]" torch==2.13.0
  fi
  "$venv/bin/python" -c "import deepret, sys; print('$side', '$rev', deepret.__file__, deepret.simd_path())"
done

if [ -n "$cases" ]; then
  mapfile -t ids < <(grep -v '^\s*\(#\|$\)' "$cases")
  for rep in $(seq 1 "$repeats"); do
    for side in before after; do
      echo "[$side] recheck $rep of $repeats: ${#ids[@]} cases ($(date -u +%H:%M:%S))"
      (cd "$out/src-$side" && "$out/venv-$side/bin/python" -m pytest "${ids[@]}" -q -p no:cacheprovider \
          --benchmark-json "$out/$side-recheck$rep.json") || echo "[$side] recheck: pytest exit status $?"
    done
  done
  files=""
fi

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
