#!/usr/bin/env bash
# The whole GPU check in one command, on a machine with an NVIDIA GPU and CUDA 12/13
# (no oneDNN there): builds with the CUDA backend, runs every CUDA test (each kernel against
# the f64 reference, forward and backward, odd sizes, every attention mask rule; the
# allocator's steady state and CUDA Graph replay), the rest of the suite, the CUDA
# benchmark, every registered op in f32 on the device against the f64 CPU run (mnemo
# gradcheck --device cuda) and the training step of the four medium configs on the device at
# batch 4 and 32 (mnemo bench train --device cuda: tokens/s, peak device memory); writes
# everything to one folder and prints a summary. Meant to take under 8 minutes on 16 cores.
#
# Usage: [QUALITY=1] scripts/gpu_check.sh [--build-only] [RESULTS_DIR] [GPU_ARCH (default 90)]
#   QUALITY=1 ends with scripts/gpu_quality.sh (device vs CPU, bf16 vs f32 on shakespeare).
#   Without a GPU it stops before building, saying so (exit 2): nothing runs half-way.
#   --build-only: no GPU needed; configures and builds as on the GPU machine, checks that
#   every test, suite and command the GPU steps use exists, runs the CPU-side CUDA tests,
#   and stops before the first step that needs a device (how the script is checked on a
#   machine without one). BUILD (default build-gpu) names the build folder.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD_ONLY=0
if [ "${1:-}" = --build-only ]; then BUILD_ONLY=1; shift; fi
OUT=${1:-build-gpu-check/$(date -u +%Y%m%d-%H%M%S)}
ARCH=${2:-90}
BUILD=${BUILD:-build-gpu}
JOBS=$(nproc)
die() { echo "gpu_check: $*" >&2; exit 2; }

for p in nvcc meson ninja; do
  command -v "$p" >/dev/null || die "$p is not on PATH (the GPU machine has nvcc 13 in /usr/local/cuda/bin)"
done
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
if [ "$gpus" = 0 ] && [ "$BUILD_ONLY" = 0 ]; then
  die "no GPU here (nvidia-smi lists none): nothing was built or run. On a machine without a GPU,
   scripts/gpu_check.sh --build-only checks the build and the steps up to the first that needs one."
fi

mkdir -p "$OUT"
summary="$OUT/summary.txt"
: >"$summary"
status=0
note() { echo "$*" | tee -a "$summary"; }
step() {  # name, log file, command...: runs it with a wall-clock time and records PASS/FAIL.
  # A SKIP (77) is a failure too: every step here has what it needs, a GPU included.
  local name=$1 log=$2
  shift 2
  local t0=$SECONDS rc=0
  "$@" >"$OUT/$log" 2>&1 || rc=$?
  local verdict=PASS
  [ "$rc" = 77 ] && verdict="FAIL (SKIP, exit 77)"
  [ "$rc" != 0 ] && [ "$rc" != 77 ] && verdict="FAIL (exit $rc)"
  [ "$rc" != 0 ] && status=1
  note "$(printf '%-34s %-20s %4ds  %s' "$name" "$verdict" $((SECONDS - t0)) "$OUT/$log")"
  return "$rc"
}
stop() { note "result: FAIL at $1; everything is in $OUT"; exit 1; }

note "mnemo GPU check$([ $BUILD_ONLY = 1 ] && echo ' (--build-only)'), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
note "GPU: $([ "$gpus" = 0 ] && echo none || nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"
note "nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p') ($(command -v nvcc)), meson $(meson --version), build folder $BUILD"

if [ ! -f "$BUILD/build.ninja" ]; then
  step "configure" configure.log meson setup "$BUILD" -Dcuda=enabled -Ddnnl=disabled -Dgpu_arch="$ARCH" || stop configure
fi
step "build (-j$JOBS)" build.log ninja -C "$BUILD" -j"$JOBS" || { tail -40 "$OUT/build.log"; stop build; }

# Every test, suite and command the steps below name, before any of them runs.
tk="$BUILD/tests/test_kernels"
preflight() {
  grep -q "MNEMO_WITH_CUDA 1" "$BUILD/mnemo_config.h" || { echo "$BUILD was not configured with CUDA"; return 1; }
  local listed
  listed=$("$tk" --list_content 2>&1) || { echo "$listed"; return 1; }
  for s in cuda_kernels cuda_math cuda_host; do
    grep -q "^$s\*\?$" <<<"$listed" || { echo "test_kernels has no suite $s"; return 1; }
  done
  meson test -C "$BUILD" --list --no-suite slow | grep -q "cuda_kernels" || { echo "meson test lists no cuda_kernels"; return 1; }
  "$BUILD/tools/mnemo" bench cuda --help >/dev/null || { echo "mnemo has no 'bench cuda'"; return 1; }
  "$BUILD/tools/mnemo" gradcheck --help | grep -q -- --device || { echo "mnemo gradcheck has no --device"; return 1; }
  "$BUILD/tools/mnemo" bench train --help | grep -q -- --device || { echo "mnemo bench train has no --device"; return 1; }
  "$BUILD/tools/mnemo" bench train --help | grep -q -- --precision || { echo "mnemo bench train has no --precision"; return 1; }
  for a in brt compressive memxl rmt; do
    [ -f "bench/configs/${a}_medium.yaml" ] || { echo "no bench/configs/${a}_medium.yaml"; return 1; }
  done
  echo "test_kernels suites, meson's test list, 'mnemo bench cuda', the --device options and the configs are all there"
}
step "preflight (tests, commands)" preflight.log preflight || stop preflight

export OMP_WAIT_POLICY=PASSIVE
step "CUDA math and host policies (CPU)" cuda_cpu.log env OMP_NUM_THREADS=4 "$tk" \
  --run_test=cuda_math,cuda_host --color_output=no --report_level=short
# The device dispatch without a device: every op in f32 on the emulated device (docs/CUDA.md).
step "gradcheck, emulated device (CPU)" gradcheck_emulated.log env OMP_NUM_THREADS=4 MNEMO_EMULATE_CUDA=1 \
  "$BUILD/tools/mnemo" gradcheck --device cuda
if [ "$BUILD_ONLY" = 1 ]; then
  note "stopped before the GPU steps (--build-only): CUDA kernels vs reference, test suite, bench cuda"
  note "result: $([ $status = 0 ] && echo 'PASS (build and CPU-side steps only)' || echo FAIL); everything is in $OUT"
  exit $status
fi
step "CUDA kernels vs reference" cuda_kernels.log env OMP_NUM_THREADS=4 "$tk" \
  --run_test=cuda_kernels --color_output=no --log_level=message --report_level=detailed
step "test suite (not slow)" meson_test.log timeout 240 meson test -C "$BUILD" --no-rebuild \
  --num-processes "$JOBS" --no-suite slow
step "bench cuda" bench_cuda.log "$BUILD/tools/mnemo" bench cuda
tee -a "$summary" <"$OUT/bench_cuda.log"
step "gradcheck --device cuda" gradcheck_cuda.log timeout 300 "$BUILD/tools/mnemo" gradcheck --device cuda
tail -1 "$OUT/gradcheck_cuda.log" | tee -a "$summary"
# The training step on the device, for the four memory architectures at the medium size:
# f32 at batch 4 and 32, bf16 (cuBLAS tensor cores, bf16 attention tiles) at batch 32.
for a in brt compressive memxl rmt; do
  for run in "4 f32" "32 f32" "32 bf16"; do
    read -r b p <<<"$run"
    step "bench train $a medium, batch $b, $p" "bench_train_${a}_b${b}_$p.log" timeout 120 "$BUILD/tools/mnemo" \
      bench train "bench/configs/${a}_medium.yaml" --device cuda --precision "$p" --set data.batch_size=$b --steps 3 \
      --model-only --quiet
    grep -E '^(model step|model FLOP/s|peak device mem|copies per step|host waits)' \
      "$OUT/bench_train_${a}_b${b}_$p.log" | sed 's/^/    /' | tee -a "$summary"
  done
done
# QUALITY=1: then the quality checks (scripts/gpu_quality.sh: device vs CPU and bf16 vs f32
# after 500 steps of shakespeare per architecture), a few minutes more.
if [ "${QUALITY:-0}" = 1 ]; then
  step "quality (gpu_quality.sh)" quality.log env BUILD="$BUILD" scripts/gpu_quality.sh "$OUT/quality"
  grep -E '^[a-z]+: device f32|^result' "$OUT/quality.log" | sed 's/^/    /' | tee -a "$summary"
fi
note "result: $([ $status = 0 ] && echo PASS || echo FAIL); everything is in $OUT"
exit $status
