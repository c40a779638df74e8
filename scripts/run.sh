#!/usr/bin/env bash
# Installs what is missing, builds Vigil (release) and starts vigild in the
# foreground with its default data directory ./vigil-data.  Extra arguments
# go to vigild (e.g. --listen 127.0.0.1:9000).  Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DVG_TESTS=OFF >/dev/null
cmake --build build-release -j"$(nproc 2>/dev/null || echo 2)"
echo "vigild: starting; the CLI is ./build-release/client/vigil" >&2
exec ./build-release/server/vigild "$@"
