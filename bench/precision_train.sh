#!/usr/bin/env bash
# f32 against bf16 training steps, on a base binary and a new one, interleaved: for each
# config, ROUNDS rounds of four runs (BASE f32, BASE bf16, NEW f32, NEW bf16), the order
# rotated every round so that a drifting host loads all four alike. Prints each variant's
# median model step (ms) over the rounds with the runs behind it, the tokens/s of each
# median, NEW f32 / BASE f32 (above 1: the f32 step got slower), bf16's speed-up over f32
# on each binary (b bf16x, bf16 x), and NEW bf16's speed-up over BASE bf16 (bf16/b).
# Usage: bench/precision_train.sh BASE_MNEMO NEW_MNEMO [ROUNDS] [STEPS] CONFIG...
# Both binaries need `bench train --precision` (commit ef7f83a or later); BASE may be NEW.
# OMP_NUM_THREADS (default 2), OMP_WAIT_POLICY (default PASSIVE; `default` leaves it unset).
set -euo pipefail
BASE=$1 NEW=$2 ROUNDS=${3:-3} STEPS=${4:-5}
shift 4
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
[[ $OMP_WAIT_POLICY == default ]] && unset OMP_WAIT_POLICY  # libgomp's own: spin a while, then sleep
run() {  # run VARIANT CONFIG: "ms tokens/s" of one run's median model step
  local bin=$NEW out
  [[ $1 == base_* ]] && bin=$BASE
  out=$("$bin" bench train "$2" --steps "$STEPS" --quiet --model-only --precision "${1#base_}")
  awk '/^model step/ {print $3, $(NF-1)}' <<<"$out"
}
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ratio() { echo "$1 / $2" | bc -l; }
variants=(base_f32 base_bf16 f32 bf16)
printf '%-20s %-28s %-28s %-28s %-28s %8s %8s %8s %8s %8s %8s %8s %8s\n' config "base f32 ms (runs)" \
  "base bf16 ms (runs)" "f32 ms (runs)" "bf16 ms (runs)" "b f32/s" "b bf16/s" "f32/s" "bf16/s" "f32/base" \
  "b bf16x" "bf16 x" "bf16/b"
for cfg in "$@"; do
  declare -A ms=([base_f32]="" [base_bf16]="" [f32]="" [bf16]="")
  tokens=""
  for ((r = 0; r < ROUNDS; r++)); do
    for ((i = 0; i < 4; i++)); do
      v=${variants[$(((i + r) % 4))]}
      read -r m t <<<"$(run "$v" "$cfg")"
      ms[$v]+="$m "
      tokens=$(awk -v t="$t" -v m="$m" 'BEGIN {printf "%.0f", t * m}')  # tokens a step, in ms units (printf: bc cannot read 1e+06)
    done
  done
  declare -A med=()
  for v in "${variants[@]}"; do med[$v]=$(tr ' ' '\n' <<<"${ms[$v]}" | grep . | median); done
  printf '%-20s %-28s %-28s %-28s %-28s %8.0f %8.0f %8.0f %8.0f %8.3f %8.2f %8.2f %8.2f\n' "$(basename "$cfg" .yaml)" \
    "${med[base_f32]} (${ms[base_f32]% })" "${med[base_bf16]} (${ms[base_bf16]% })" "${med[f32]} (${ms[f32]% })" \
    "${med[bf16]} (${ms[bf16]% })" "$(ratio "$tokens" "${med[base_f32]}")" "$(ratio "$tokens" "${med[base_bf16]}")" \
    "$(ratio "$tokens" "${med[f32]}")" "$(ratio "$tokens" "${med[bf16]}")" "$(ratio "${med[f32]}" "${med[base_f32]}")" \
    "$(ratio "${med[base_f32]}" "${med[base_bf16]}")" "$(ratio "${med[f32]}" "${med[bf16]}")" \
    "$(ratio "${med[base_bf16]}" "${med[bf16]}")"
  unset ms med
done
