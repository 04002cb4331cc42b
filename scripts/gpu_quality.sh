#!/usr/bin/env bash
# Issue 26's quality checks on a GPU, after scripts/gpu_check.sh has built the CUDA backend:
# for each architecture, STEPS steps of experiments/configs/<arch>_shakespeare.yaml with the
# file's seed three times (on the CPU in f32, on the device in f32 and in bf16), then
#   device f32 against the CPU: final validation bits per byte within 0.01;
#   device bf16 against device f32: final validation loss within 1% (bf16 rounding is noise
#   that should not move the loss further: issue 24's bar for the same comparison on the CPU).
# Writes each run folder and a summary.txt to one folder; exit 0 when every check passes.
#
# Usage: scripts/gpu_quality.sh [RESULTS_DIR] [ARCH...]     (default ARCH: brt rmt compressive memxl)
# Environment: BUILD (default build-gpu), STEPS (default 500), WARMUP (the schedule's warmup
#   steps, default STEPS / 10: the files' 100 of 3,600 scaled), THREADS (CPU run; default nproc),
#   MNEMO_EMULATE_CUDA=1 runs the device side on the emulated device (a check of this script on a
#   machine without a GPU: every run is then the CPU's, so the figures say nothing about a GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build-gpu-quality/$(date -u +%Y%m%d-%H%M%S)}
shift || true
ARCHS=("$@")
((${#ARCHS[@]})) || ARCHS=(brt rmt compressive memxl)
BUILD=${BUILD:-build-gpu}
STEPS=${STEPS:-500}
WARMUP=${WARMUP:-$((STEPS / 10 > 0 ? STEPS / 10 : 1))}
THREADS=${THREADS:-$(nproc)}
MNEMO=$BUILD/tools/mnemo
die() { echo "gpu_quality: $*" >&2; exit 2; }
[ -x "$MNEMO" ] || die "$MNEMO not found: run scripts/gpu_check.sh first (or set BUILD)"
if [ "${MNEMO_EMULATE_CUDA:-0}" != 1 ]; then
  nvidia-smi -L 2>/dev/null | grep -q '^GPU ' || die "no GPU (nvidia-smi lists none); MNEMO_EMULATE_CUDA=1 checks the script"
fi
mkdir -p "$OUT"
summary=$OUT/summary.txt
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
say "gpu_quality: $STEPS steps of <arch>_shakespeare.yaml per run; $(date -u +%FT%TZ); $(git rev-parse --short HEAD)"

# value KEY FILE: a number from summary.json
value() { grep -o "\"$1\": *[-0-9.eE+]*" "$2" | head -1 | sed 's/.*: *//'; }

status=0
for a in "${ARCHS[@]}"; do
  cfg=experiments/configs/${a}_shakespeare.yaml
  [ -f "$cfg" ] || die "no $cfg"
  declare -A bpb=() loss=()
  for run in "cpu f32" "cuda f32" "cuda bf16"; do
    read -r dev p <<<"$run"
    dir=$OUT/${a}_${dev}_$p
    rm -rf "$dir"
    threads=$THREADS
    [ "$dev" = cuda ] && threads=2  # the host side of a device run: launches, not arithmetic
    env_prefix=()
    [ "$dev" = cpu ] && env_prefix=(env MNEMO_EMULATE_CUDA=0)
    start=$(date +%s)
    if ! "${env_prefix[@]}" "$MNEMO" train "$cfg" --out "$dir" --quiet --set "device=$dev" --set "train.precision=$p" \
      --set "train.steps=$STEPS" --set "train.schedule.warmup_steps=$WARMUP" --set "train.eval_every=$STEPS" \
      --set train.checkpoint_every=0 \
      --set eval.generate_every=0 --set "train.threads=$threads" >"$dir.log" 2>&1; then
      say "$a $dev $p: FAILED (log: $dir.log)"; tail -5 "$dir.log" | tee -a "$summary"; status=1; continue
    fi
    bpb[$dev$p]=$(value final_val_bpb "$dir/summary.json")
    loss[$dev$p]=$(value final_val_loss "$dir/summary.json")
    say "$a $dev $p: final validation ${bpb[$dev$p]} bits per byte (loss ${loss[$dev$p]}), $(value tokens_per_s "$dir/summary.json") tokens/s, $(($(date +%s) - start)) s"
  done
  [ -n "${bpb[cpuf32]:-}" ] && [ -n "${bpb[cudaf32]:-}" ] && [ -n "${loss[cudabf16]:-}" ] || { status=1; continue; }
  verdict=$(awk -v c="${bpb[cpuf32]}" -v g="${bpb[cudaf32]}" -v f="${loss[cudaf32]}" -v b="${loss[cudabf16]}" 'BEGIN {
    d = g - c; r = (b - f) / f;
    printf "%s: device f32 - CPU f32 = %+.4f bits per byte (%s, bar 0.01); bf16 - f32 = %+.2f%% of the loss (%s, bar 1%%)",
      "'"$a"'", d, (d < 0.01 && d > -0.01) ? "PASS" : "FAIL", 100 * r, (r < 0.01 && r > -0.01) ? "PASS" : "FAIL" }')
  say "$verdict"
  grep -q FAIL <<<"$verdict" && status=1
done
say "result: $([ $status = 0 ] && echo PASS || echo FAIL); everything is in $OUT"
exit $status
