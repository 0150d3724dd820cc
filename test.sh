#!/usr/bin/env bash
# Installs what petseg needs, builds every target (apps, tests, benchmarks) and runs the whole test suite.
#   ./test.sh               Release build in build/
#   ./test.sh --sanitize    the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer in
#                           build-sanitize/ (every report is fatal)
# Further arguments go to ctest (e.g. -L data, -R Checkpoint).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh
if [[ "${1:-}" == "--sanitize" ]]; then
  shift
  export PETSEG_BUILD_DIR=${PETSEG_BUILD_DIR:-build-sanitize}
  # libtorch's own allocations live until exit (caches, thread pools): leak checking would only report those.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:strict_init_order=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  ./scripts/build.sh -DPETSEG_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPETSEG_WERROR=ON
else
  ./scripts/build.sh -DPETSEG_WERROR=ON  # a new compiler warning fails the build
fi
cd "${PETSEG_BUILD_DIR:-build}"
ctest --output-on-failure --parallel "$(nproc)" "$@"
