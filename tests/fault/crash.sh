#!/usr/bin/env bash
# The full crash campaign: ROUNDS (default 100) rounds of writers and a
# subscriber against vigild, killed with SIGKILL at a random moment and
# restarted; see test_crash_campaign.c for what is checked.
#   tests/fault/crash.sh [ROUNDS] [SEED]      (BUILD_DIR defaults to build)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
bin="$build/tests/fault/test_crash_campaign"
if [[ ! -x "$bin" ]]; then
	echo "crash.sh: $bin not built; run cmake --build $build first" >&2
	exit 2
fi
export VIGIL_BUILD_DIR="$build"
export VIGIL_CRASH_ROUNDS="${1:-100}"
export VIGIL_CRASH_SEED="${2:-1}"
exec "$bin" --jobs 1
