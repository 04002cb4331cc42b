#!/usr/bin/env bash
# Data-parallel scaling on one machine: the same config and global batch trained by one
# process and by N processes (mpirun, TCP over loopback), one thread each, alternated
# (1, N, N, 1, 1, N, ...) so that a drifting host loads both alike. Prints each run's training
# tokens/s (summary.json: global tokens over rank 0's time inside the steps) and, for N, the
# share of that time rank 0 waited for gradient sums after its last backward.
# Usage: bench/mpi_scaling.sh MNEMO CONFIG [N] [ROUNDS] [STEPS]
set -euo pipefail
MNEMO=$1 CONFIG=$2 N=${3:-2} ROUNDS=${4:-3} STEPS=${5:-8}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sets=(--set "train.steps=$STEPS" --set train.threads=1 --set train.eval_every=0 --set train.checkpoint_every=0
      --set eval.batches=1 --quiet)
field() { python3 -c "import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], 0))" "$1" "$2"; }
run() {  # run PROCESSES ROUND
  local dir=$tmp/n$1_$2
  if [ "$1" = 1 ]; then "$MNEMO" train "$CONFIG" "${sets[@]}" --out "$dir" > /dev/null
  else mpirun -n "$1" --oversubscribe --bind-to none --mca pml ob1 --mca btl self,tcp --mca btl_tcp_if_include lo \
         --mca oob_tcp_if_include lo "$MNEMO" train "$CONFIG" "${sets[@]}" --out "$dir" > /dev/null; fi
  local tok wait train
  tok=$(field "$dir/summary.json" tokens_per_s) wait=$(field "$dir/summary.json" allreduce_wait_seconds)
  train=$(field "$dir/summary.json" train_seconds)
  printf '%s processes, round %s: %8.0f tokens/s, gradient-sum wait %.3f s of %.2f s (%.1f%%)\n' "$1" "$2" "$tok" \
    "$wait" "$train" "$(echo "100 * $wait / $train" | bc -l)"
  echo "$1 $tok" >> "$tmp/rates"
}
for ((r = 0; r < ROUNDS; r++)); do
  if ((r % 2 == 0)); then run 1 "$r"; run "$N" "$r"; else run "$N" "$r"; run 1 "$r"; fi
done
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
one=$(awk '$1 == 1 {print $2}' "$tmp/rates" | median) many=$(awk -v n="$N" '$1 == n {print $2}' "$tmp/rates" | median)
printf 'median tokens/s: 1 process %.0f, %s processes %.0f: %.2fx\n' "$one" "$N" "$many" "$(echo "$many / $one" | bc -l)"
