#!/usr/bin/env bash
# Configures (once) and builds petseg into build/ against the libtorch of the pinned PyTorch wheel (scripts/setup.sh
# installs it; scripts/pyenv.sh says where). Extra arguments go to cmake's configure step.
# PETSEG_BUILD_TARGETS selects targets (default: all, which includes tests and benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${PETSEG_BUILD_DIR:-build}
jobs=${PETSEG_JOBS:-$(nproc)}
python=${PETSEG_PYTHON:-$(scripts/pyenv.sh)}
# Configure when there is no build yet, when asked (arguments), or when the build was made against another torch.
if [[ ! -f "$build_dir/CMakeCache.txt" || $# -gt 0 ]] ||
   ! grep -qxF -e "PETSEG_PYTHON:STRING=$python" -e "PETSEG_PYTHON:FILEPATH=$python" "$build_dir/CMakeCache.txt"; then
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DPETSEG_PYTHON="$python" "$@" >/dev/null
fi
cmake --build "$build_dir" --parallel "$jobs" ${PETSEG_BUILD_TARGETS:+--target $PETSEG_BUILD_TARGETS}
