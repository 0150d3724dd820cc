#!/usr/bin/env bash
# A 2-rank run (petseg --nproc-per-node 2) stopped mid-way, then resumed to the end.
set -euo pipefail
petseg=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
export PETSEG_CACHE="$work/cache"
common=(--runs-dir "$work/runs" --name ddp --backbone resnet50 --image-size 48 --batch-size 2 --epochs 2
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
