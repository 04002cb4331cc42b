#!/usr/bin/env bash
# Resume after `kill -9`: a run killed at a random moment (between steps, inside a step or
# inside a checkpoint write) and resumed must end exactly where the same run left alone ends:
# the same training losses at every logged step, the same evaluations and the same weights
# (the same held-out loss to all printed digits). Tried three times at random kill points:
# once the run has logged a random number of steps, plus a random few milliseconds. Counting
# steps, not time, keeps the kill inside the run whether the machine is busy or idle.
# Usage: kill_resume_test.sh MNEMO
set -euo pipefail
MNEMO=$1
source "$(dirname "$0")/common.sh"
export OMP_NUM_THREADS=1

cat > "$tmp/run.yaml" <<'YAML'
name: killed
seed: 11
data: {kind: synthetic, task: copy, copy_len: 3, segments: 2, segment_len: 8, batch_size: 4}
model: {arch: transformer_xl, dim: 32, depth: 2, heads: 2, transformer_xl: {dropout: 0.1}}
train: {steps: 120, log_every: 1, eval_every: 40, checkpoint_every: 3, threads: 1, bptt: replay,
        memory_dropout: {'mem.*': 0.2}, optimizer: {lr: 0.003}}
eval: {batches: 2}
YAML
# The columns that depend on the clock go; everything else must match to the digit.
untimed() { sed -E 's/,"(tokens_per_s|elapsed_s)":[^,}]*//g' "$1"; }

"$MNEMO" train "$tmp/run.yaml" --out "$tmp/straight" --quiet > /dev/null 2>&1 || fail "the uninterrupted run failed"
"$MNEMO" eval "$tmp/straight" > "$tmp/straight.eval" || fail "eval of the uninterrupted run"

# Lines in RUN/train.jsonl, 0 before it exists (grep -c prints 0 itself, and fails, on an empty file).
logged() { local n=0; [ -f "$1/train.jsonl" ] && n=$(grep -c . "$1/train.jsonl" || true); echo "$n"; }

killed_mid_run=0
for attempt in 1 2 3; do
  dir="$tmp/killed$attempt"
  after_steps=$(( 2 + RANDOM % 90 ))  # of 120: the run has at least 28 steps left
  extra_ms=$(( RANDOM % 4 ))
  "$MNEMO" train "$tmp/run.yaml" --out "$dir" --quiet > /dev/null 2>&1 &
  pid=$!
  deadline=$(( $(date +%s) + 120 ))
  while kill -0 "$pid" 2> /dev/null && [ "$(logged "$dir")" -lt "$after_steps" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "attempt $attempt: the run logged no step $after_steps in 120 s"
    sleep 0.002
  done
  sleep "0.00$extra_ms"
  kill -9 "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
  at="after $after_steps logged steps + $extra_ms ms"
  if [ -f "$dir/summary.json" ]; then
    echo "attempt $attempt: the run finished before the kill ($at)"
    continue
  fi
  if [ ! -f "$dir/checkpoints/last.safetensors" ]; then
    # killed before the first checkpoint: nothing to resume, start again the normal way
    echo "attempt $attempt: killed before the first checkpoint ($at)"
    rm -rf "$dir"
    "$MNEMO" train "$tmp/run.yaml" --out "$dir" --quiet > /dev/null 2>&1 || fail "restart after an early kill"
  else
    killed_mid_run=$((killed_mid_run + 1))
    echo "attempt $attempt: killed with $(logged "$dir") logged steps ($at); resuming"
    "$MNEMO" train --resume "$dir" --quiet > /dev/null 2>&1 || fail "resume after kill -9 (attempt $attempt)"
  fi
  "$MNEMO" eval "$dir" > "$tmp/killed.eval" || fail "eval of the resumed run"
  for f in train.jsonl metrics.jsonl; do
    diff <(untimed "$tmp/straight/$f") <(untimed "$dir/$f") > /dev/null \
      || fail "attempt $attempt: $f differs from the uninterrupted run"
  done
  diff <(sed "s|$tmp/straight|RUN|" "$tmp/straight.eval") <(sed "s|$dir|RUN|" "$tmp/killed.eval") > /dev/null \
    || fail "attempt $attempt: the resumed weights evaluate differently"
  ls "$dir/checkpoints" | grep -q tmp && fail "attempt $attempt: a temporary checkpoint file was left behind"
done
[ "$killed_mid_run" -gt 0 ] || fail "no attempt killed the run mid-way (each finished first or died before its first checkpoint)"
echo "kill_resume: $killed_mid_run of 3 runs killed mid-way resumed to the uninterrupted result"
