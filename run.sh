#!/usr/bin/env bash
# The main job, from a fresh Debian bookworm machine: install what petseg needs, build it, and run it on the
# embedded default (a synthetic data set in the exact Oxford-IIIT Pet layout, broken files included).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh
PETSEG_BUILD_TARGETS=petseg ./scripts/build.sh
petseg=build/apps/petseg
data=${PETSEG_DATA:-runs/data/synth-junk}

echo "== 1. synthesize a data set in the Oxford-IIIT Pet layout (with the real set's kinds of broken files)"
"$petseg" synth --out "$data" --count 240 --junk
echo "== 2. prepare: check every sample, write the manifest (nothing is deleted)"
"$petseg" prepare --data "$data"
echo "== 3. one pass of the training data loader (8 workers, as the original's best setting)"
"$petseg" loader --data "$data" --num_workers=8 --pin_memory --epochs 2
echo "== 4. loader throughput per worker count, against the Python way (torch DataLoader + PIL)"
"$petseg" bench data --data "$data" --split all --workers 0,2,8 --json runs/bench/data.json
