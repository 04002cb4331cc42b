#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite, then prints `N passed, N failed` from
# meson's testlog.json. With --with-sanitizers it also runs the suite in an ASan+UBSan build
# (build-asan) and the closing line counts both. The `slow` suite (long training runs such as
# the quickstart's accuracy) runs only with --slow. With --fuzz SECONDS it also builds the
# libFuzzer targets (tests/fuzz/run.sh, clang, ASan+UBSan) and runs each for SECONDS: one test
# per target in the closing line, counted as skipped when clang is missing.
# Exit status: non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

count() {  # count RESULT-regex FILE
  grep -o "\"result\": \"[A-Z]*\"" "$2" 2>/dev/null | grep -cE "\"($1)\"" || true
}

run_suite() {  # run_suite BUILD_DIR TIMEOUT_MULTIPLIER [meson options...]
  local dir=$1 mult=$2; shift 2
  bash scripts/setup.sh "$dir" "$@" || return 1
  rm -f "$dir/meson-logs/testlog.json"
  local t0=$SECONDS
  ninja -C "$dir" || return 1
  echo "test.sh: $dir built in $((SECONDS - t0)) s"
  t0=$SECONDS
  meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 --timeout-multiplier "$mult" "${SUITES[@]}"
  local rc=$?
  echo "test.sh: $dir tests ran in $((SECONDS - t0)) s"
  return $rc
}

SANITIZERS=0
FUZZ=0
SUITES=(--no-suite slow)
usage="usage: scripts/test.sh [--with-sanitizers] [--slow] [--fuzz SECONDS]"
while [ $# -gt 0 ]; do
  case "$1" in
    --with-sanitizers) SANITIZERS=1 ;;
    --slow) SUITES=() ;;
    --fuzz)
      FUZZ=${2:-}
      [[ "$FUZZ" =~ ^[1-9][0-9]*$ ]] || { echo "$usage" >&2; exit 2; }
      export MNEMO_SETUP_FUZZ=1  # setup.sh then installs clang too
      shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done

rc=0
logs=()
run_suite build 1 || rc=1
logs+=(build/meson-logs/testlog.json)
if [ "$SANITIZERS" = 1 ]; then
  # ASan+UBSan runs the same code 3-5x slower: the whole-model gradient checks need the time.
  run_suite build-asan 3 -Db_sanitize=address,undefined -Db_lundef=false -Dcuda=disabled || rc=1
  logs+=(build-asan/meson-logs/testlog.json)
fi

passed=0; failed=0; skipped=0
if [ "$FUZZ" -gt 0 ]; then
  t0=$SECONDS
  bash tests/fuzz/run.sh "$FUZZ"
  frc=$?
  echo "test.sh: fuzzing took $((SECONDS - t0)) s"
  if [ "$frc" -eq 77 ]; then  # no clang: every target counts as skipped, never as passed
    skipped=$((skipped + $(ls tests/fuzz/fuzz_*.cpp | wc -l)))
  else
    [ "$frc" -eq 0 ] || rc=1
    logs+=(build-fuzz/meson-logs/testlog.json)
    [ -f build-fuzz/meson-logs/testlog.json ] || failed=$((failed + 1))  # the fuzz build failed
  fi
fi
for f in "${logs[@]}"; do
  passed=$((passed + $(count 'OK|EXPECTEDFAIL' "$f")))
  failed=$((failed + $(count 'FAIL|UNEXPECTEDPASS|TIMEOUT|ERROR|INTERRUPT' "$f")))
  skipped=$((skipped + $(count 'SKIP' "$f")))
done
[ -f "${logs[0]}" ] || failed=$((failed + 1))  # no log at all: the build failed
[ "$failed" -eq 0 ] || rc=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $rc
