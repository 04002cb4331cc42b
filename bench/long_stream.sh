#!/usr/bin/env bash
# Long-stream evaluation in constant memory (docs/RESULTS.md, "Long streams"): for each
# architecture, a small model trained for a few steps on Tiny Shakespeare, then
# `mnemo eval RUN --tokens FILE` on streams of 100k, 1M and 10M bytes (Tiny Shakespeare
# repeated), each in a process of its own under /usr/bin/time -v: peak RSS and tokens/s.
#   bash bench/long_stream.sh [MNEMO] [OUT]       (defaults: build/tools/mnemo, /tmp/mnemo-long-stream)
#   ARCHS="rmt brt" SIZES="100000 1000000" bash bench/long_stream.sh ...
# The model: experiments/configs/<arch>_shakespeare.yaml at dim 64 (4 layers, 4 heads, segments
# of 256), 20 training steps; transformer and transformer_xl use rmt's file with their own
# model block. One OpenMP thread with passive waiting: on a shared 2-core machine, spinning
# OpenMP threads made evaluation of this small model 7x slower.
# Prints a Markdown table and leaves the runs, streams, logs and each evaluation's position
# table and plot in OUT; run again, it redoes only the evaluations without a result. Two
# peaks: the one `mnemo eval` prints (getrusage of its own process, before it writes the
# report) and /usr/bin/time's maximum resident size, the largest of the process and its
# children: gnuplot, drawing the plot, can be the larger.
set -euo pipefail
MNEMO=$(realpath "${1:-build/tools/mnemo}")
OUT=${2:-/tmp/mnemo-long-stream}
ARCHS=${ARCHS:-"rmt brt compressive memxl transformer transformer_xl"}
SIZES=${SIZES:-"100000 1000000 10000000"}
REPO=$(cd "$(dirname "$0")/.." && pwd)
TEXT=$(realpath "${TEXT:-$REPO/data/tinyshakespeare.txt}")
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
[ -f "$TEXT" ] || { echo "no $TEXT (set TEXT=path/to/tinyshakespeare.txt)" >&2; exit 1; }

for n in $SIZES; do  # the text repeated to n bytes
  f="$OUT/stream_$n.txt"
  if [ ! -f "$f" ]; then
    reps=$(( n / $(stat -c %s "$TEXT") + 1 ))
    for _ in $(seq "$reps"); do cat "$TEXT"; done | head -c "$n" > "$f" || true
  fi
  [ "$(stat -L -c %s "$f")" = "$n" ] || { echo "could not make $f" >&2; exit 1; }
done

common=(--set model.dim=64 --set train.steps=20 --set train.schedule.warmup_steps=2 --set train.eval_every=0
        --set eval.batches=2 --set eval.generate_every=0 --set "data.path=$TEXT")
printf '| arch | tokens | peak RSS of mnemo (MiB) | max RSS, time -v (MiB) | tokens/s | bits/byte | wall (s) |\n'
printf '|---|---:|---:|---:|---:|---:|---:|\n'
for arch in $ARCHS; do
  run="$OUT/run_$arch"
  if [ ! -f "$run/summary.json" ]; then
    rm -rf "$run"
    case $arch in
      transformer|transformer_xl)  # rmt's file without its rmt block and memory dropout
        sed -e "s/arch: rmt/arch: $arch/" -e '/^  rmt:/,/num_memory_tokens/d' -e '/memory_dropout/d' \
          "$REPO/experiments/configs/rmt_shakespeare.yaml" > "$OUT/$arch.yaml"
        cfg="$OUT/$arch.yaml" ;;
      *) cfg="$REPO/experiments/configs/${arch}_shakespeare.yaml" ;;
    esac
    nice "$MNEMO" train "$cfg" "${common[@]}" --quiet --out "$run" > "$OUT/train_$arch.log" 2>&1
  fi
  for n in $SIZES; do
    log="$OUT/eval_${arch}_$n.log"
    if ! grep -q "Maximum resident" "$log" 2> /dev/null; then  # finished evaluations are not redone
      nice /usr/bin/time -v "$MNEMO" eval "$run" --tokens "$OUT/stream_$n.txt" --quiet > "$log" 2>&1
    fi
    own=$(sed -n 's/.* tokens\/s; peak RSS \([0-9.]*\) MiB.*/\1/p' "$log")
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$log")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; printf "%.0f", s}' "$log")
    rate=$(sed -n 's/.* tokens in .* s: \([0-9]*\) tokens\/s.*/\1/p' "$log")
    bpb=$(sed -n 's/^mean loss .* (\([0-9.]*\) bits\/byte.*/\1/p' "$log")
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$arch" "$n" "$own" "$rss" "$rate" "$bpb" "$wall"
  done
done
