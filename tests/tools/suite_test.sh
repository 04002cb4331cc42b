#!/usr/bin/env bash
# `mnemo suite --jobs 2` end to end: runs in child processes, two at a time; a second call
# trains nothing; SIGINT reaches the children, which checkpoint, and the same command then
# resumes them and finishes. Usage: suite_test.sh MNEMO
set -euo pipefail
MNEMO=$1
source "$(dirname "$0")/common.sh"

cat > "$tmp/base.yaml" <<'YAML'
name: base
data: {kind: synthetic, task: copy, copy_len: 2, segments: 2, segment_len: 8, batch_size: 2}
model: {arch: transformer, dim: 16, depth: 1, heads: 2, transformer_xl: {mem_len: 8}}
train: {steps: 6, log_every: 3, eval_every: 3, checkpoint_every: 3, threads: 1}
eval: {batches: 1}
YAML
cat > "$tmp/suite.yaml" <<'YAML'
name: tiny
experiment: base.yaml
seeds: [1, 2]
models: [transformer, {transformer_xl: {model.dim: 12}}]
settings:
  - {name: copy, sets: {data.task: copy}, axis: data.segments, values: [2, 4]}
YAML
"$MNEMO" suite "$tmp/suite.yaml" --jobs 2 --out "$tmp/s" --quiet > "$tmp/out.txt" 2>&1 || { cat "$tmp/out.txt"; fail "suite"; }
for run in "$tmp"/s/copy/*; do
  [ -f "$run/summary.json" ] || fail "$run has no summary.json"
  [ -f "$run/stdout.txt" ] || fail "$run has no stdout.txt (a child's output)"
done
[ "$(ls "$tmp/s/copy" | wc -l)" = 8 ] || fail "expected 8 runs, got $(ls "$tmp/s/copy")"
[ "$(wc -l < "$tmp/s/results.csv")" = 5 ] || fail "results.csv: $(cat "$tmp/s/results.csv")"
grep -q '"jobs":2,"trained":8' "$tmp/s/invocations.jsonl" || fail "invocations: $(cat "$tmp/s/invocations.jsonl")"
"$MNEMO" suite "$tmp/suite.yaml" --jobs 2 --out "$tmp/s" --quiet > /dev/null 2>&1 || fail "second call"
[ "$(wc -l < "$tmp/s/invocations.jsonl")" = 1 ] || fail "the second call trained: $(cat "$tmp/s/invocations.jsonl")"

# Long runs, interrupted once both children have started (their config.yaml is written).
"$MNEMO" suite "$tmp/suite.yaml" --jobs 2 --out "$tmp/long" --set train.steps=100000 --set train.eval_every=0 \
  --set train.checkpoint_every=0 --quiet > "$tmp/long.txt" 2>&1 &
pid=$!
for _ in $(seq 600); do
  [ "$(ls "$tmp"/long/copy/*/config.yaml 2> /dev/null | wc -l)" = 2 ] && break
  sleep 0.2
done
sleep 1
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 1 ] || { cat "$tmp/long.txt"; fail "an interrupted suite exits 1, got $rc"; }
grep -q "stopped by signal 2" "$tmp/long.txt" || fail "no stop message: $(cat "$tmp/long.txt")"
[ "$(ls "$tmp"/long/copy/*/checkpoints/last.safetensors | wc -l)" = 2 ] || fail "the two children did not checkpoint"
[ "$(ls "$tmp"/long/copy/*/summary.json 2> /dev/null | wc -l)" = 0 ] || fail "a run finished 100000 steps"
# Resumed with fewer steps (the one key a resumed run takes from the suite): the two started
# runs go on from their checkpoints, the others start, and all finish.
"$MNEMO" suite "$tmp/suite.yaml" --jobs 2 --out "$tmp/long" --set train.steps=6 --quiet > "$tmp/long2.txt" 2>&1 ||
  { cat "$tmp/long2.txt"; fail "resuming the suite"; }
[ "$(grep -l "^resumed" "$tmp"/long/copy/*/log.txt | wc -l)" = 2 ] || fail "expected 2 resumed runs"
[ "$(ls "$tmp"/long/copy/*/summary.json | wc -l)" = 8 ] || fail "the resumed suite did not finish"

if "$MNEMO" suite "$tmp/suite.yaml" --jobs 0 --out "$tmp/z" > "$tmp/err.txt" 2>&1; then fail "--jobs 0 accepted"; fi
grep -q "jobs must be at least 1" "$tmp/err.txt" || fail "--jobs 0: $(cat "$tmp/err.txt")"
echo "suite: ok"
