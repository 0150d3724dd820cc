#!/usr/bin/env bash
# A 2-rank run (petseg --nproc-per-node 2) stopped mid-way, then resumed to the end; another model and layout with
# --loss dice; --loss ce+dice with --class-weights auto on a set the ranks count between them.
set -euo pipefail
petseg=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
export PETSEG_CACHE="$work/cache"
common=(--runs-dir "$work/runs" --name ddp --model lraspp_mobilenet_v3_large --image-size 48 --batch-size 2 --epochs 2
        --max-steps 3 --eval-batches 1 --num-workers 1)
set +e
"$petseg" train "${common[@]}" --nproc-per-node 2 --stop-after 4
code=$?
set -e
[[ $code -eq 130 ]] || { echo "expected exit code 130 from the interrupted run, got $code"; exit 1; }
[[ -f "$work/runs/ddp/last.pt" ]] || { echo "no checkpoint after the interruption"; exit 1; }
"$petseg" train --resume "$work/runs/ddp" --nproc-per-node 2
lines=$(wc -l < "$work/runs/ddp/metrics.jsonl")
[[ $lines -eq 2 ]] || { echo "expected 2 epochs in metrics.jsonl, got $lines"; exit 1; }
grep -q '"ranks":2' "$work/runs/ddp/metrics.jsonl" || { echo "metrics do not say 2 ranks"; exit 1; }
echo "distributed resume: OK"

# Another model and layout under DDP: a mobile DeepLabV3 with its aux head (at --aux-lr-mult's rate) on a Pascal VOC
# set, each rank reading its shard of VOC's train list, trained with Dice (its sums over each rank's batch).
"$petseg" synth --layout voc --out "$work/voc" --count 12 --min-side 48 --max-side 80
"$petseg" train --data "$work/voc" --model deeplabv3_mobilenet_v3_large --aux-loss --runs-dir "$work/runs" \
  --name voc --image-size 64 --batch-size 2 --epochs 1 --max-steps 2 --eval-batches 1 --num-workers 1 \
  --nproc-per-node 2 --loss dice
grep -q '"loss": "dice"' "$work/runs/voc/config.json" || { echo "config.json does not hold --loss dice"; exit 1; }
grep -q '"ranks":2' "$work/runs/voc/metrics.jsonl" || { echo "the VOC run does not say 2 ranks"; exit 1; }
grep -q '"tvmonitor"' "$work/runs/voc/metrics.jsonl" || { echo "the VOC run does not name VOC's classes"; exit 1; }
grep -q '"model": "deeplabv3_mobilenet_v3_large"' "$work/runs/voc/config.json" &&
  grep -q '"backbone": "mobilenet_v3_large"' "$work/runs/voc/config.json" ||
  { echo "config.json does not hold the model"; exit 1; }
echo "distributed VOC run with another model: OK"

# --loss ce+dice with --class-weights auto on a set without a manifest: each rank counts a share of the training
# masks and the shares are summed through the communicator, to the weights one process counts alone; the counts go
# into the run folder, nothing into the data folder.
"$petseg" synth --out "$work/pets" --count 16 --min-side 48 --max-side 80
losses=(--data "$work/pets" --model lraspp_mobilenet_v3_large --runs-dir "$work/runs" --image-size 48 --batch-size 2
        --epochs 1 --eval-batches 1 --num-workers 1 --loss ce+dice --class-weights auto)
"$petseg" train "${losses[@]}" --max-steps 2 --name losses-ddp --nproc-per-node 2
"$petseg" train "${losses[@]}" --max-steps 1 --name losses-one
weights() { python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(j["source"], j["weights"])' "$1"; }
ddp=$(weights "$work/runs/losses-ddp/class_weights.json")
one=$(weights "$work/runs/losses-one/class_weights.json")
[[ $ddp == "$one" && $ddp == counted* ]] || { echo "2 ranks counted \"$ddp\", one process \"$one\""; exit 1; }
grep -q '"ranks":2' "$work/runs/losses-ddp/metrics.jsonl" || { echo "the losses run does not say 2 ranks"; exit 1; }
[[ ! -e "$work/pets/petseg_manifest.json" ]] || { echo "the run wrote into the data folder"; exit 1; }
echo "distributed losses: OK ($ddp)"
