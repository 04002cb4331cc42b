#!/usr/bin/env bash
# Installs every Debian package mnemo needs (one apt-get line; a fast no-op when all are
# present) and configures a build folder. Usage: scripts/setup.sh [--cuda] [BUILD_DIR] [meson options...]
# --cuda also adds Debian's contrib and non-free components and installs the CUDA 11.8 toolkit
# (docs/CUDA.md); nothing else ever downloads it.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_CUDA=0
if [ "${1:-}" = --cuda ]; then
  WITH_CUDA=1
  shift
fi

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

if [ "$WITH_CUDA" = 1 ] && ! dpkg-query -W -f='${Status}' nvidia-cuda-toolkit 2>/dev/null | grep -q "install ok installed"; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # Debian 12 lists its sources in deb822 form (debian.sources) or, on older installs, sources.list.
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [ -f "$f" ] || continue
    $SUDO sed -i -E 's/^(Components: main)$/\1 contrib non-free/; s/^(deb .*debian[^ ]* [a-z-]+ main)$/\1 contrib non-free/' "$f"
  done
  echo "setup: installing nvidia-cuda-toolkit (about 1.6 GB) and g++-11"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nvidia-cuda-toolkit g++-11
fi

BUILD=${1:-build}
shift || true
if [ "$WITH_CUDA" = 1 ]; then
  # Debian's nvcc (/usr/bin/nvcc) even where another toolkit's nvcc comes first on PATH.
  set -- --native-file scripts/cuda-debian.ini -Dcuda=enabled -Dgpu_arch=80,90 "$@"
fi
if [ -f "$BUILD/build.ninja" ] && [ "$WITH_CUDA" = 1 ]; then
  meson setup --wipe "$BUILD" "$@"  # a native file cannot be added to a configured folder
elif [ -f "$BUILD/build.ninja" ]; then
  [ $# -eq 0 ] || meson configure "$BUILD" "$@"
else
  meson setup "$BUILD" "$@"
fi
