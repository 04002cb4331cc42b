#!/usr/bin/env bash
# run_target.sh EXE SEED_DIR: runs one libFuzzer target for $FUZZ_SECONDS (default 60) from
# its seed corpus and fails on any crash, sanitizer report, leak, input slower than 10 s or
# use of more than 2 GiB. New inputs go to a work corpus beside EXE (SEED_DIR is only read);
# a failing input is kept under artifacts/ there, to be added to SEED_DIR with its fix.
set -uo pipefail
exe=$1 seeds=$2
name=$(basename "$exe")
secs=${FUZZ_SECONDS:-60}
dir=$(dirname "$exe")
work=$dir/work/$name artifacts=$dir/artifacts/$name
mkdir -p "$work" "$artifacts"
log=$dir/$name.log
"$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$work" "$seeds" > "$log" 2>&1
rc=$?
# libFuzzer prints a status line per new input: keep the first and last ones and everything else.
grep -vE '^#[0-9]+\s+(NEW|REDUCE|pulse)' "$log" | tail -60
grep -E '^#[0-9]+' "$log" | tail -1
if [ "$rc" -ne 0 ]; then
  echo "$name: FAILED (libFuzzer exit $rc); inputs in $artifacts, full log in $log"
  exit 1
fi
echo "$name: $secs s, $(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+') executions, no findings"
