#!/usr/bin/env bash
# Installs what petseg needs, builds every target (apps, tests, benchmarks) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh
./scripts/build.sh
cd "${PETSEG_BUILD_DIR:-build}"
ctest --output-on-failure --parallel "$(nproc)" "$@"
