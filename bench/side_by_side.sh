#!/usr/bin/env bash
# mnemo's training step (f32 and bf16) against the PyTorch reference implementation of the same
# config, in the same run: for each config, ROUNDS rounds of three runs (mnemo f32, mnemo bf16,
# reference), the order rotated every round so that a drifting host loads all three alike.
# Prints each run's tokens/s (the median step of the run), the medians over the rounds, mnemo /
# reference for f32 and bf16, and the peak resident memory of each (largest over the rounds).
# On a CPU without avx512_bf16, where mnemo refuses bf16, the bf16 runs are left out (n/a).
#
# Usage: bench/side_by_side.sh MNEMO [ROUNDS] [STEPS] CONFIG...
#   MNEMO   the mnemo binary (build/tools/mnemo)
#   ROUNDS  rounds per config (default 3); STEPS: timed steps per run (default 3)
# Environment:
#   MNEMO_REFSRC  folder holding the extracted reference repositories (default /tmp/refsrc)
#   PYTHON        the python with torch (default /usr/bin/python3)
#   REF_WARMUP    the reference's untimed steps before the timed ones (default 2, as mnemo's)
#   SETS          space-separated KEY=VALUE overrides given to both sides (--set), e.g. for a
#                 quick check at tiny sizes
#   OMP_NUM_THREADS (default 2), OMP_WAIT_POLICY (default PASSIVE): both sides alike;
#                 OMP_WAIT_POLICY=default leaves it unset for both (libgomp spins a while, then
#                 sleeps: what a user gets; docs/BENCHMARKS.md measures both)
#   REF_OMP_WAIT_POLICY  the reference's own policy when it should differ (same values); each side
#                 at its best is mnemo with `default` and the reference with PASSIVE, whose
#                 OpenBLAS threads run beside its OpenMP threads and lose the cores to spinning ones
# The reference runs with OPENBLAS_CORETYPE unset (OpenBLAS picks its own kernels).
# Exit status 2 when python, torch, PyYAML, OpenBLAS or the sources are missing.
set -euo pipefail
if (($# < 2)); then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 1
fi
MNEMO=$1
shift
ROUNDS=3 STEPS=3
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then ROUNDS=$1; shift; fi
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then STEPS=$1; shift; fi
(($# > 0)) || { echo "side_by_side.sh: no config given" >&2; exit 1; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
POLICY=$OMP_WAIT_POLICY
[[ $POLICY == default ]] && unset OMP_WAIT_POLICY
export MNEMO_REFSRC=${MNEMO_REFSRC:-/tmp/refsrc}
PYTHON=${PYTHON:-/usr/bin/python3}
HERE=$(cd "$(dirname "$0")" && pwd)
[[ -x $MNEMO ]] || { echo "side_by_side.sh: $MNEMO is not an executable mnemo binary" >&2; exit 1; }

# Everything the reference side needs, all of it reported at once.
missing=()
if ! command -v "$PYTHON" >/dev/null; then
  missing+=("python: $PYTHON not found (set PYTHON)")
else
  "$PYTHON" -c 'import torch' 2>/dev/null || missing+=("torch: apt-get install python3-torch (for $PYTHON)")
  "$PYTHON" -c 'import yaml' 2>/dev/null || missing+=("PyYAML: apt-get install python3-yaml")
  "$PYTHON" -c 'import packaging' 2>/dev/null || missing+=("packaging (BRT and RMT import it): apt-get install python3-packaging")
fi
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
[[ $blas == *openblas-pthread* ]] ||
  missing+=("OpenBLAS: libblas.so.3 is ${blas:-absent}, not OpenBLAS's pthread build: apt-get install libopenblas0-pthread")
for pkg in einops beartype hyper_connections block_recurrent_transformer_pytorch \
  recurrent_memory_transformer_pytorch compressive_transformer_pytorch memory_transformer_xl; do
  found=$(find "$MNEMO_REFSRC" -mindepth 2 -maxdepth 2 -type d -name "$pkg" 2>/dev/null | head -1 || true)
  [[ -n $found ]] || missing+=("sources: no $pkg/ under $MNEMO_REFSRC/*/ (docs/BENCHMARKS.md, \"Side by side\", says how to extract them)")
done
if ((${#missing[@]})); then
  echo "side_by_side.sh: the reference side cannot run:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 2
fi

sets=()
for s in ${SETS:-}; do sets+=(--set "$s"); done
ref_env=(env -u OPENBLAS_CORETYPE)
REF_POLICY=${REF_OMP_WAIT_POLICY:-$POLICY}
case $REF_POLICY in
  default) ref_env+=(-u OMP_WAIT_POLICY) ;;
  *) ref_env+=(OMP_WAIT_POLICY="$REF_POLICY") ;;
esac
log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() {  # run VARIANT CONFIG: prints "tokens/s rss_mib parameters" of one run
  local out
  case $1 in
    f32 | bf16) out=$("$MNEMO" bench train "$2" --steps "$STEPS" --quiet --model-only --precision "$1" "${sets[@]}" 2>"$log") ;;
    ref) out=$("${ref_env[@]}" "$PYTHON" "$HERE/reference_train.py" "$2" --steps "$STEPS" \
      --warmup "${REF_WARMUP:-2}" "${sets[@]}" 2>"$log") ;;
  esac || { echo "side_by_side.sh: the $1 run of $2 failed:" >&2; cat "$log" >&2; return 1; }
  awk '/^config/ {p = $(NF-1)} /^model step/ {t = $(NF-1)}
       /peak RSS/ {for (i = 1; i < NF; ++i) if ($i == "RSS") r = $(i+1)} END {print t, r, p}' <<<"$out"
}
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
largest() { sort -g | tail -1; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

variants=(f32 bf16 ref)
# mnemo refuses bf16 on a CPU without avx512_bf16 (an AVX2 laptop): time f32 and the reference.
if ! grep -qw avx512_bf16 /proc/cpuinfo; then
  variants=(f32 ref)
  echo "side_by_side: this CPU has no avx512_bf16, so mnemo's bf16 runs are left out (n/a below)"
fi
echo "side_by_side: $ROUNDS rounds x (${variants[*]}), $STEPS timed steps a run," \
  "OMP_NUM_THREADS=$OMP_NUM_THREADS OMP_WAIT_POLICY=$POLICY (reference: $REF_POLICY)${SETS:+, --set $SETS}; $(date -u '+%F %T') UTC, load $(load)"
rows=()
for cfg in "$@"; do
  declare -A tok=([f32]="" [bf16]="" [ref]="") rss=([f32]="" [bf16]="" [ref]="") params=()
  load_start=$(load)
  for ((r = 0; r < ROUNDS; r++)); do
    for ((i = 0; i < ${#variants[@]}; i++)); do
      v=${variants[$(((i + r) % ${#variants[@]}))]}
      res=$(run "$v" "$cfg")
      read -r t m p <<<"$res"
      params[$v]=$p
      [[ -n $t && -n ${m:-} ]] || { echo "side_by_side.sh: no tokens/s or peak RSS in the $v run of $cfg" >&2; exit 1; }
      tok[$v]+="$t " rss[$v]+="$m "
      echo "  $(basename "$cfg" .yaml) round $((r + 1)) $v: $t tokens/s, peak RSS $m MiB (load $(load))"
    done
  done
  declare -A med=([bf16]=n/a) mem=([bf16]=n/a) ratio=([bf16]=n/a)
  for v in "${variants[@]}"; do
    tok[$v]=${tok[$v]% }
    med[$v]=$(tr ' ' '\n' <<<"${tok[$v]}" | grep . | median | xargs printf '%.0f')
    mem[$v]=$(tr ' ' '\n' <<<"${rss[$v]}" | grep . | largest | xargs printf '%.0f')
  done
  for v in f32 bf16; do
    [[ ${med[$v]} == n/a ]] || ratio[$v]=$(bc -l <<<"${med[$v]} / ${med[ref]}" | xargs printf '%.2fx')
  done
  rows+=("$(printf '%-20s %8s %8s %8s %8s %8s %9s %9s %9s %12s   %-26s %-26s %-26s %s -> %s' \
    "$(basename "$cfg" .yaml)" "${med[f32]}" "${med[bf16]}" "${med[ref]}" "${ratio[f32]}" "${ratio[bf16]}" \
    "${mem[f32]}" "${mem[bf16]}" "${mem[ref]}" "$(awk -v a="${params[f32]}" -v b="${params[ref]}" \
      'BEGIN {printf "%.3fM/%.3fM", a / 1e6, b / 1e6}')" "${tok[f32]}" "${tok[bf16]:-n/a}" "${tok[ref]}" \
    "$load_start" "$(load)")")
  unset tok rss med mem ratio params
done

echo
echo "tokens/s: median over the rounds of each run's median step; RSS: peak resident MiB, largest run;"
echo "params: mnemo's / the reference's parameter count (the same sizes should give nearly the same)"
printf '%-20s %8s %8s %8s %8s %8s %9s %9s %9s %12s   %-26s %-26s %-26s %s\n' config f32 bf16 ref f32/ref bf16/ref \
  "RSS f32" "RSS bf16" "RSS ref" "params m/ref" "f32 runs" "bf16 runs" "ref runs" "load avg (start -> end)"
printf '%s\n' "${rows[@]}"
