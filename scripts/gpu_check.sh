#!/usr/bin/env bash
# The whole GPU check in one command, on a machine with an NVIDIA GPU and CUDA 12/13
# (no oneDNN there): builds with the CUDA backend, runs every CUDA test (each kernel against
# the f64 reference, forward and backward, odd sizes, every attention mask rule; the
# allocator's steady state and CUDA Graph replay), the rest of the suite, and the CUDA
# benchmark; writes everything to one folder and prints a summary. Meant to take under
# 8 minutes on 16 cores. Usage: scripts/gpu_check.sh [RESULTS_DIR] [GPU_ARCH (default 90)]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build-gpu-check/$(date -u +%Y%m%d-%H%M%S)}
ARCH=${2:-90}
BUILD=build-gpu
JOBS=$(nproc)
mkdir -p "$OUT"
summary="$OUT/summary.txt"
: >"$summary"
status=0
note() { echo "$*" | tee -a "$summary"; }
step() {  # name, log file, command...: runs it with a wall-clock time, records pass/fail/skip
  local name=$1 log=$2
  shift 2
  local t0=$SECONDS rc=0
  "$@" >"$OUT/$log" 2>&1 || rc=$?
  local verdict=PASS
  [ "$rc" = 77 ] && verdict=SKIP
  [ "$rc" != 0 ] && [ "$rc" != 77 ] && verdict="FAIL (exit $rc)" && status=1
  note "$(printf '%-34s %-14s %4ds  %s' "$name" "$verdict" $((SECONDS - t0)) "$OUT/$log")"
  return "$rc"
}

note "mnemo GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || note "nvidia-smi failed: is there a GPU?"
note "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
note "nvcc: $(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p'), meson $(meson --version)"

if [ ! -f "$BUILD/build.ninja" ]; then
  step "configure" configure.log meson setup "$BUILD" -Dcuda=enabled -Ddnnl=disabled -Dgpu_arch="$ARCH" || { cat "$summary"; exit 1; }
fi
step "build (-j$JOBS)" build.log ninja -C "$BUILD" -j"$JOBS" || { tail -40 "$OUT/build.log"; exit 1; }
export OMP_WAIT_POLICY=PASSIVE
step "CUDA kernels vs reference" cuda_kernels.log env OMP_NUM_THREADS=4 "$BUILD/tests/test_kernels" \
  --run_test=cuda_kernels --color_output=no --log_level=message --report_level=detailed
step "CUDA math and host policies (CPU)" cuda_cpu.log env OMP_NUM_THREADS=4 "$BUILD/tests/test_kernels" \
  --run_test=cuda_math,cuda_host --color_output=no --report_level=short
step "test suite (not slow)" meson_test.log timeout 240 meson test -C "$BUILD" --no-rebuild \
  --num-processes "$JOBS" --no-suite slow
step "bench cuda" bench_cuda.log "$BUILD/tools/mnemo" bench cuda
cat "$OUT/bench_cuda.log" | tee -a "$summary"
# What the issue asks for and this build does not do yet (docs/CUDA.md): said, not skipped silently.
note "NOT RUN: mnemo gradcheck --device cuda and mnemo bench train --device cuda: whole models do not run on"
note "         CUDA tensors yet (device dispatch above the kernels is missing; docs/CUDA.md)"
note "result: $([ $status = 0 ] && echo PASS || echo FAIL); everything is in $OUT"
exit $status
