#!/usr/bin/env bash
# `mnemo plot` end to end: a PNG of a tiny run's validation loss. It needs gnuplot: without
# it the test exits 77, which meson counts as SKIP. Usage: plot_test.sh MNEMO
set -euo pipefail
MNEMO=$1
source "$(dirname "$0")/common.sh"
need_program gnuplot

cat > "$tmp/tiny.yaml" <<'YAML'
name: tiny
data: {kind: synthetic, task: copy, copy_len: 3, segments: 2, segment_len: 8, batch_size: 2}
model: {arch: transformer_xl, dim: 16, depth: 1, heads: 2}
train: {steps: 4, log_every: 2, eval_every: 2, threads: 1, optimizer: {lr: 0.01}}
eval: {batches: 1}
YAML
"$MNEMO" train "$tmp/tiny.yaml" --out "$tmp/run" --quiet > /dev/null 2>&1 || fail "train"
"$MNEMO" plot "$tmp/run" --metric val_loss --out "$tmp/curves.png" > /dev/null 2>&1 || fail "plot"
[ "$(stat -c %s "$tmp/curves.png")" -gt 1000 ] || fail "curves.png is missing or empty"
# Against training time and trained tokens: every metrics row carries both (2 steps of
# 2 sequences x 2 segments x 8 tokens = 64 tokens at step 2).
grep -q '"step":2,"train_tokens":64,' "$tmp/run/metrics.jsonl" || fail "metrics.jsonl lacks train_tokens 64 at step 2"
for x in seconds tokens; do
  "$MNEMO" plot "$tmp/run" --metric val_loss --x $x --out "$tmp/curves-$x.png" > /dev/null 2>&1 || fail "plot --x $x"
  [ "$(stat -c %s "$tmp/curves-$x.png")" -gt 1000 ] || fail "curves-$x.png is missing or empty"
done
if "$MNEMO" plot "$tmp/run" --metric train_loss --x seconds --out "$tmp/x.png" > "$tmp/err.txt" 2>&1; then
  fail "train_loss was plotted against seconds, which train.jsonl does not record"
fi
grep -q "use --x step" "$tmp/err.txt" || fail "the train_loss/seconds refusal does not say what to do: $(cat "$tmp/err.txt")"
if "$MNEMO" plot "$tmp/run" --metric no_such_metric --out "$tmp/x.png" > "$tmp/err.txt" 2>&1; then
  fail "an unknown metric was plotted"
fi
echo "plot: ok"
