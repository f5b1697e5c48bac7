#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every test suite
# (under a virtual X display, for the VTK 3D renders). Extra arguments go to ctest,
# e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${BRAINAGE_BUILD_DIR:-build}"
exec xvfb-run -a -s "-screen 0 1280x1024x24 -noreset" ctest --output-on-failure -j "$(nproc)" --timeout 1500 "$@"
