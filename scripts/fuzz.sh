#!/usr/bin/env bash
# Builds petseg's libFuzzer targets (clang, AddressSanitizer + UndefinedBehaviorSanitizer) into build-fuzz/ and runs
# each on its seed corpus (fuzz/corpus/<target>/ plus fuzz/regressions/<target>/) for SECONDS (default 20).
# A crash, hang (> 10 s per input) or out-of-memory (> 2 GiB) fails the script and leaves the input in
# build-fuzz/artifacts/: fix the bug, then keep the input in fuzz/regressions/<target>/ (ctest replays it).
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: weights image checkpoint manifest archive
#   scripts/fuzz.sh --make-corpus            rewrite the seed corpora (needs build/ and the Python environment of scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

if [[ "${1:-}" == "--make-corpus" ]]; then
  "$(scripts/pyenv.sh)" fuzz/make_corpus.py
  PETSEG_WRITE_FUZZ_SEEDS=fuzz/corpus build/tests/test_fuzz_regressions --gtest_filter=FuzzSeeds.* >/dev/null
  tmp=$(mktemp -d)
  build/apps/petseg synth --out "$tmp/pets" --count 12 --junk >/dev/null 2>&1
  build/apps/petseg prepare --data "$tmp/pets" >/dev/null 2>&1
  mkdir -p fuzz/corpus/manifest && cp "$tmp/pets/petseg_manifest.json" fuzz/corpus/manifest/synth_junk.json
  rm -rf "$tmp"
  exit 0
fi

seconds=${1:-20}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(weights image checkpoint manifest archive)
build=${PETSEG_FUZZ_BUILD_DIR:-build-fuzz}
python=${PETSEG_PYTHON:-$(scripts/pyenv.sh)}
if [[ ! -f "$build/CMakeCache.txt" ]] || ! grep -qxF "PETSEG_PYTHON:FILEPATH=$python" "$build/CMakeCache.txt"; then
  cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPETSEG_FUZZ=ON \
    -DPETSEG_PYTHON="$python" \
    -DPETSEG_SANITIZE=address,undefined -DPETSEG_BUILD_TESTS=OFF -DPETSEG_BUILD_BENCH=OFF >/dev/null
fi
cmake --build "$build" --parallel "$(nproc)" --target "${targets[@]/#/fuzz_}"
mkdir -p "$build/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
status=0
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t"
  dirs=("$build/corpus/$t" "fuzz/corpus/$t")
  [[ -d "fuzz/regressions/$t" ]] && dirs+=("fuzz/regressions/$t")
  log="$build/fuzz_$t.log"
  if "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t-" "${dirs[@]}" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
    echo "fuzz $t: ${seconds} s, $runs inputs, coverage $cov edges, no crash"
  else
    echo "fuzz $t: FAILED (log $log):"
    grep -E "ERROR|SUMMARY|Test unit written|==[0-9]+==" "$log" | head -12
    status=1
  fi
done
exit $status
