#!/usr/bin/env bash
# The main job on a fresh machine: install the Debian packages, build, then run the
# quickstart experiment: a copy task spread over 4 segments, further back than
# Transformer-XL's cache reaches, trained by all six models at matched parameter counts
# (transformer, transformer_xl, rmt, brt, compressive, memxl), tabulated and plotted.
# A few minutes on 2 cores after the build; running it again reuses finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build
ninja -C build tools/mnemo
./build/tools/mnemo sweep experiments/configs/quickstart.yaml "$@"
