#!/usr/bin/env bash
# f32 against bf16 training steps, and f32 against a base binary, interleaved: for each
# config, ROUNDS rounds of three runs (BASE f32, NEW f32, NEW bf16), the order rotated
# every round so that a drifting host loads all three alike. Prints each run's median
# model step (ms), the median of the rounds, tokens/s at that median, NEW f32 / BASE f32
# (above 1: the f32 step got slower) and bf16's speed-up over NEW f32.
# Usage: bench/precision_train.sh BASE_MNEMO NEW_MNEMO [ROUNDS] [STEPS] CONFIG...
# (BASE may be NEW itself where no base binary is at hand.)
set -euo pipefail
BASE=$1 NEW=$2 ROUNDS=${3:-3} STEPS=${4:-5}
shift 4
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
run() {  # run VARIANT CONFIG: "ms tokens/s" of one run's median model step
  local out
  case $1 in
    base) out=$("$BASE" bench train "$2" --steps "$STEPS" --quiet) ;;
    f32) out=$("$NEW" bench train "$2" --steps "$STEPS" --quiet --model-only --precision f32) ;;
    bf16) out=$("$NEW" bench train "$2" --steps "$STEPS" --quiet --model-only --precision bf16) ;;
  esac
  awk '/^model step/ {print $3, $(NF-1)}' <<<"$out"
}
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
printf '%-24s %-30s %-30s %-30s %10s %9s %9s\n' config "base f32 ms (runs)" "f32 ms (runs)" "bf16 ms (runs)" \
  "bf16 tok/s" "f32/base" "bf16 x"
variants=(base f32 bf16)
for cfg in "$@"; do
  declare -A ms=([base]="" [f32]="" [bf16]="")
  tokens=""
  for ((r = 0; r < ROUNDS; r++)); do
    for ((i = 0; i < 3; i++)); do
      v=${variants[$(((i + r) % 3))]}
      read -r m t <<<"$(run "$v" "$cfg")"
      ms[$v]+="$m "
      if [[ $v == bf16 ]]; then tokens=$(awk -v t="$t" -v m="$m" 'BEGIN {print t * m}'); fi  # tokens a step, in ms units
    done
  done
  mb=$(tr ' ' '\n' <<<"${ms[base]}" | grep . | median)
  mf=$(tr ' ' '\n' <<<"${ms[f32]}" | grep . | median)
  mh=$(tr ' ' '\n' <<<"${ms[bf16]}" | grep . | median)
  printf '%-24s %-30s %-30s %-30s %10.0f %9.3f %9.2f\n' "$(basename "$cfg" .yaml)" "$mb (${ms[base]% })" \
    "$mf (${ms[f32]% })" "$mh (${ms[bf16]% })" "$(echo "$tokens / $mh" | bc -l)" "$(echo "$mf / $mb" | bc -l)" \
    "$(echo "$mf / $mh" | bc -l)"
  unset ms
done
