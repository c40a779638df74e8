#!/usr/bin/env bash
# run-bounded.sh HARNESS SEED_DIR DICT SECONDS RSS_MB TIMEOUT — the `fuzz`
# ctest of one harness: fuzzes for SECONDS over a scratch copy of the
# committed seeds (which stay untouched), and fails on any crash, leak,
# timeout, out-of-memory or sanitizer report.  A failing input is kept in
# ./artifacts/ (in the build tree) and printed in hex, so the log alone
# reproduces it.
set -euo pipefail
harness=$1 seeds=$2 dict=$3 seconds=$4 rss=$5 timeout=$6
name=$(basename "$harness")
work=$(mktemp -d "${TMPDIR:-/tmp}/vg-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
cp "$seeds"/* "$work/corpus/"

args=(-max_total_time="$seconds" -rss_limit_mb="$rss" -timeout="$timeout"
      -print_final_stats=1 -artifact_prefix="$work/artifacts/")
[ -n "$dict" ] && args+=(-dict="$dict")

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
"$harness" "${args[@]}" "$work/corpus" || status=$?
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
	mkdir -p artifacts
	for f in "$work/artifacts"/*; do
		[ -e "$f" ] || continue
		echo "== failing input $(basename "$f") (kept in $PWD/artifacts/):"
		od -A d -t x1 "$f" | head -64
		cp "$f" artifacts/
	done
	echo "$name: FAILED (exit status $status)"
	exit 1
fi
echo "$name: $(ls "$work/corpus" | wc -l) inputs in the corpus after ${seconds}s"
