#!/usr/bin/env bash
# Installs every Debian package mnemo needs (one apt-get line; a fast no-op when all are
# present) and configures a build folder. Usage: scripts/setup.sh [BUILD_DIR] [meson options...]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(g++ meson ninja-build pkg-config cmake ccache libeigen3-dev libdnnl-dev ocl-icd-opencl-dev
          libyaml-cpp-dev libboost-test-dev libcli11-dev nlohmann-json3-dev zlib1g-dev gnuplot-nox
          protobuf-compiler libopenmpi-dev openmpi-bin)
# The libFuzzer targets (tests/fuzz, scripts/test.sh --fuzz) need clang and its runtimes.
if [ "${MNEMO_SETUP_FUZZ:-0}" = 1 ]; then
  PACKAGES+=(clang libclang-rt-14-dev libomp-14-dev)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
fi

BUILD=${1:-build}
shift || true
if [ -f "$BUILD/build.ninja" ]; then
  [ $# -eq 0 ] || meson configure "$BUILD" "$@"
else
  meson setup "$BUILD" "$@"
fi
