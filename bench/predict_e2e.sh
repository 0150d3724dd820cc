#!/usr/bin/env bash
# `petseg predict` end to end against the same job in Python (bench/python/predict_bench.py: torchvision, PIL, the
# same weights): images/s of the whole commands, start-up, model loading, decode, resize, forward, upsample, argmax
# and the mask and overlay PNGs included, timed side by side, interleaved (the order alternates every repeat).
#  1. data: COUNT synthetic pets of 375-500 px a side (`petseg synth --min-side 375 --max-side 500`);
#  2. a small checkpoint of MODEL: a 1-epoch, 2-step `petseg train` at IMAGE_SIZE (predict's square resize size);
#  3. its weights for Python: `petseg export --checkpoint ... --format state-dict`;
#  4. one untimed warm-up of each command on 4 images, then REPEATS timed runs of each over the COUNT images;
#  5. bench/results/predict_e2e.json: each run's seconds, the medians, petseg's images/s over Python's (target >=
#     1.5x), how many mask pixels the two agree on, the settings, and the machine (bench/python/environment.py,
#     the keys of src/bench/environment.cpp).
#   bench/predict_e2e.sh [REPEATS] [IMAGE_SIZE]            (default 3 and 256: the training default)
# Environment: COUNT (200), MODEL (deeplabv3_resnet50), THREADS (intra-op threads of both sides; default: the cores),
# PETSEG_PREDICT_ARGS / PYTHON_PREDICT_ARGS (extra arguments of either command, e.g. PYTHON_PREDICT_ARGS="--precision
# bf16 --channels-last"), RESULTS (the JSON's path), PETSEG (build/apps/petseg), PYTHON (the pinned environment).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
size=${2:-256}
count=${COUNT:-200}
model=${MODEL:-deeplabv3_resnet50}
threads=${THREADS:-$(nproc)}
results=${RESULTS:-bench/results/predict_e2e.json}
petseg=${PETSEG:-build/apps/petseg}
python=${PYTHON:-$(scripts/pyenv.sh)}
read -r -a petseg_extra <<<"${PETSEG_PREDICT_ARGS:-}"
read -r -a python_extra <<<"${PYTHON_PREDICT_ARGS:-}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== data: $count synthetic pets, 375-500 px; a $model checkpoint at ${size} px (1 epoch, 2 steps)"
"$petseg" -q synth --out "$work/data" --count "$count" --min-side 375 --max-side 500 --seed 0
"$petseg" -q prepare --data "$work/data" >/dev/null
"$petseg" -q --threads "$threads" train --data "$work/data" --model "$model" --image-size "$size" --batch-size 2 \
  --epochs 1 --max-steps 2 --eval-batches 1 --num-workers 2 --device cpu --no-tensorboard --runs-dir "$work/runs" \
  --name e2e
"$petseg" -q export --checkpoint "$work/runs/e2e/last.pt" --format state-dict --out "$work/e2e.pth"
mkdir -p "$work/input" "$work/warm"
find "$work/data/images" -maxdepth 1 -name '*.jpg' | sort | head -n "$count" | xargs -I{} ln {} "$work/input/"
find "$work/input" -name '*.jpg' | sort | head -n 4 | xargs -I{} ln {} "$work/warm/"
images=$(find "$work/input" -name '*.jpg' | wc -l)

# run SIDE INPUT OUT: one whole command of SIDE (petseg | python).
run() {
  rm -rf "$3"
  if [[ $1 == petseg ]]; then
    "$petseg" -q --threads "$threads" predict --checkpoint "$work/runs/e2e/last.pt" --input "$2" --out "$3" \
      --device cpu "${petseg_extra[@]}"
  else
    "$python" bench/python/predict_bench.py --state-dict "$work/e2e.pth" --model "$model" --num-classes 3 \
      --image-size "$size" --input "$2" --out "$3" --device cpu --threads "$threads" "${python_extra[@]}" >/dev/null
  fi
}
# seconds SIDE: runs SIDE over every image and prints its wall seconds.
seconds() {
  local start=$EPOCHREALTIME
  run "$1" "$work/input" "$work/out-$1"
  awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}'
}

run petseg "$work/warm" "$work/warm-petseg"
run python "$work/warm" "$work/warm-python"
petseg_runs=()
python_runs=()
for i in $(seq 1 "$repeats"); do
  order=(petseg python)
  ((i % 2)) || order=(python petseg)
  for side in "${order[@]}"; do
    s=$(seconds "$side")
    if [[ $side == petseg ]]; then petseg_runs+=("$s"); else python_runs+=("$s"); fi
    echo "run $i: $side $s s ($images images)"
  done
done

for side in petseg python; do
  written=$(find "$work/out-$side" -name '*_mask.png' | wc -l)
  [[ $written -eq $images ]] || { echo "predict_e2e: $side wrote $written masks for $images images" >&2; exit 1; }
done
environment=$("$python" bench/python/environment.py --petseg "$petseg" --threads "$threads")
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain 2>/dev/null) ]] || commit+="-dirty"
mkdir -p "$(dirname "$results")"
"$python" - "$work" "$results" "$environment" "$images" "$size" "$model" "$threads" "$repeats" \
  "${petseg_runs[*]}" "${python_runs[*]}" "${PETSEG_PREDICT_ARGS:-}" "${PYTHON_PREDICT_ARGS:-}" "$commit" <<'EOF'
import json, os, statistics, sys
import numpy as np
from PIL import Image
work, results, environment, images, size, model, threads, repeats, petseg_runs, python_runs, petseg_extra, \
    python_extra, commit = sys.argv[1:]
images = int(images)
petseg_runs = [float(s) for s in petseg_runs.split()]
python_runs = [float(s) for s in python_runs.split()]
same = total = 0
for name in sorted(os.listdir(os.path.join(work, "out-petseg"))):
    if name.endswith("_mask.png"):
        a = np.asarray(Image.open(os.path.join(work, "out-petseg", name)))
        b = np.asarray(Image.open(os.path.join(work, "out-python", name)))
        same += int((a == b).sum())
        total += a.size
petseg_s, python_s = statistics.median(petseg_runs), statistics.median(python_runs)
ratio = python_s / petseg_s
doc = {
    "benchmark": "predict_e2e",
    "commit": commit,
    "command": f"bench/predict_e2e.sh {repeats} {size}",
    "what": "whole commands over the same images, interleaved: petseg predict against bench/python/predict_bench.py "
            "(torchvision + PIL, the state dict petseg exported from the same checkpoint); start-up, model loading, "
            "decode, square resize, forward (batch 1), upsample, argmax, mask and overlay PNGs included",
    "model": model, "image_size": int(size), "images": images, "image_sides": "375-500 px (petseg synth)",
    "threads": int(threads), "repeats": int(repeats),
    "petseg_command_extra": petseg_extra, "python_command_extra": python_extra,
    "petseg_seconds": petseg_runs, "python_seconds": python_runs,
    "petseg_median_seconds": petseg_s, "python_median_seconds": python_s,
    "petseg_images_per_s": images / petseg_s, "python_images_per_s": images / python_s,
    "petseg_over_python": ratio, "target": 1.5, "met": ratio >= 1.5,
    "mask_pixel_agreement": same / total if total else None,
    "environment": json.loads(environment),
}
with open(results, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
print(f"predict end to end, {images} images, {model} at {size} px, {threads} threads: petseg {images / petseg_s:.2f} "
      f"images/s, Python {images / python_s:.2f} images/s: {ratio:.2f}x (target >= 1.5x: "
      f"{'met' if ratio >= 1.5 else 'NOT met'}); masks agree on {100 * same / max(total, 1):.2f} % of pixels; {results}")
EOF
