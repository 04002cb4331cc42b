#!/usr/bin/env bash
# run.sh SECONDS [BUILD_DIR]: builds the libFuzzer targets (clang, ASan+UBSan, in BUILD_DIR,
# build-fuzz by default) and runs each for SECONDS on its seed corpus, one after the other, as
# the meson suite `fuzz` (so build-fuzz/meson-logs/testlog.json counts one test per target).
# Exits 1 on any crash, sanitizer report, leak, hang or memory blow-up, and 77 (skip) when
# clang++ or its libFuzzer runtime is missing: the targets then did not run, they did not pass.
set -uo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH=${1:?usage: tests/fuzz/run.sh SECONDS [BUILD_DIR]}
BUILD=${2:-build-fuzz}

rm -f "$BUILD/meson-logs/testlog.json"  # a failed build must not leave an old result behind
if ! command -v clang++ > /dev/null || ! command -v clang > /dev/null; then
  echo "fuzz: SKIP: clang++ not found (apt-get install clang libclang-rt-14-dev libomp-14-dev, or MNEMO_SETUP_FUZZ=1 scripts/setup.sh)"
  exit 77
fi
probe=$(mktemp -d)
printf 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }\n' > "$probe/p.cpp"
if ! clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" > "$probe/log" 2>&1; then
  echo "fuzz: SKIP: clang++ cannot link a libFuzzer target (libclang-rt-14-dev missing?):"
  head -3 "$probe/log"
  rm -rf "$probe"
  exit 77
fi
rm -rf "$probe"

if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$BUILD" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dcuda=disabled || exit 1
fi
t0=$SECONDS
nice ninja -C "$BUILD" fuzz || exit 1
echo "fuzz: targets built in $((SECONDS - t0)) s"
FUZZ_SECONDS=$SECONDS_EACH meson test -C "$BUILD" --no-rebuild --suite fuzz --print-errorlogs --num-processes 1
rc=$?
grep -hE '^fuzz_[a-z]+: ' "$BUILD/meson-logs/testlog.txt"
exit $rc
