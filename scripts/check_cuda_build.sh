#!/usr/bin/env bash
# Builds the whole project with the CUDA backend, without a GPU, with every toolkit found
# here: Debian's CUDA 11.8 (/usr/bin/nvcc, from scripts/setup.sh --cuda; host compiler g++-11)
# and a CUDA 12/13 under /usr/local/cuda (host compiler g++). Each build is configured as on
# the GPU machine (-Dcuda=enabled -Ddnnl=disabled), compiles every .cu file and links mnemo
# and every test executable; then the tests that need no GPU run (the host-side policies,
# the kernels' math against the reference), and the GPU tests and `mnemo bench cuda` must
# report SKIP (exit 77) with the reason, never pass and never crash. Run it whenever CUDA
# code changes; CI does not install the toolkit.
# Usage: scripts/check_cuda_build.sh [GPU_ARCH (default 80,90)]
#   ONLY=11 or ONLY=13 checks one toolkit; FULL=1 also runs the whole suite (not slow).
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${1:-80,90}
JOBS=${JOBS:-2}
NICE="nice -n 19"
checked=0

check() {  # name, build folder, meson native file naming nvcc, env prefix...
  local name=$1 build=$2 native=$3
  shift 3
  local logs="$build-logs"  # ignored, like every build* folder
  mkdir -p "$logs"
  if [ ! -f "$build/build.ninja" ]; then
    echo "== $name: configure $build"
    "$@" $NICE meson setup "$build" --native-file "$native" -Dcuda=enabled -Dgpu_arch="$ARCH" \
      -Ddnnl=disabled >"$logs/setup.log" 2>&1 || { tail -30 "$logs/setup.log"; exit 1; }
  fi
  grep -q "MNEMO_WITH_CUDA 1" "$build/mnemo_config.h" || { echo "$build: CUDA not enabled"; exit 1; }
  echo "== $name: build everything (-j$JOBS)"
  # Same PATH as at setup, so that nvcc finds its own ptxas and cudafe++.
  "$@" $NICE ninja -C "$build" -j"$JOBS" >"$logs/build.log" 2>&1 || { tail -40 "$logs/build.log"; exit 1; }
  echo "   $(grep -c 'Compiling Cuda object' "$logs/build.log" || true) .cu file(s) compiled in this run;" \
    "$(ls "$build"/kernels/libmnemo_cuda.a.p/*.cu.o | wc -l) .cu objects in the build"
  ldd "$build/tools/mnemo" | grep -q libcudart || { echo "mnemo is not linked with cudart"; exit 1; }

  echo "== $name: CPU-side tests"
  local suites=(cuda_host cuda_math backends_agree)
  [ "${FULL:-0}" = 1 ] && suites=(--no-suite slow)
  OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE $NICE meson test -C "$build" --no-rebuild --num-processes "$JOBS" \
    "${suites[@]}" >"$logs/tests.log" 2>&1 || { tail -40 "$logs/tests.log"; exit 1; }
  grep -E '^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout): ' "$logs/tests.log" | tr '\n' ' '
  echo

  # Without a device: SKIP (77) with the reason, from the test and from the benchmark.
  local rc=0
  OMP_NUM_THREADS=1 "$build/tests/test_kernels" --run_test=cuda_kernels --color_output=no \
    --log_level=message >"$logs/gpu_tests.log" 2>&1 || rc=$?
  if [ "$rc" != 77 ] || ! grep -q '^SKIP .*no CUDA device' "$logs/gpu_tests.log"; then
    echo "cuda_kernels without a GPU: expected SKIP (77) naming the missing device, got exit $rc"
    cat "$logs/gpu_tests.log"; exit 1
  fi
  echo "   cuda_kernels: exit 77, $(grep -c '^SKIP' "$logs/gpu_tests.log") cases skipped:" \
    "$(grep -o 'no CUDA device.*' "$logs/gpu_tests.log" | head -1)"
  OMP_NUM_THREADS=1 $NICE meson test -C "$build" --no-rebuild cuda_kernels >"$logs/gpu_meson.log" 2>&1 || true
  grep -q '^Skipped: *1' "$logs/gpu_meson.log" || { echo "meson did not count cuda_kernels as SKIP"; cat "$logs/gpu_meson.log"; exit 1; }
  rc=0
  "$build/tools/mnemo" bench cuda >"$logs/bench.log" 2>&1 || rc=$?
  [ "$rc" = 77 ] || { echo "mnemo bench cuda without a GPU: expected 77, got $rc"; cat "$logs/bench.log"; exit 1; }
  echo "   meson: cuda_kernels SKIP; mnemo bench cuda: exit 77, $(head -1 "$logs/bench.log")"
  checked=$((checked + 1))
}

version() { "$1" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'; }
if [ -x /usr/bin/nvcc ] && [ "${ONLY:-11}" = 11 ]; then
  # Debian's toolkit has no single root: unset the variables that point at another one, and
  # keep /usr/local/cuda/bin off PATH, or Debian's nvcc runs that toolkit's ptxas and
  # cudafe++ (ptxas 13 rejects nvcc 11.8's default sm_52). Its nvcc.profile puts its own g++
  # (g++-11, the newest it supports) first on PATH.
  check "CUDA $(version /usr/bin/nvcc) (Debian)" build-cuda11 scripts/cuda-debian.ini \
    env -u CUDA_HOME -u CUDA_PATH -u CUDA_ROOT PATH=/usr/sbin:/usr/bin:/sbin:/bin
fi
if [ -x /usr/local/cuda/bin/nvcc ] && [ "${ONLY:-13}" = 13 ]; then
  mkdir -p build-cuda13-logs
  printf "[binaries]\ncuda = '/usr/local/cuda/bin/nvcc'\n" >build-cuda13-logs/native.ini
  check "CUDA $(version /usr/local/cuda/bin/nvcc) (/usr/local/cuda)" build-cuda13 build-cuda13-logs/native.ini env
fi
if [ "$checked" = 0 ]; then
  echo "no CUDA toolkit here: scripts/setup.sh --cuda installs Debian's"
  exit 77
fi
echo "check_cuda_build: $checked toolkit(s) built the project with the CUDA backend; CPU-side tests passed; GPU tests skipped"
