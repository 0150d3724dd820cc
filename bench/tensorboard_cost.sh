#!/usr/bin/env bash
# What TensorBoard event files cost a training run: the same short run with and without them (--no-tensorboard),
# alternated REPEATS times in one go (this machine is noisy), logging at EVERY step (--log-interval 1: the most
# events a run can write); images/s of the measured epoch from metrics.jsonl, medians compared.
#   bench/tensorboard_cost.sh [REPEATS] [JSON]      (default 3, bench/results/tensorboard_cost.json)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
repeats=${1:-3}
json=${2:-bench/results/tensorboard_cost.json}
petseg=build/apps/petseg
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$petseg" -q synth --out "$work/data" --count 120 --seed 3
settings=(--data "$work/data" --backbone resnet50 --image-size 96 --batch-size 8 --epochs 2 --max-steps 12
          --eval-batches 1 --num-workers 2 --log-interval 1 --device cpu --runs-dir "$work/runs")
# images/s of epoch 2 (epoch 1 warms up)
rate() { grep '"epoch":2' "$work/runs/$1/metrics.jsonl" | sed 's/.*"images_per_s":\([0-9.e+-]*\).*/\1/'; }
with=() without=()
for i in $(seq 1 "$repeats"); do
  "$petseg" train "${settings[@]}" --name "with-$i" 2>"$work/with-$i.log"
  with+=("$(rate "with-$i")")
  "$petseg" train "${settings[@]}" --name "without-$i" --no-tensorboard 2>"$work/without-$i.log"
  without+=("$(rate "without-$i")")
  echo "run $i: with event files ${with[-1]} images/s, without ${without[-1]} images/s"
done
[[ -n "$(ls "$work/runs/with-1/tb")" && ! -e "$work/runs/without-1/tb" ]] || { echo "event files not as asked" >&2; exit 1; }
m_with=$(median "${with[@]}")
m_without=$(median "${without[@]}")
ratio=$(awk -v a="$m_with" -v b="$m_without" 'BEGIN {printf "%.3f", a / b}')
mkdir -p "$(dirname "$json")"
cat >"$json" <<JSON
{
 "benchmark": "tensorboard_cost",
 "command": "bench/tensorboard_cost.sh $repeats",
 "settings": "$(echo "${settings[@]}" | sed "s|$work|TMP|g")",
 "images_per_s_with_event_files": [$(IFS=,; echo "${with[*]}")],
 "images_per_s_without": [$(IFS=,; echo "${without[*]}")],
 "median_with": $m_with,
 "median_without": $m_without,
 "ratio_with_over_without": $ratio,
 "environment": $(environment_json "$petseg" "$work/with-1.log")
}
JSON
echo "median images/s: with event files $m_with, without $m_without: ratio $ratio (1.0: no cost); $json"
