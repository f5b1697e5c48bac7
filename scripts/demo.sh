#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds, and runs brainage on the
# bundled default scan (Colin27 from Debian's mricron-data): scan summary, predicted brain
# age with the default model, expert maps (label maps, colour tables, figures) in demo-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
scan=/usr/share/mricron/templates/ch2.nii.gz
out="${1:-demo-output}"
exe="${BRAINAGE_BUILD_DIR:-build}/app/brainage"
"$exe" info "$scan"
# Preprocess + predict with the shipped default model, and render the expert maps.
# (under a virtual X display when there is none, for the 3D view)
if [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null; then run=(xvfb-run -a -s "-screen 0 1280x1024x24 -noreset"); else run=(); fi
"${run[@]}" "$exe" predict "$scan" -o "$out" --maps
echo "demo: outputs in $out/ (prediction.json, maps/experts_ortho.png, maps/experts_mosaic.png, ...)"
