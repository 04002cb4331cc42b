#!/usr/bin/env bash
# A/B of two mnemo binaries on the training benchmark: for each config, runs A and B
# alternately ROUNDS times (A first, then B, then B first, ...) so that a drifting host
# loads both alike, and prints each run's median model step and the median of the rounds.
# Usage: bench/ab_train.sh A_MNEMO B_MNEMO [ROUNDS] [STEPS] CONFIG...
set -euo pipefail
A=$1 B=$2 ROUNDS=${3:-3} STEPS=${4:-10}
shift 4
ms() {  # ms MNEMO CONFIG: the "model step" median in ms of one run
  OMP_NUM_THREADS=2 "$1" bench train "$2" --steps "$STEPS" | awk '/^model step/ {print $3}'
}
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
printf '%-36s %-28s %-28s %s\n' config "A ms (runs)" "B ms (runs)" "B/A"
for cfg in "$@"; do
  a=() b=()
  for ((r = 0; r < ROUNDS; r++)); do
    if ((r % 2 == 0)); then a+=("$(ms "$A" "$cfg")"); b+=("$(ms "$B" "$cfg")")
    else b+=("$(ms "$B" "$cfg")"); a+=("$(ms "$A" "$cfg")"); fi
  done
  ma=$(printf '%s\n' "${a[@]}" | median) mb=$(printf '%s\n' "${b[@]}" | median)
  printf '%-36s %-28s %-28s %.3f\n' "$(basename "$cfg")" "$ma (${a[*]})" "$mb (${b[*]})" "$(echo "$mb / $ma" | bc -l)"
done
