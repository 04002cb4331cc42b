#!/usr/bin/env bash
# Compiles the whole CUDA backend, its tests and the mnemo command without a GPU, with every
# toolkit found here: Debian's CUDA 11.8 (/usr/bin/nvcc, from scripts/setup.sh --cuda) and a
# CUDA 12/13 under /usr/local/cuda. Then runs the tests that need no GPU (the host-side
# policies, the kernels' math against the reference) and checks that the GPU tests SKIP
# visibly. Run it whenever CUDA code changes; CI does not install the toolkit.
# Usage: scripts/check_cuda_build.sh [GPU_ARCH (default 80,90)]
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${1:-80,90}
NICE="nice -n 19"
checked=0

check() {  # name, build folder, nvcc, env prefix...
  local name=$1 build=$2 nvcc=$3
  shift 3
  echo "== $name: configure $build"
  mkdir -p "$build-logs"  # ignored, like every build* folder
  if [ ! -f "$build/build.ninja" ]; then
    printf "[binaries]\ncuda = '%s'\n" "$nvcc" >"$build-logs/native.ini"
    "$@" $NICE meson setup "$build" --native-file "$build-logs/native.ini" -Dcuda=enabled -Dgpu_arch="$ARCH" \
      -Ddnnl=disabled >"$build-logs/setup.log" 2>&1 || { tail -30 "$build-logs/setup.log"; exit 1; }
  fi
  echo "== $name: compile (-j2)"
  "$@" $NICE ninja -C "$build" -j2 tests/test_kernels tools/mnemo  # same PATH as at setup: nvcc finds its own ptxas
  echo "== $name: CPU-side tests"
  OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE $NICE meson test -C "$build" --no-rebuild --num-processes 1 \
    cuda_host cuda_math backends_agree
  # The GPU tests must report SKIP here (exit 77), never pass by returning early.
  local rc=0
  OMP_NUM_THREADS=1 "$build/tests/test_kernels" --run_test=cuda_kernels --color_output=no >"$build-logs/gpu_tests.log" 2>&1 || rc=$?
  if [ "$rc" != 77 ]; then
    echo "cuda_kernels without a GPU: expected SKIP (77), got $rc"; cat "$build-logs/gpu_tests.log"; exit 1
  fi
  echo "== $name: cuda_kernels SKIP as expected ($(grep -o 'no CUDA device[^\"]*' "$build-logs/gpu_tests.log" | head -1))"
  checked=$((checked + 1))
}

version() { "$1" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'; }
if [ -x /usr/bin/nvcc ]; then
  # Debian's toolkit has no single root: unset the variables that point meson at another one,
  # and keep /usr/local/cuda/bin off PATH, or Debian's nvcc runs that toolkit's ptxas and
  # cudafe++ (found out the hard way: ptxas 13 rejects nvcc 11.8's default sm_52).
  check "CUDA $(version /usr/bin/nvcc) (Debian)" build-cuda11 /usr/bin/nvcc \
    env -u CUDA_HOME -u CUDA_PATH -u CUDA_ROOT PATH=/usr/sbin:/usr/bin:/sbin:/bin
fi
if [ -x /usr/local/cuda/bin/nvcc ]; then
  check "CUDA $(version /usr/local/cuda/bin/nvcc) (/usr/local/cuda)" build-cuda13 /usr/local/cuda/bin/nvcc env
fi
if [ "$checked" = 0 ]; then
  echo "no CUDA toolkit here: scripts/setup.sh --cuda installs Debian's"
  exit 77
fi
echo "check_cuda_build: $checked toolkit(s) compiled the CUDA backend; CPU-side tests passed; GPU tests skipped"
