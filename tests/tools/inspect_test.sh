#!/usr/bin/env bash
# `mnemo inspect` end to end: for a run folder of each of the six architectures (trained two
# steps) it writes the three CSVs and a PNG per memory kind the model reads, says "no memory"
# for the plain transformer, and reads --input raw bytes. It needs gnuplot for the PNGs:
# without it the test exits 77, which meson counts as SKIP. Usage: inspect_test.sh MNEMO
set -euo pipefail
MNEMO=$1
source "$(dirname "$0")/common.sh"
need_program gnuplot

cat > "$tmp/tiny.yaml" <<'YAML'
name: tiny
data: {kind: synthetic, task: copy, copy_len: 3, segments: 4, segment_len: 8, batch_size: 2}
model:
  arch: transformer_xl
  dim: 16
  depth: 2
  heads: 2
  rmt: {num_memory_tokens: 3}
  compressive: {mem_len: 8, cmem_len: 4, cmem_ratio: 2}
  memxl: {mem_len: 8, lmem_len: 2, num_mem_kv: 1}
  brt: {block_width: 4, num_state_vectors: 2}
train: {steps: 2, log_every: 1, eval_every: 2, checkpoint_every: 2, threads: 1, optimizer: {lr: 0.01}}
eval: {batches: 1}
YAML

# arch -> the mass_<region>.png files its memory must produce
declare -A expect=(
  [transformer]="segment"
  [transformer_xl]="segment xl_cache"
  [rmt]="segment memory xl_cache null"
  [brt]="segment state xl_cache"
  [compressive]="segment xl_cache compressed"
  [memxl]="segment xl_cache long_term persistent"
)
for arch in transformer transformer_xl rmt brt compressive memxl; do
  run="$tmp/run_$arch"
  "$MNEMO" train "$tmp/tiny.yaml" --set model.arch=$arch --out "$run" --quiet > /dev/null 2>&1 || fail "$arch: train"
  "$MNEMO" inspect "$run" > "$tmp/out.txt" 2>&1 || { cat "$tmp/out.txt" >&2; fail "$arch: inspect"; }
  dir="$run/inspect"
  for f in region_mass.csv key_mass.csv memory_norms.csv; do
    [ "$(wc -l < "$dir/$f")" -gt 1 ] || [ "$f" = memory_norms.csv -a "$arch" = transformer ] ||
      fail "$arch: $f has no rows"
  done
  head -1 "$dir/region_mass.csv" | grep -qx 'segment,call,name,head,region,mass' || fail "$arch: region_mass.csv header"
  [ "$(cut -d, -f1 "$dir/region_mass.csv" | sort -u | grep -c '^[0-9]')" -eq 4 ] || fail "$arch: not 4 segments"
  for region in ${expect[$arch]}; do
    [ "$(stat -c %s "$dir/mass_$region.png" 2>/dev/null || echo 0)" -gt 1000 ] || fail "$arch: mass_$region.png missing"
  done
  ls "$dir"/keys_*.png > /dev/null 2>&1 || fail "$arch: no keys_*.png"
  if [ "$arch" = transformer ]; then
    grep -q "no memory" "$tmp/out.txt" || fail "transformer: does not say it has no memory"
    [ "$(ls "$dir" | grep -c '^mass_')" -eq 1 ] || fail "transformer: a memory heatmap was drawn"
  else
    grep -q "memory read:" "$tmp/out.txt" || fail "$arch: does not name the memory it reads"
    ls "$dir"/norms_*.png > /dev/null 2>&1 || fail "$arch: no norms_*.png"
  fi
done

# --input: raw bytes, 5 segments of 8 (the last one short), into --out
head -c 37 "$0" > "$tmp/bytes.txt"
"$MNEMO" inspect "$tmp/run_transformer_xl" --input "$tmp/bytes.txt" --out "$tmp/bytes" > "$tmp/out.txt" 2>&1 ||
  { cat "$tmp/out.txt" >&2; fail "--input"; }
grep -q "5 segments inspected" "$tmp/out.txt" || fail "--input: not 5 segments: $(head -1 "$tmp/out.txt")"
[ -s "$tmp/bytes/mass_xl_cache.png" ] || fail "--input: no mass_xl_cache.png"
if "$MNEMO" inspect "$tmp/no_such_run" > "$tmp/err.txt" 2>&1; then fail "a missing run was inspected"; fi
echo "inspect: ok"
