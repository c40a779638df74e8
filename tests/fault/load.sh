#!/usr/bin/env bash
# The full load campaign: CONNS (default 1000) connections writing and
# subscribing for SECONDS (default 60), with stallers, never-readers and
# clients past --max-connections; see test_load.c for what is checked.
#   tests/fault/load.sh [CONNS] [SECONDS]    (BUILD_DIR defaults to build)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
bin="$build/tests/fault/test_load"
if [[ ! -x "$bin" ]]; then
	echo "load.sh: $bin not built; run cmake --build $build first" >&2
	exit 2
fi
export VIGIL_BUILD_DIR="$build"
export VIGIL_LOAD_CONNS="${1:-1000}"
export VIGIL_LOAD_SECONDS="${2:-60}"
exec "$bin" --jobs 1
