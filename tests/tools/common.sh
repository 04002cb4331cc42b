# Sourced by the end-to-end scripts in tests/tools: a scratch folder removed on exit, `fail`,
# and `need_program`, which exits 77 (meson's SKIP) when a tool the test needs is missing,
# so such a test is counted as skipped, never as passed.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
need_program() { command -v "$1" > /dev/null || { echo "SKIP: $1 is not installed"; exit 77; }; }
