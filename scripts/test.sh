#!/usr/bin/env bash
# Builds zerotrain and runs the whole test suite (single-process suites, then multi-rank ones
# under mpirun). Tests needing real data read ZT_DATA_DIR and skip when it is unset.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# Idle OpenMP threads sleep instead of spinning: the suite runs apps, tests and mpirun ranks
# side by side on few cores, where spinning threads steal the cores the work needs (20x slower).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure
