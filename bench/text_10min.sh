#!/usr/bin/env bash
# Results on real text (docs/RESULTS.md, "Text: six models, 10 minutes each"): trains each
# model's shipped experiments/configs/<arch>_shakespeare.yaml (schedules sized for 10
# minutes of training on 2 cores), then scores it on the held-out last 10% of Tiny
# Shakespeare read as one stream, memory carried from its first byte to its last.
#   bash bench/text_10min.sh [MNEMO] [OUT]        (defaults: build/tools/mnemo, runs/text_10min)
#   ARCHS="rmt brt" bash bench/text_10min.sh ...
# Each training runs in a process of its own under /usr/bin/time -v (peak RSS); a model with
# a finished run is not trained again. Prints a Markdown table and draws held-out bits per
# byte against training seconds and against trained tokens (OUT/bpb_seconds.png,
# OUT/bpb_tokens.png; gnuplot). The data path inside the files is ../shared/data/...:
# run from the repository root with the data there, or pass TEXT=... to use another copy.
set -euo pipefail
MNEMO=$(realpath "${1:-build/tools/mnemo}")
OUT=${2:-runs/text_10min}
ARCHS=${ARCHS:-"rmt brt compressive memxl transformer transformer_xl"}
REPO=$(cd "$(dirname "$0")/.." && pwd)
TEXT=$(realpath "${TEXT:-$REPO/data/tinyshakespeare.txt}")
[ -f "$TEXT" ] || { echo "no $TEXT (set TEXT=path/to/tinyshakespeare.txt)" >&2; exit 1; }
mkdir -p "$OUT"

# The held-out split the trainer uses: the last round(0.1 * size) bytes (data/byte_corpus.cpp).
size=$(stat -c %s "$TEXT")
valid=$(( (size + 5) / 10 ))
tail -c "$valid" "$TEXT" > "$OUT/heldout.txt"

for a in $ARCHS; do
  run="$OUT/$a"
  if [ ! -f "$run/summary.json" ]; then
    /usr/bin/time -v "$MNEMO" train "$REPO/experiments/configs/${a}_shakespeare.yaml" --out "$run" \
      --set data.path="$TEXT" --quiet > "$OUT/$a.train.log" 2> "$OUT/$a.time.txt"
  fi
  if [ ! -f "$OUT/$a.heldout.txt" ]; then
    "$MNEMO" eval "$run" --tokens "$OUT/heldout.txt" --quiet > "$OUT/$a.heldout.txt" 2>&1
  fi
done

field() { grep -o "\"$2\":[^,}]*" "$1" | head -1 | cut -d: -f2; }
echo "| arch | params | steps | training s | tokens/s | peak RSS (MiB) | held-out bits/byte (in-run, 16 batches) at 1/4, 1/2, 3/4, end | held-out last 10% as one stream, bits/byte |"
echo "|---|---:|---:|---:|---:|---:|---|---:|"
for a in $ARCHS; do
  s="$OUT/$a/summary.json"
  curve=$(grep -o '"val_bpb":[0-9.]*' "$OUT/$a/metrics.jsonl" | cut -d: -f2 | xargs printf '%.3f / ' | sed 's| / $||')
  rss=$(awk '/Maximum resident/ {printf "%.0f", $NF / 1024}' "$OUT/$a.time.txt")
  stream=$(grep -o "([0-9.]* bits/byte" "$OUT/$a.heldout.txt" | head -1 | tr -d "(" | cut -d" " -f1)
  printf '| %s | %s | %s | %.0f | %.0f | %s | %s | %.3f |\n' "$a" "$(field "$s" params)" "$(field "$s" steps)" \
    "$(field "$s" train_seconds)" "$(field "$s" tokens_per_s)" "$rss" "$curve" "$stream"
done
runs=(); for a in $ARCHS; do runs+=("$OUT/$a"); done
"$MNEMO" plot "${runs[@]}" --metric val_bpb --x seconds --out "$OUT/bpb_seconds.png" > /dev/null
"$MNEMO" plot "${runs[@]}" --metric val_bpb --x tokens --out "$OUT/bpb_tokens.png" > /dev/null
echo "plots: $OUT/bpb_seconds.png $OUT/bpb_tokens.png"
