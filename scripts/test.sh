#!/usr/bin/env bash
# Builds zerotrain and runs the whole test suite (single-process suites, then multi-rank ones
# under mpirun). Tests needing real data read ZT_DATA_DIR and skip when it is unset.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure
