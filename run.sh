#!/usr/bin/env bash
# The main job, from a fresh Debian bookworm machine: install what petseg needs, build it, and run the original
# project's dry run on the embedded default (a synthetic data set in the exact Oxford-IIIT Pet layout, broken
# files included): prepare, train, evaluate, report. About 6 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh
PETSEG_BUILD_TARGETS=petseg ./scripts/build.sh
petseg=build/apps/petseg
data=${PETSEG_DATA:-runs/data/synth-junk}
run=dryrun-$(date +%Y%m%d-%H%M%S)

echo "== 1. synthesize a data set in the Oxford-IIIT Pet layout (with the real set's kinds of broken files)"
"$petseg" synth --out "$data" --count 240 --junk
echo "== 2. prepare: check every sample, write the manifest (nothing is deleted)"
"$petseg" prepare --data "$data"
echo "== 3. the dry run: transfer-learning set-up, small enough for a 2-core CPU"
"$petseg" train --data "$data" --name "$run" --backbone resnet50 --image-size 96 --batch-size 8 --epochs 10 \
  --lr 0.02 --num_workers=2 --pin_memory --log-interval 5
echo "== 4. evaluate the best checkpoint, predict a few images"
"$petseg" eval --checkpoint "runs/$run/best.pt"
"$petseg" predict --checkpoint "runs/$run/best.pt" --input "$data/images/Abyssinian_1.jpg" --out "runs/$run/predict"
if command -v chromium >/dev/null; then scripts/screenshot_report.sh "runs/$run" >/dev/null; fi
echo "== report: $(realpath "runs/$run/report.html")"
