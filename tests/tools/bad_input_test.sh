#!/usr/bin/env bash
# Bad inputs of every kind (YAML, data, checkpoints, run folders, command-line flags) fed to
# `mnemo`: each must end with the expected exit code (1, or 2 for a usage error) and a
# message naming what was wrong, never with an abort, a segfault, an uncaught exception or a
# sanitizer report. Every case runs; the failures are listed together at the end.
# Usage: bad_input_test.sh MNEMO (SHOW=1 prints every case's output). docs/RELIABILITY.md
# lists the cases and what each answers.
set -uo pipefail
MNEMO=$1
FIXTURES=$(cd "$(dirname "$0")/../fixtures" && pwd)
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1

cases=0
failures=()

# check NAME CODE SUBSTRING CMD...: CMD exits with CODE and prints SUBSTRING and exactly one
# `mnemo: error:` line (a message may continue on indented lines, as import's list does).
check() {
  local name=$1 code=$2 want=$3
  shift 3
  cases=$((cases + 1))
  local out="$tmp/out/$cases.txt"
  timeout 60 "$@" > "$out" 2>&1 < /dev/null
  local rc=$?
  local why=""
  [ "$rc" -eq "$code" ] || why+=" exit $rc (expected $code);"
  grep -qF -- "$want" "$out" || why+=" no '$want' in the output;"
  if grep -qE 'Aborted|Segmentation|terminate called|Sanitizer|runtime error:|core dumped' "$out"; then
    why+=" a crash report;"
  fi
  if [ "$(grep -c '^mnemo: error: ' "$out")" -ne 1 ]; then
    why+=" not exactly one 'mnemo: error:' line;"
  fi
  [ -n "${SHOW:-}" ] && { echo "== $name (exit $rc)"; cat "$out"; }
  if [ -n "$why" ]; then
    failures+=("$name:$why")
    echo "FAIL $name:$why"
    sed 's/^/    | /' "$out" | head -8
  fi
}

mkdir -p "$tmp/out" "$tmp/runs"
RUNS=$tmp/runs

# A tiny experiment that trains in well under a second, and variants of it.
tiny() {
  cat <<'YAML'
seed: 3
data: {kind: synthetic, task: copy, copy_len: 3, segments: 2, segment_len: 8, batch_size: 2}
model: {arch: transformer_xl, dim: 16, depth: 1, heads: 2, transformer_xl: {mem_len: 8}}
train: {steps: 2, log_every: 1, eval_every: 2, checkpoint_every: 2, threads: 1, optimizer: {lr: 0.01}}
eval: {batches: 1, generate_every: 0}
YAML
}
tiny > "$tmp/tiny.yaml"
# yaml NAME CONTENT: writes $tmp/NAME.yaml
yaml() { printf '%s\n' "$2" > "$tmp/$1.yaml"; }
# train_bad NAME SUBSTRING KEY=VALUE...: the tiny config with --set overrides must be refused.
train_set() {
  local name=$1 want=$2
  shift 2
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  check "$name" 1 "$want" "$MNEMO" train "$tmp/tiny.yaml" --out "$RUNS/$name" --quiet "${sets[@]}"
}
# train_file NAME SUBSTRING: $tmp/NAME.yaml must be refused.
train_file() { check "$1" 1 "$2" "$MNEMO" train "$tmp/$1.yaml" --out "$RUNS/$1" --quiet; }

# A finished run to evaluate, resume, corrupt and generate from.
"$MNEMO" train "$tmp/tiny.yaml" --out "$RUNS/good" --quiet > "$tmp/good.txt" 2>&1 || {
  cat "$tmp/good.txt"
  echo "FAIL: the tiny run itself does not train"
  exit 1
}
CKPT=$RUNS/good/checkpoints/last.safetensors

# ---- YAML ----------------------------------------------------------------------------------
yaml malformed 'name: [unclosed'
train_file malformed "malformed.yaml"
yaml tabs $'data:\n\tkind: text'
train_file tabs "tabs.yaml"
yaml unknown_top "$(tiny)"$'\nstpes: 3'
train_file unknown_top "stpes: unknown key"
yaml unknown_nested "$(tiny)"$'\nmisc: {dimm: 3}'
train_file unknown_nested "misc"
yaml replay_window_one "$(tiny | sed 's/threads: 1,/threads: 1, bptt: replay, window: 1,/')"
train_file replay_window_one "replay_window_one.yaml:4:103: train.window: bptt: replay with window: 1"
yaml segment_accum_stateful "$(tiny | sed -e 's/data: {kind: synthetic, task: copy, copy_len: 3,/data: {kind: text, path: corpus.txt,/' \
  -e 's/optimizer: {lr: 0.01}/grad_accum: 2, optimizer: {lr: 0.01, step_every: segment}/')"
train_file segment_accum_stateful "segment_accum_stateful.yaml:4:93: train.grad_accum: optimizer.step_every: segment with grad_accum > 1 needs"
train_set replay_window_one_set "train.window: bptt: replay with window: 1 carries no gradient" train.bptt=replay train.window=1
train_set unknown_model_key "model.dimm: unknown key" model.dimm=3
train_set wrong_type_int "model.dim" model.dim=abc
train_set wrong_type_list "train.steps" 'train.steps=[1, 2]'
train_set wrong_type_map "model.heads" 'model.heads={a: 1}'
yaml not_a_map $'- 1\n- 2'
train_file not_a_map "not_a_map.yaml"
yaml alias_self 'x: &a [*a]'
train_file alias_self "alias_self.yaml"
yaml alias_in_key "$(tiny)"$'\nname: &n [*n]'
train_file alias_in_key "a cycle"
printf '\x00\xff\xfe garbage \x01\x02' > "$tmp/binary.yaml"
train_file binary "binary.yaml"
mkdir -p "$tmp/dir.yaml"
check config_is_directory 1 "dir.yaml" "$MNEMO" train "$tmp/dir.yaml" --out "$RUNS/dir" --quiet
check config_missing 1 "nope.yaml" "$MNEMO" train "$tmp/nope.yaml" --out "$RUNS/nope" --quiet
mkdir -p "$tmp/basedir"
yaml base_directory $'base: basedir\nname: x'
train_file base_directory "basedir"
yaml base_missing $'base: missing_base.yaml\nname: x'
train_file base_missing "missing_base.yaml"
yaml cycle_a $'base: cycle_b.yaml'
yaml cycle_b $'base: cycle_a.yaml'
train_file cycle_a "base cycle"
yaml base_self $'base: base_self.yaml'
train_file base_self "base cycle"
yaml base_list $'base: [a, b]'
train_file base_list "base: expected a file name"
train_set lr_nan "train.optimizer.lr" train.optimizer.lr=.nan
train_set lr_inf "train.optimizer.lr" train.optimizer.lr=.inf
train_set clip_neg_inf "train.clip" train.clip=-.inf
train_set lr_negative "train.optimizer.lr" train.optimizer.lr=-0.1
train_set dim_huge "model.dim" model.dim=4611686018427387904
train_set dim_overflow "model.dim" model.dim=99999999999999999999999
train_set batch_huge "data.batch_size" data.batch_size=4611686018427387904
train_set seg_len_huge "data.segment_len" data.segment_len=4611686018427387904
train_set mem_len_huge "mem_len" model.transformer_xl.mem_len=4611686018427387904
# in range, yet far beyond any machine's memory: refused before anything is allocated
train_set model_too_big "needs at least" model.dim=65536 model.depth=4096 model.heads=1
train_set steps_negative "train.steps" train.steps=-5
train_set steps_zero "train.steps" train.steps=0
train_set dim_zero "model.dim" model.dim=0
train_set depth_negative "model.depth" model.depth=-1
train_set heads_zero "model.heads" model.heads=0
train_set heads_not_dividing "heads" model.heads=3
train_set seg_len_zero "data.segment_len" data.segment_len=0
train_set batch_zero "data.batch_size" data.batch_size=0
train_set name_dotdot "name" name=../..
train_set name_slash "name" name=a/b
train_set name_empty "name" 'name=""'
train_set kind_wrong "data.kind" data.kind=jpeg
train_set task_wrong "data.task" data.task=sort
train_set arch_wrong "model.arch: must be one of" model.arch=lstm
train_set optimizer_sgd "sgd" train.optimizer.type=sgd
train_set schedule_wrong "train.schedule.kind" train.schedule.kind=linear
train_set bptt_wrong "train.bptt" train.bptt=full_ish
train_set val_fraction_big "data.val_fraction" data.val_fraction=1.5
train_set set_no_equals "--set" train.steps
train_set set_empty_key "--set" =3
train_set set_empty_value "--set" train.steps=
train_set set_unknown_key "nosuch: unknown key" train.nosuch=1
train_set set_through_scalar "seed" seed.x=1
yaml deep_nesting "x: $(printf '[%.0s' $(seq 3000))"
train_file deep_nesting "deep_nesting.yaml:2:1: malformed YAML: nested deeper than"
train_set deep_nesting_set "nested deeper than" "seed=$(printf '[%.0s' $(seq 3000))"
# Bytes that are not UTF-8 (a sweep value here) would be written back differently into the
# run folder's config.yaml (found by tests/fuzz/fuzz_config).
yaml not_utf8 "$(tiny)"$'\nsweep: {model.arch: [transformer\xff]}'
train_file not_utf8 "not_utf8.yaml:6: not valid UTF-8 text"
train_set set_not_utf8 "not valid UTF-8 text" $'name=caf\xe9'
# A lone carriage return (or any control character) was kept in a string and written back
# differently (found by fuzz_config in CI); CRLF line ends stay fine.
yaml control_char "$(tiny)"$'\nsweep: {model.arch: [transformer\r\r]}'
train_file control_char "control_char.yaml:6:33: control character 0xd"
yaml crlf_file "$(tiny | sed 's/$/\r/')"$'\nname: ../x\r'
train_file crlf_file "crlf_file.yaml:6:7: name"
train_set set_control_char "control character 0x1b in the flag" $'name=a\x1bb'
yaml base_dev_zero 'base: /dev/zero'
train_file base_dev_zero "/dev/zero is larger than 16 MiB: not a config file"
yaml duplicate_key "$(tiny)"$'\nseed: 4'
train_file duplicate_key "seed"
check set_on_run_folder 1 "--set applies to experiment files" "$MNEMO" eval "$RUNS/good" --set seed=1
# A memory_dropout name is checked against the model's memories once it is built, but the
# error still points at the key.
yaml dropout_unknown "$(tiny | sed 's/^train: {/train: {memory_dropout: {nosuch: 0.5}, /')"
train_file dropout_unknown "dropout_unknown.yaml:4:34: train.memory_dropout.nosuch: matches no memory of model.arch transformer_xl (it has: mem.0)"
train_set dropout_unknown_set "--set train.memory_dropout={mem.0: 0.1, xl: 0.5}: train.memory_dropout.xl: matches no memory" \
  'train.memory_dropout={mem.0: 0.1, xl: 0.5}'

# ---- data ----------------------------------------------------------------------------------
# A text experiment on a few kilobytes; text_set NAME SUBSTRING PATH [KEY=VALUE...] must be refused.
cat > "$tmp/text.yaml" <<'YAML'
data: {kind: text, path: unset, segments: 2, segment_len: 8, batch_size: 2, val_fraction: 0.2}
model: {arch: transformer_xl, dim: 16, depth: 1, heads: 2, transformer_xl: {mem_len: 8}}
train: {steps: 2, threads: 1}
eval: {batches: 1, generate_every: 0}
YAML
text_set() {
  local name=$1 want=$2 path=$3
  shift 3
  local sets=(--set "data.path=$path")
  for s in "$@"; do sets+=(--set "$s"); done
  check "$name" 1 "$want" "$MNEMO" train "$tmp/text.yaml" --out "$RUNS/$name" --quiet "${sets[@]}"
}
head -c 4000 "$MNEMO" | od -An -tx1 > "$tmp/corpus.txt"  # any few kilobytes of text
printf '' > "$tmp/empty.txt"
mkdir -p "$tmp/corpus_dir"
text_set data_missing "no_such_corpus.txt" "$tmp/no_such_corpus.txt"
text_set data_empty "is empty" "$tmp/empty.txt"
text_set data_directory "is a directory, not a data file" "$tmp/corpus_dir"
printf '\x1f\x8b\x08\x00garbage-garbage-garbage' > "$tmp/corrupt.gz"
text_set gzip_corrupt "not a valid gzip file" "$tmp/corrupt.gz"
gzip -c "$tmp/corpus.txt" > "$tmp/whole.gz"
head -c 200 "$tmp/whole.gz" > "$tmp/truncated.gz"
text_set gzip_truncated "not a valid gzip file" "$tmp/truncated.gz"
{ cat "$tmp/whole.gz"; printf 'trailing bytes that are not gzip'; } > "$tmp/trailing.gz"
text_set gzip_trailing "after the last gzip member" "$tmp/trailing.gz"
text_set valid_too_short "data.val_fraction" "$tmp/corpus.txt" data.val_fraction=0.0001
text_set valid_zero "data.val_fraction" "$tmp/corpus.txt" data.val_fraction=0
check text_no_path 1 "data.path" "$MNEMO" train "$tmp/text.yaml" --out "$RUNS/text_no_path" --set 'data.path=""'
text_set valid_short_for_batch "data.batch_size" "$tmp/corpus.txt" data.batch_size=200
train_set vocab_synthetic_marker "--set model.vocab=124: model.vocab: synthetic tasks use byte values up to 124" model.vocab=124
# Byte data needs every byte value in the vocabulary: refused at load, at the key.
text_set vocab_small_set "--set model.vocab=100: model.vocab: data.kind: text is read as bytes (tokens 0..255): must be >= 256, got 100" \
  "$tmp/corpus.txt" model.vocab=100
sed 's/heads: 2,/heads: 2, vocab: 255,/' "$tmp/text.yaml" > "$tmp/vocab_small.yaml"
check vocab_small 1 "vocab_small.yaml:2:" "$MNEMO" train "$tmp/vocab_small.yaml" --out "$RUNS/vocab_small" --quiet \
  --set "data.path=$tmp/corpus.txt"

# ---- checkpoints ---------------------------------------------------------------------------
# corrupt NAME: a copy of the good run whose checkpoint the caller then damages
corrupt() { cp -r "$RUNS/good" "$RUNS/$1"; echo "$RUNS/$1/checkpoints/last.safetensors"; }
f=$(corrupt ckpt_truncated); head -c 1000 "$CKPT" > "$f"
check ckpt_truncated 1 "truncated" "$MNEMO" eval "$RUNS/ckpt_truncated"
f=$(corrupt ckpt_garbage); head -c 5000 /dev/urandom > "$f"
check ckpt_garbage 1 "last.safetensors" "$MNEMO" eval "$RUNS/ckpt_garbage"
f=$(corrupt ckpt_empty); : > "$f"
check ckpt_empty 1 "less than the 8-byte header length" "$MNEMO" eval "$RUNS/ckpt_empty"
f=$(corrupt ckpt_header_len); { printf '\xff\xff\xff\xff\xff\xff\xff\x7f'; tail -c +9 "$CKPT"; } > "$f"
check ckpt_header_length 1 "header length" "$MNEMO" eval "$RUNS/ckpt_header_len"
f=$(corrupt ckpt_header_json); { head -c 8 "$CKPT"; printf '{"a":'; tail -c +14 "$CKPT"; } > "$f"
check ckpt_header_json 1 "last.safetensors" "$MNEMO" eval "$RUNS/ckpt_header_json"
check ckpt_not_safetensors 1 "is not a safetensors file" "$MNEMO" eval "$RUNS/good" --weights "$tmp/tiny.yaml"
check ckpt_weights_missing 1 "nothing.safetensors" "$MNEMO" eval "$RUNS/good" --weights "$tmp/nothing.safetensors"
check ckpt_weights_directory 1 "checkpoints" "$MNEMO" eval "$RUNS/good" --weights "$RUNS/good/checkpoints"
check ckpt_other_model 1 "do not match the model" "$MNEMO" eval "$tmp/tiny.yaml" --set model.dim=32 --weights "$CKPT"
f=$(corrupt resume_garbage); head -c 3000 /dev/urandom > "$f"
check resume_garbage 1 "last.safetensors" "$MNEMO" train --resume "$RUNS/resume_garbage" --quiet
mkdir -p "$RUNS/no_ckpt"
tiny > "$RUNS/no_ckpt/config.yaml"
check resume_without_checkpoint 1 "no_ckpt" "$MNEMO" train --resume "$RUNS/no_ckpt" --quiet
check eval_without_checkpoint 1 "has no checkpoint yet" "$MNEMO" eval "$RUNS/no_ckpt"

# ---- run folders ---------------------------------------------------------------------------
check run_exists 1 "already holds a run" "$MNEMO" train "$tmp/tiny.yaml" --out "$RUNS/good" --quiet
echo "a file" > "$tmp/regular_file"
check out_under_file 1 "regular_file" "$MNEMO" train "$tmp/tiny.yaml" --out "$tmp/regular_file/run" --quiet
check out_in_proc 1 "/proc" "$MNEMO" train "$tmp/tiny.yaml" --out /proc/mnemo_run --quiet
check resume_missing_folder 1 "no_such_run" "$MNEMO" train --resume "$RUNS/no_such_run" --quiet
check resume_a_file 1 "regular_file" "$MNEMO" train --resume "$tmp/regular_file" --quiet
check config_and_resume 1 "not both" "$MNEMO" train "$tmp/tiny.yaml" --resume "$RUNS/good" --quiet
check neither_config_nor_resume 1 "not both" "$MNEMO" train --quiet
if [ "$(id -u)" -eq 0 ]; then
  echo "skipped out_read_only: running as root, which writes into read-only folders regardless"
else
  mkdir -p "$tmp/readonly" && chmod a-w "$tmp/readonly"
  check out_read_only 1 "readonly" "$MNEMO" train "$tmp/tiny.yaml" --out "$tmp/readonly/run" --quiet
fi

# ---- command-line flags --------------------------------------------------------------------
check no_subcommand 2 "subcommand" "$MNEMO"
check unknown_subcommand 2 "subcommand" "$MNEMO" frobnicate
check unknown_flag 2 "--no-such-flag" "$MNEMO" train "$tmp/tiny.yaml" --no-such-flag
check missing_positional 2 "target" "$MNEMO" eval
check import_missing_positionals 2 "required" "$MNEMO" import --arch memxl
check stop_after_zero 2 "--stop-after" "$MNEMO" train "$tmp/tiny.yaml" --out "$RUNS/s0" --stop-after 0
check stop_after_negative 2 "--stop-after" "$MNEMO" train "$tmp/tiny.yaml" --out "$RUNS/s1" --stop-after -3
check stop_after_text 2 "--stop-after" "$MNEMO" train "$tmp/tiny.yaml" --out "$RUNS/s2" --stop-after many
gen() { check "$1" 2 "$2" "$MNEMO" generate "$RUNS/good" "${@:3}"; }
gen top_k_negative "--top-k" --top-k -1
gen temperature_nan "--temperature" --temperature nan
gen temperature_inf "--temperature" --temperature inf
gen temperature_negative "--temperature" --temperature -0.5
gen length_zero "--length" --length 0
gen length_negative "--length" --length -4
gen length_huge "--length" --length 1000000000000
gen length_text "--length" --length ten
gen seed_negative "--seed" --seed -1
gen seed_text "--seed" --seed x
check eval_tokens_missing 1 "no_tokens.txt" "$MNEMO" eval "$RUNS/good" --tokens "$tmp/no_tokens.txt"
check eval_tokens_empty 1 "needs at least 2" "$MNEMO" eval "$RUNS/good" --tokens "$tmp/empty.txt"
check eval_tokens_directory 1 "is a directory" "$MNEMO" eval "$RUNS/good" --tokens "$tmp/corpus_dir"
check eval_dump_without_tokens 1 "--dump-logits needs --tokens" "$MNEMO" eval "$RUNS/good" --dump-logits "$tmp/d.st"
mkdir -p "$RUNS/bad_config"
echo 'model: {dim: [' > "$RUNS/bad_config/config.yaml"
check eval_run_bad_config 1 "config.yaml" "$MNEMO" eval "$RUNS/bad_config"
check generate_weights_garbage 1 "regular_file" "$MNEMO" generate "$RUNS/good" --weights "$tmp/regular_file"
mkdir -p "$tmp/not_a_run"
check generate_non_run_folder 1 "not_a_run" "$MNEMO" generate "$tmp/not_a_run"

# ---- import --------------------------------------------------------------------------------
# The memxl fixture (tests/fixtures/memxl_a.*): a reference state dict and its model.
cat > "$tmp/memxl.yaml" <<'YAML'
data: {kind: synthetic, task: copy, copy_len: 3, segments: 3, segment_len: 16, batch_size: 2}
model: {arch: memxl, dim: 32, depth: 2, heads: 2, memxl: {mem_len: 16, lmem_len: 8, reference_parity: true}}
train: {steps: 2, threads: 1}
YAML
REF=$FIXTURES/memxl_a.safetensors
check option_huge_memxl 1 "model.memxl.lmem_len: must be at most 16777216" \
  "$MNEMO" train "$tmp/memxl.yaml" --out "$RUNS/mx" --set model.memxl.lmem_len=4611686018427387904
check import_arch_mismatch 1 "--arch brt" "$MNEMO" import --arch brt "$tmp/memxl.yaml" "$REF" "$RUNS/imp1"
check import_arch_unknown 1 "lstm" "$MNEMO" import --arch lstm "$tmp/memxl.yaml" "$REF" "$RUNS/imp2"
check import_reference_missing 1 "none.safetensors" \
  "$MNEMO" import --arch memxl "$tmp/memxl.yaml" "$tmp/none.safetensors" "$RUNS/imp3"
check import_reference_garbage 1 "regular_file" \
  "$MNEMO" import --arch memxl "$tmp/memxl.yaml" "$tmp/regular_file" "$RUNS/imp4"
check import_shape_mismatch 1 "shape: pos_emb" \
  "$MNEMO" import --arch memxl "$tmp/memxl.yaml" "$REF" "$RUNS/imp5" --set model.memxl.mem_len=8
# Same-length edits of the header: pos_emb becomes I32, or its first value a NaN.
LC_ALL=C sed 's/"pos_emb":{"dtype":"F32"/"pos_emb":{"dtype":"I32"/' "$REF" > "$tmp/int.safetensors"
check import_integer_tensor 1 "pos_emb" "$MNEMO" import --arch memxl "$tmp/memxl.yaml" "$tmp/int.safetensors" "$RUNS/imp6"
cp "$REF" "$tmp/nan.safetensors"
header=$(od -An -tu8 -N8 "$REF" | tr -d ' ')
printf '\x00\x00\xc0\x7f' | dd of="$tmp/nan.safetensors" bs=1 seek=$((8 + header)) conv=notrunc status=none
check import_nan_tensor 1 "pos_emb" "$MNEMO" import --arch memxl "$tmp/memxl.yaml" "$tmp/nan.safetensors" "$RUNS/imp7"
check import_into_existing_run 1 "already holds a checkpoint" \
  "$MNEMO" import --arch memxl "$tmp/memxl.yaml" "$REF" "$RUNS/good"
check import_no_reference_impl 1 "no reference implementation" \
  "$MNEMO" import --arch transformer_xl "$tmp/tiny.yaml" "$REF" "$RUNS/imp8"

# ---- export --------------------------------------------------------------------------------
# (tests/experiments/test_interop.cpp checks what export writes; here, the command's errors.)
"$MNEMO" import --arch memxl "$tmp/memxl.yaml" "$REF" "$RUNS/mx_imported" > /dev/null
"$MNEMO" export --arch memxl "$RUNS/mx_imported" "$tmp/mx.safetensors" | grep -q "exported 87 tensors" ||
  failures+=("export_round_trip: mnemo export of the imported memxl fixture")
check export_arch_mismatch 1 "--arch rmt but the run's model.arch is memxl" \
  "$MNEMO" export --arch rmt "$RUNS/mx_imported" "$tmp/x.safetensors"
check export_parity_off 1 "model.memxl.reference_parity: false" \
  "$MNEMO" export --arch memxl "$RUNS/mx_imported" "$tmp/x.safetensors" --set model.memxl.reference_parity=false
check export_no_reference_impl 1 "no reference implementation to export to" \
  "$MNEMO" export --arch transformer_xl "$RUNS/good" "$tmp/x.safetensors"
check export_not_a_run 1 "not a run folder" "$MNEMO" export --arch memxl "$tmp/not_a_run" "$tmp/x.safetensors"

if ((${#failures[@]})); then
  echo "bad_input: ${#failures[@]} of $cases cases failed:"
  printf '  %s\n' "${failures[@]}"
  exit 1
fi
echo "bad_input: $cases cases passed"
