#!/usr/bin/env bash
# torchvision's other segmentation models on this machine, side by side with Python:
#  1. `petseg bench model` per model: train step and inference at 256x256 and 520x520 (batch 2), petseg and
#     torchvision in Python case by case, eager fp32 and the candidates for each side's best configuration (bf16
#     autocast, channels_last + bf16, and Python's torch.compile of channels_last + bf16), the median of 3 steps (9
#     for the mobile models); bench/results/models/<model>.json.
#  2. Training throughput of the models at the dry run's settings (run.sh: 96x96, batch 8, 2 workers, lr 0.02):
#     `petseg train` for 2 epochs per model, alternated REPEATS times; images/s of epoch 2 (epoch 1 warms up) from
#     metrics.jsonl; bench/results/models_dry_run.json.
#   bench/models.sh [REPEATS] [MODEL ...]
#   (default 2; fcn_resnet50 fcn_resnet101 deeplabv3_mobilenet_v3_large lraspp_mobilenet_v3_large; the dry run
#   compares lraspp_mobilenet_v3_large with deeplabv3_resnet101, the original's model)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
repeats=${1:-2}
shift || true
models=("$@")
[[ ${#models[@]} -gt 0 ]] ||
  models=(fcn_resnet50 fcn_resnet101 deeplabv3_mobilenet_v3_large lraspp_mobilenet_v3_large)
petseg=build/apps/petseg
mkdir -p bench/results/models
for m in "${models[@]}"; do
  # The mobile models' steps take tenths of a second, where this machine's noise is a few hundredths: more repeats.
  timing=(--warmup 1 --repeats 3)
  [[ $m == *mobilenet* ]] && timing=(--warmup 2 --repeats 9)
  echo "== bench model --model $m ${timing[*]}"
  "$petseg" bench model --model "$m" --cases infer:2:256,train:2:256,infer:2:520,train:2:520 \
    --variants fp32,bf16,cl_bf16,compile_cl_bf16 "${timing[@]}" --json "bench/results/models/$m.json"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$petseg" -q synth --out "$work/data" --count 240 --seed 3
"$petseg" -q prepare --data "$work/data" >/dev/null
settings=(--data "$work/data" --image-size 96 --batch-size 8 --epochs 2 --lr 0.02 --num-workers 2 --log-interval 5
          --eval-batches 1 --device cpu --no-tensorboard --runs-dir "$work/runs")
rate() { grep '"epoch":2' "$work/runs/$1/metrics.jsonl" | sed 's/.*"images_per_s":\([0-9.e+-]*\).*/\1/'; }
dry=(lraspp_mobilenet_v3_large deeplabv3_resnet101)
declare -A rates
for i in $(seq 1 "$repeats"); do
  for m in "${dry[@]}"; do
    "$petseg" train "${settings[@]}" --model "$m" --name "$m-$i" 2>"$work/$m-$i.log"
    rates[$m]+="${rates[$m]:+,}$(rate "$m-$i")"
    echo "dry run $i: $m $(rate "$m-$i") images/s"
  done
done
fast=$(median ${rates[lraspp_mobilenet_v3_large]//,/ })
slow=$(median ${rates[deeplabv3_resnet101]//,/ })
ratio=$(awk -v a="$fast" -v b="$slow" 'BEGIN {printf "%.2f", a / b}')
cat >bench/results/models_dry_run.json <<JSON
{
 "benchmark": "models_dry_run",
 "command": "bench/models.sh $repeats",
 "settings": "$(echo "${settings[@]}" | sed "s|$work|TMP|g")",
 "images_per_s": {"lraspp_mobilenet_v3_large": [${rates[lraspp_mobilenet_v3_large]}],
                  "deeplabv3_resnet101": [${rates[deeplabv3_resnet101]}]},
 "median_lraspp_mobilenet_v3_large": $fast,
 "median_deeplabv3_resnet101": $slow,
 "ratio": $ratio,
 "environment": $(environment_json "$petseg" "$work/${dry[0]}-1.log")
}
JSON
echo "dry-run settings, median images/s: lraspp_mobilenet_v3_large $fast, deeplabv3_resnet101 $slow: ${ratio}x"
