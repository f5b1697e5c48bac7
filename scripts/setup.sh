#!/usr/bin/env bash
# Installs every Debian package that building, testing and running brainage needs.
# Idempotent: packages already present are skipped. Works as root or through sudo.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libinsighttoolkit5-dev          # ITK 5.2: I/O, N4, registration, resampling
  libgdcm-dev                     # GDCM 3 headers (also an ITK dependency): DICOM file checks, message control
  libvtk9-dev                     # VTK 9.1: rendering, PNG, charts
  libtorch-dev                    # LibTorch 1.13 (CPU)
  libgloo-dev                     # Gloo headers for LibTorch's c10d process group (distributed training)
  libopenblas0-pthread            # fast BLAS for LibTorch (reference BLAS is ~20x slower)
  libboost-program-options-dev    # the CLI
  clang libclang-rt-14-dev        # libFuzzer + sanitizers for scripts/fuzz.sh
  libgtest-dev                    # tests
  mricron-data                    # Colin27 template, brain mask and AAL atlas
  xvfb xauth                    # off-screen 3D rendering without a display
  libfftw3-dev                    # ITK's FFT module links it
  zlib1g-dev                      # reading gzip streams during NIfTI validation
  libssl-dev                      # OpenSSL libcrypto: SHA-256 content hashes and checksums
  nlohmann-json3-dev              # JSON for reports, checkpoints and --json output
  python3-numpy python3-nibabel   # scripts/make_augmentation_copies.py (training data for the VBM part)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
