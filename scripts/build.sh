#!/usr/bin/env bash
# Configures and builds brainage into build/ (Release, Ninja, ccache when present).
# Extra arguments go to CMake, e.g. scripts/build.sh -DBRAINAGE_USE_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${BRAINAGE_BUILD_DIR:-build}"
jobs="${BRAINAGE_JOBS:-$(nproc)}"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build_dir" -j "$jobs"
