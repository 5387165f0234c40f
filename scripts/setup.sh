#!/usr/bin/env bash
# Fresh machine to trained sample: installs dependencies, builds, runs zt-mlp.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
build/bin/zt-mlp --steps 500
