#!/usr/bin/env bash
# The `mnemo` command end to end on a tiny experiment: every subcommand's --help, train into
# a folder, a stop and --resume, eval on held-out data and on a token file with
# --dump-logits, generate, and the errors a user meets (file:line:column for a
# misspelt key, a refused overwrite) with exit code 1. Usage: cli_test.sh MNEMO
set -euo pipefail
MNEMO=$1
source "$(dirname "$0")/common.sh"
expect() { grep -q -- "$1" "$2" || { echo "--- $2:"; cat "$2"; fail "expected '$1' in $2"; }; }

for cmd in train eval generate import export sweep plot gradcheck bench; do
  "$MNEMO" "$cmd" --help > "$tmp/help.txt" || fail "mnemo $cmd --help exited non-zero"
  expect "Usage" "$tmp/help.txt"
done

cat > "$tmp/tiny.yaml" <<'YAML'
name: tiny
seed: 3
data: {kind: synthetic, task: copy, copy_len: 3, segments: 2, segment_len: 8, batch_size: 2}
model: {arch: transformer_xl, dim: 16, depth: 1, heads: 2, transformer_xl: {mem_len: 8}}
train: {steps: 6, log_every: 2, eval_every: 3, checkpoint_every: 3, threads: 1, optimizer: {lr: 0.01}}
eval: {batches: 1, generate_every: 3, generate_len: 8}
YAML

"$MNEMO" train "$tmp/tiny.yaml" --out "$tmp/run" --stop-after 3 > "$tmp/out.txt" 2>&1 || fail "train --stop-after"
expect "stopped at step 3" "$tmp/out.txt"
"$MNEMO" train --resume "$tmp/run" > "$tmp/out.txt" 2>&1 || fail "train --resume"
expect "resumed" "$tmp/out.txt"
expect "done:" "$tmp/out.txt"
for f in config.yaml metrics.jsonl train.jsonl log.txt samples.txt summary.json checkpoints/last.safetensors; do
  [ -s "$tmp/run/$f" ] || fail "run folder lacks $f"
done
[ "$(wc -l < "$tmp/run/metrics.jsonl")" -eq 2 ] || fail "metrics.jsonl should hold the evaluations at steps 3 and 6"

"$MNEMO" eval "$tmp/run" > "$tmp/out.txt" || fail "eval"
expect "bits/byte" "$tmp/out.txt"
printf 'abcdefghijklmnopqrstu' > "$tmp/tokens.txt"
"$MNEMO" eval "$tmp/run" --tokens "$tmp/tokens.txt" --dump-logits "$tmp/logits.safetensors" --segments \
  > "$tmp/out.txt" 2> "$tmp/err.txt" || fail "eval --tokens --dump-logits"
expect "segment 2: tokens \[16, 20)" "$tmp/out.txt"
expect "mean loss .* over 20 tokens" "$tmp/out.txt"
# The loss by position in the stream: segments of 8, then log-spaced; a table and a CSV
# next to the run (and a PNG where gnuplot is installed); stderr, not a terminal, gets plain
# progress lines, never a carriage return.
expect "^\[16, 20) *4 " "$tmp/out.txt"
expect "tokens/s; peak RSS" "$tmp/out.txt"
expect "^eval: 20/20 tok (100%)" "$tmp/err.txt"
! grep -q $'\r' "$tmp/err.txt" || fail "progress wrote a carriage return into a file"
[ "$(head -1 "$tmp/run/eval_tokens.csv")" = "begin,end,tokens,loss,bits_per_byte,accuracy" ] || fail "no position CSV"
[ "$(sed -n 4p "$tmp/run/eval_tokens.csv" | cut -d, -f1-3)" = "16,20,4" ] || fail "wrong last bucket in the CSV"
if command -v gnuplot > /dev/null; then [ -s "$tmp/run/eval_tokens.png" ] || fail "no position plot"; fi
"$MNEMO" eval "$tmp/run" --tokens "$tmp/tokens.txt" --quiet --csv "$tmp/pos.csv" > "$tmp/out.txt" 2> "$tmp/err.txt"
[ ! -s "$tmp/err.txt" ] || fail "--quiet still printed progress"
cmp -s "$tmp/pos.csv" "$tmp/run/eval_tokens.csv" || fail "--csv wrote another table"
[ -s "$tmp/logits.safetensors" ] || fail "no logits file"
! ls "$tmp" | grep -q '\.tmp\.' || fail "--dump-logits left a temporary file"
"$MNEMO" generate "$tmp/run" --prompt "abc" --length 10 --seed 1 > "$tmp/gen1.txt" || fail "generate"
"$MNEMO" generate "$tmp/run" --prompt "abc" --length 10 --seed 1 > "$tmp/gen2.txt"
cmp -s "$tmp/gen1.txt" "$tmp/gen2.txt" || fail "generation with one seed differs between calls"
# A UTF-8 prompt is bytes >= 0x80: tokens 128..255, not negative ids.
"$MNEMO" generate "$tmp/run" --prompt "héllo ☃" --length 5 --seed 1 > "$tmp/gen3.txt" || fail "generate, UTF-8 prompt"
expect "^héllo ☃" "$tmp/gen3.txt"

# Errors: exit code 1, a message naming the file, line and column, and nothing overwritten.
printf 'name: bad\ntrain:\n  stpes: 3\n' > "$tmp/bad.yaml"
if "$MNEMO" train "$tmp/bad.yaml" --out "$tmp/bad" > "$tmp/err.txt" 2>&1; then fail "a misspelt key was accepted"; fi
expect "bad.yaml:3:3: train.stpes: unknown key (did you mean steps?)" "$tmp/err.txt"
before=$(md5sum < "$tmp/run/checkpoints/last.safetensors")
if "$MNEMO" train "$tmp/tiny.yaml" --out "$tmp/run" > "$tmp/err.txt" 2>&1; then fail "overwrote a run"; fi
expect "already holds a run" "$tmp/err.txt"
[ "$before" = "$(md5sum < "$tmp/run/checkpoints/last.safetensors")" ] || fail "the refused run changed the checkpoint"
echo "cli: all checks passed"
