#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer run of the unit tests (issue 9): configures
# and builds the unit-labelled test executables into build-asan/ (RelWithDebInfo, CUDA off,
# -DBRAINAGE_SANITIZE=ON), then runs `ctest -L unit` without the libFuzzer run (fuzz_short
# has its own clang ASan build) under a virtual X display. Any sanitizer report fails its test.
# LibTorch, ITK and VTK are not instrumented and leak by design at exit (static pools,
# singletons), so leak detection is off: ASan still catches every overflow, use-after-free
# and double free in our code, UBSan every undefined operation.
# Extra arguments go to ctest, e.g. scripts/sanitize.sh -R ScanReader
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build_dir="${BRAINAGE_ASAN_BUILD_DIR:-build-asan}"
jobs="${BRAINAGE_JOBS:-$(nproc)}"
# Also in effect while building: gtest_discover_tests runs each test executable to list it.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRAINAGE_SANITIZE=ON \
  -DBRAINAGE_USE_CUDA=OFF >/dev/null
cmake --build "$build_dir" -j "$jobs" --target unit_tests
cd "$build_dir"
exec xvfb-run -a -s "-screen 0 1280x1024x24 -noreset" ctest --output-on-failure -j "$jobs" -L unit -LE fuzz --timeout 1500 "$@"
