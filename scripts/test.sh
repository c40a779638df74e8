#!/usr/bin/env bash
# Installs what is missing, then builds and runs the whole test suite: a
# normal build with -Werror, the integration tests again with vigild under
# valgrind memcheck, an AddressSanitizer + UBSan build, and the libFuzzer
# harnesses built with clang, each run for a bounded time over its seed
# corpus (ctest label `fuzz`; scripts/fuzz does long runs).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
run_suite() {
	local dir=$1
	shift
	cmake -S . -B "$dir" -DVG_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j"$jobs"
	(cd "$dir" && ctest --output-on-failure -j"$jobs" -LE valgrind)
}

echo "== normal build (build/) =="
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== integration tests with vigild under valgrind memcheck (build/) =="
(cd build && ctest --output-on-failure -j"$jobs" -L valgrind)
echo "== sanitizer build (build-asan/) =="
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DVG_SANITIZE=ON
echo "== fuzz build (build-fuzz/, clang + libFuzzer + ASan + UBSan) =="
CC=clang cmake -S . -B build-fuzz -DVG_WERROR=ON -DVG_FUZZ=ON -DVG_TESTS=OFF -DVG_BENCH=OFF \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz --target vg_fuzz -j"$jobs"
(cd build-fuzz && ctest -L fuzz --output-on-failure -j2)
