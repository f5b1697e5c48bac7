#!/usr/bin/env bash
# Writes a training/cohort manifest (subject_id,age,sex,site,path) for the IXI-HH 2 mm
# scans in ../shared/data/ixi-hh-2mm, with absolute paths.
#   scripts/ixi_manifest.sh [data-dir] > manifest.csv
set -euo pipefail
cd "$(dirname "$0")/.."
data="$(cd "${1:-../shared/data/ixi-hh-2mm}" && pwd)"
echo "subject_id,age,sex,site,path"
tail -n +2 "$data/participants.csv" | tr -d '\r' |
  awk -F, -v d="$data" '{ printf "%s,%s,%s,%s,%s/%s\n", $1, $2, $3, $4, d, $5 }'
