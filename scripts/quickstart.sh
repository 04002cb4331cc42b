#!/usr/bin/env bash
# The main job on a fresh machine: install the Debian packages, build, then run the
# quickstart experiment: a copy task spread over 4 segments, trained once without memory
# (transformer) and once with it (transformer_xl), tabulated and plotted. A few minutes on
# 2 cores; running it again reuses finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build
ninja -C build tools/mnemo
./build/tools/mnemo sweep experiments/configs/quickstart.yaml "$@"
