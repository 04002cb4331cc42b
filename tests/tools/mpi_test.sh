#!/usr/bin/env bash
# Data-parallel training over Open MPI on one machine (mpirun -n 2 --oversubscribe, TCP over
# loopback), against one process with the same global batch:
#   * truncated (window 2), full and replay BPTT: the same loss at every step and the same
#     held-out loss within 2e-4 (relative), the same weights and whole-batch memories within
#     5e-4 + 1e-3 |w| after 24 AdamW steps. Why not equal: each process sums its rows'
#     gradients and the two halves are then added, where one process sums all rows in one
#     matmul: the same numbers added in another order, float32 (relative 1e-7 per sum). AdamW
#     divides by sqrt(v), so a gradient near zero keeps its rounding at full size in the update:
#     differences grow from 1e-7 to at most 7.9e-6 of a weight over these steps (measured); the
#     bounds leave room for longer runs (docs/DISTRIBUTED.md).
#   * resume with the same N is bit for bit (stop after 12 steps, resume to 24: every logged
#     number and every weight, moment and memory equal to the straight run's);
#   * refusals: resuming with another N, a batch N does not divide (naming file, line and key),
#     one process unable to read the data (naming the rank and the file), and a process that
#     hangs (SIGSTOP: the others stop after MNEMO_MPI_TIMEOUT) or dies (kill -9): never a hang.
#   * every other subcommand (sweep here) is refused under mpirun: it would run whole in each
#     process, into the same files.
# A mnemo built without MPI must refuse to train under mpirun (it would run N copies of the
# run); after checking that, the test reports SKIP (77), as it does where mpirun is missing.
# Usage: mpi_test.sh MNEMO WITH_MPI(0|1)
set -euo pipefail
MNEMO=$(realpath "$1")  # mpirun --wdir below changes the working folder
source "$(dirname "$0")/common.sh"
need_program mpirun
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# CI runs as root, and Open MPI refuses root unless told; set here only, not globally.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "${2:-0}" != 1 ]; then
  cat > "$tmp/solo.yaml" <<'YAML'
name: solo
data: {kind: synthetic, task: copy, copy_len: 2, segments: 2, segment_len: 4, batch_size: 2}
model: {arch: transformer, dim: 16, depth: 1, heads: 2}
train: {steps: 2}
YAML
  if mpirun --oversubscribe -n 2 "$MNEMO" train "$tmp/solo.yaml" --out "$tmp/solo" --quiet > "$tmp/solo.log" 2>&1; then
    fail "a mnemo without MPI trained under mpirun -n 2"
  fi
  grep -q "this mnemo was built without MPI, so under mpirun -n 2 it would run 2 separate copies" "$tmp/solo.log" ||
    { cat "$tmp/solo.log"; fail "no clear message for mpirun with a mnemo built without MPI"; }
  [ ! -e "$tmp/solo/checkpoints" ] || fail "the refused run wrote checkpoints"
  echo "ok: a mnemo built without MPI refuses to train under mpirun"
  echo "SKIP: mnemo was built without MPI (meson -Dmpi=enabled, libopenmpi-dev)"
  exit 77
fi
need_program python3
# Under ASan, LeakSanitizer reports strings that Open MPI's plugins strdup and never free
# (frames in modules already unloaded at MPI_Finalize, so a suppression by library name
# cannot match) and fails every rank's exit. Leaks are left to the single-process ASan tests;
# address and undefined-behaviour errors still fail this one.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
MPIRUN=(mpirun --oversubscribe --bind-to none --mca pml ob1 --mca btl self,tcp --mca btl_tcp_if_include lo
        --mca oob_tcp_if_include lo)
mpi2() { "${MPIRUN[@]}" -n 2 "$MNEMO" "$@"; }

# Compares the tensors of two safetensors files: exact, or within abs + rel |a|.
cat > "$tmp/compare.py" <<'PY'
import json, struct, sys
def read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    head = json.loads(b[8:8 + n]); data = b[8 + n:]
    out = {}
    for k, v in head.items():
        if k == '__metadata__': continue
        raw = data[v['data_offsets'][0]:v['data_offsets'][1]]
        fmt = {'F32': 'f', 'F64': 'd', 'I32': 'i', 'U8': 'B'}[v['dtype']]
        out[k] = (v['shape'], struct.unpack('<%d%s' % (len(raw) // struct.calcsize(fmt), fmt), raw))
    return out
a, b = read(sys.argv[1]), read(sys.argv[2])
abs_tol, rel_tol, prefix = float(sys.argv[3]), float(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else ''
names = [k for k in a if k.startswith(prefix)]
assert names and sorted(names) == sorted(k for k in b if k.startswith(prefix)), 'different tensors'
worst = (0.0, '')
for k in names:
    assert a[k][0] == b[k][0], '%s: shape %s against %s' % (k, a[k][0], b[k][0])
    for x, y in zip(a[k][1], b[k][1]):
        over = abs(x - y) - (abs_tol + rel_tol * abs(x))
        if over > 0: sys.exit('%s: %r against %r' % (k, x, y))
        worst = max(worst, (abs(x - y), k))
print('%d tensors, largest difference %.3g (%s)' % (len(names), worst[0], worst[1]))
PY
# train.jsonl / metrics.jsonl: the named field of every row, compared within a relative bound.
cat > "$tmp/curves.py" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
field, rel = sys.argv[3], float(sys.argv[4])
assert len(a) == len(b) and len(a) > 0, 'rows: %d against %d' % (len(a), len(b))
worst = 0.0
for x, y in zip(a, b):
    assert x['step'] == y['step']
    d = abs(x[field] - y[field]) / max(abs(x[field]), 1e-12)
    if d > rel: sys.exit('step %d: %s %r against %r' % (x['step'], field, x[field], y[field]))
    worst = max(worst, d)
print('%s: %d rows, largest relative difference %.3g' % (field, len(a), worst))
PY
untimed() { sed -E 's/,"(tokens_per_s|elapsed_s)":[^,}]*//g' "$1"; }

# A memory architecture on a masked task (only the answers count, unevenly over the rows, so
# each process must weight its rows by the whole batch's count), 3 segments of 8.
cat > "$tmp/base.yaml" <<'YAML'
name: dp
seed: 5
data: {kind: synthetic, task: copy, copy_len: 3, segments: 3, segment_len: 8, batch_size: 4}
model: {arch: rmt, dim: 32, depth: 2, heads: 2, rmt: {num_memory_tokens: 4, num_residual_streams: 1}}
train: {steps: 24, log_every: 1, eval_every: 12, checkpoint_every: 6, threads: 1, optimizer: {lr: 0.003}}
eval: {batches: 2}
YAML

for mode in "truncated --set train.window=2" "full" "replay"; do
  name=${mode%% *}
  sets=(--set "train.bptt=$name")
  [ "$name" = truncated ] && sets+=(--set train.window=2)
  "$MNEMO" train "$tmp/base.yaml" "${sets[@]}" --out "$tmp/one_$name" --quiet > /dev/null ||
    fail "$name: the one-process run failed"
  mpi2 train "$tmp/base.yaml" "${sets[@]}" --out "$tmp/two_$name" --quiet > "$tmp/two_$name.log" 2>&1 ||
    { cat "$tmp/two_$name.log"; fail "$name: the two-process run failed"; }
  python3 "$tmp/curves.py" "$tmp/one_$name/train.jsonl" "$tmp/two_$name/train.jsonl" loss 2e-4 ||
    fail "$name: the loss curves differ"
  python3 "$tmp/curves.py" "$tmp/one_$name/metrics.jsonl" "$tmp/two_$name/metrics.jsonl" val_loss 2e-4 ||
    fail "$name: the held-out losses differ"
  python3 "$tmp/compare.py" "$tmp/one_$name/checkpoints/last.safetensors" "$tmp/two_$name/checkpoints/last.safetensors" \
    5e-4 1e-3 || fail "$name: the weights, moments or memories differ"
  grep -q '"processes":2' "$tmp/two_$name/summary.json" || fail "$name: summary.json does not say 2 processes"
  [ ! -e "$tmp/one_$name/lock" ] || [ -e "$tmp/two_$name/lock" ] || fail "$name: rank 0 took no lock"
  echo "ok: $name, 2 processes = 1 process"
done

# Resume with the same N: bit for bit.
mpi2 train "$tmp/base.yaml" --set train.bptt=replay --out "$tmp/resumed" --stop-after 12 --quiet > /dev/null 2>&1 ||
  fail "the stopped run failed"
mpi2 train --resume "$tmp/resumed" --quiet > "$tmp/resume.log" 2>&1 || { cat "$tmp/resume.log"; fail "resume failed"; }
for f in train.jsonl metrics.jsonl; do
  cmp <(untimed "$tmp/two_replay/$f") <(untimed "$tmp/resumed/$f") || fail "resumed $f differs from the straight run's"
done
python3 "$tmp/compare.py" "$tmp/two_replay/checkpoints/last.safetensors" "$tmp/resumed/checkpoints/last.safetensors" 0 0 ||
  fail "the resumed run's weights differ from the straight run's"
echo "ok: resume with 2 processes is bit for bit"

# Resuming with another N is refused, naming both counts.
mpi2 train "$tmp/base.yaml" --out "$tmp/other_n" --stop-after 6 --quiet > /dev/null 2>&1 || fail "the 6-step run failed"
if "$MNEMO" train --resume "$tmp/other_n" --quiet > "$tmp/other_n.log" 2>&1; then fail "resumed with another N"; fi
grep -q "checkpointed by 2 processes and this is 1: resume it with mpirun -n 2" "$tmp/other_n.log" ||
  { cat "$tmp/other_n.log"; fail "no clear message for resuming with another N"; }
echo "ok: resuming with another N is refused"

# Commands other than train run in one process: refused under mpirun, before writing anything.
if mpi2 sweep "$tmp/base.yaml" --out "$tmp/swept" > "$tmp/swept.log" 2>&1; then fail "a sweep ran under mpirun"; fi
grep -q "\`mnemo sweep\` runs in one process, and under mpirun -n 2 each process would run all of it" "$tmp/swept.log" ||
  { cat "$tmp/swept.log"; fail "no clear message for mnemo sweep under mpirun"; }
[ ! -e "$tmp/swept" ] || fail "the refused sweep wrote $tmp/swept"
echo "ok: mnemo sweep is refused under mpirun"

# A batch that does not split: the file, line and key.
if mpi2 train "$tmp/base.yaml" --set data.batch_size=3 --out "$tmp/odd" --quiet > "$tmp/odd.log" 2>&1; then
  fail "a batch of 3 ran over 2 processes"
fi
grep -q -- "--set data.batch_size=3: data.batch_size: a batch of 3 streams does not split over 2 processes" "$tmp/odd.log" ||
  { cat "$tmp/odd.log"; fail "no located message for a batch N does not divide"; }
sed 's/batch_size: 4/batch_size: 5/' "$tmp/base.yaml" > "$tmp/five.yaml"
if mpi2 train "$tmp/five.yaml" --out "$tmp/five" --quiet > "$tmp/five.log" 2>&1; then fail "a batch of 5 ran"; fi
grep -q "five.yaml:3:[0-9]*: data.batch_size: a batch of 5 streams does not split over 2" "$tmp/five.log" ||
  { cat "$tmp/five.log"; fail "the message does not name file, line and key"; }
[ ! -e "$tmp/five/checkpoints" ] || fail "a refused run made a run folder"
echo "ok: a batch N does not divide is refused at its key"

# One process cannot read the data: each runs in its own folder, the text file is only in one.
mkdir -p "$tmp/has" "$tmp/lacks"
python3 -c "import random; random.seed(1); print(''.join(random.choice('abcdefgh \n') for _ in range(20000)))" \
  > "$tmp/has/corpus.txt"
cat > "$tmp/text.yaml" <<'YAML'
name: dp_text
data: {kind: text, path: corpus.txt, segments: 2, segment_len: 8, batch_size: 4, val_fraction: 0.1}
model: {arch: transformer_xl, dim: 16, depth: 1, heads: 2}
train: {steps: 4, threads: 1}
eval: {batches: 1}
YAML
if timeout 120 "${MPIRUN[@]}" -n 1 --wdir "$tmp/has" "$MNEMO" train "$tmp/text.yaml" --out "$tmp/text_run" --quiet : \
    -n 1 --wdir "$tmp/lacks" "$MNEMO" train "$tmp/text.yaml" --out "$tmp/text_run" --quiet > "$tmp/text.log" 2>&1; then
  fail "a run where rank 1 cannot read its data went on"
fi
grep -q "setting up the run failed on rank 1 of 2: .*corpus.txt" "$tmp/text.log" ||
  { cat "$tmp/text.log"; fail "no message naming the rank and the data file"; }
echo "ok: a process that cannot read the data stops every process"

# The pid of rank R under mpirun PID (Open MPI starts the ranks as its children).
rank_pid() {
  local p
  for p in $(pgrep -P "$1"); do
    tr '\0' '\n' < "/proc/$p/environ" 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}
# Starts a long two-process run, waits for its first steps, then does "$1" to rank 1; the run
# must stop within 60 s with an error (never hang) whose log matches "$2".
stop_one_rank() {
  local dir=$tmp/stopped_$3 pid r1 waited=0
  MNEMO_MPI_TIMEOUT=3 "${MPIRUN[@]}" -x MNEMO_MPI_TIMEOUT -n 2 "$MNEMO" train "$tmp/base.yaml" --set train.steps=100000 \
    --set train.checkpoint_every=0 --set train.eval_every=0 --out "$dir" --quiet > "$tmp/$3.log" 2>&1 &
  pid=$!
  until [ -s "$dir/train.jsonl" ]; do
    sleep 0.2; waited=$((waited + 1))
    [ $waited -lt 300 ] || { kill -9 "$pid"; fail "$3: the run did not start"; }
  done
  r1=$(rank_pid "$pid" 1)
  [ -n "$r1" ] || { kill -9 "$pid"; fail "$3: no rank 1 under mpirun"; }
  kill "-$1" "$r1"
  waited=0
  while kill -0 "$pid" 2> /dev/null; do
    sleep 0.5; waited=$((waited + 1))
    if [ $waited -gt 120 ]; then
      kill -CONT "$r1" 2> /dev/null || true; kill -9 "$pid" "$r1" 2> /dev/null || true
      fail "$3: the other process still waits 60 s after rank 1 was stopped"
    fi
  done
  kill -CONT "$r1" 2> /dev/null || true
  if wait "$pid"; then fail "$3: mpirun exited 0"; fi
  grep -q "$2" "$tmp/$3.log" || { cat "$tmp/$3.log"; fail "$3: no clear message"; }
  echo "ok: $3 stops the run ($(grep -m1 -o "$2.*" "$tmp/$3.log" | cut -c1-100))"
}
stop_one_rank STOP "got no answer from the other processes in 3 s" "a hanging rank"
stop_one_rank KILL "exited on signal 9" "a dying rank"
