#!/usr/bin/env bash
# The main job on a fresh machine: install, build, then run it. Until the trainer lands
# the main job is the gradient check of every op in the registry.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build
ninja -C build
./build/tools/mnemo gradcheck
