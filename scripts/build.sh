#!/usr/bin/env bash
# Configures (once) and builds petseg into build/. Extra arguments go to cmake's configure step.
# PETSEG_BUILD_TARGETS selects targets (default: all, which includes tests and benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${PETSEG_BUILD_DIR:-build}
jobs=${PETSEG_JOBS:-$(nproc)}
if [[ ! -f "$build_dir/CMakeCache.txt" || $# -gt 0 ]]; then
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
fi
cmake --build "$build_dir" --parallel "$jobs" ${PETSEG_BUILD_TARGETS:+--target $PETSEG_BUILD_TARGETS}
