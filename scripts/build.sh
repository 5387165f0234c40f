#!/usr/bin/env bash
# Configures and builds zerotrain into ${BUILD_DIR:-build} (CUDA backend when nvcc is found).
# Extra arguments go to cmake, e.g. scripts/build.sh -DZT_WITH_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
ninja -C "$build_dir"
