#!/usr/bin/env bash
# Inference at the images' own size, measured (docs/deployment.md holds the figures):
#   sizes      predict on one synthetic pet of 1024^2, 4096^2 and 8192^2 pixels: whole image at its own size, 512-pixel
#              windows 341 apart, and the training square; peak host memory (GNU time's max RSS) and wall time
#   large      eval on synthetic pets of 1536 to 2048 pixels a side (4 in the validation split): square, shorter
#              side, own size, windows at the own size and at the training scale, TTA
#   reference  eval --resize shorter against torchvision's reference evaluation of the same weights
#              (tests/python/torchvision_eval_reference.py), on the run's own validation split
# Each row is one process; rows of a stage run one after another on an otherwise unchanged machine, so compare times
# within a stage only.
#   bench/inference.sh PETSEG_BIN CHECKPOINT WORK_DIR [STAGES (default: sizes,large,reference)]
# CHECKPOINT: a run's best.pt (its model, image size and data set; run the script where the run was started, as its
# --data is kept as it was named); PETSEG_PYTHON: the reference interpreter (default: scripts/pyenv.sh's).
set -euo pipefail
petseg=$(realpath "${1:?usage: bench/inference.sh PETSEG_BIN CHECKPOINT WORK_DIR [STAGES]}")
checkpoint=$(realpath "${2:?checkpoint}")
work=${3:?work dir}
stages=${4:-sizes,large,reference}
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PETSEG_PYTHON:-$("$root/scripts/pyenv.sh")}
mkdir -p "$work"
work=$(realpath "$work")

# One measured command: "| label | peak RSS MiB | seconds |" plus what the command printed last (eval's mIoU).
measure() {
  local label=$1
  shift
  local log="$work/$(tr -c 'a-zA-Z0-9' '_' <<<"$label").log"
  /usr/bin/time -f 'TIME %M %e' "$@" >"$log" 2>&1 || { echo "| $label | failed: see $log |"; return 0; }
  local rss secs miou
  read -r rss secs < <(grep '^TIME' "$log" | tail -1 | cut -d' ' -f2-)
  miou=$(grep -o 'mIoU [0-9.]* %' "$log" | tail -1 || true)
  printf '| %s | %.0f | %.1f | %s |\n' "$label" "$(awk -v kib="$rss" 'BEGIN { print kib / 1024 }')" "$secs" "${miou:-}"
}

# The checkpoint's run spec: data, model name, classes, image size, border.
checkpoint_spec() {
  "$python" -c "
import json, sys, torch
c = torch.load(sys.argv[1], weights_only=False)
s = json.loads(bytes(c['meta'].tolist()))['config']['spec']
print(s['data'] or '-', s['model'], s['num_classes'], s['image_size'], s['border'])" "$checkpoint"
}
checkpoint_image_size() { checkpoint_spec | cut -d' ' -f4; }

if [[ $stages == *sizes* ]]; then
  echo "| predict, one image | peak RSS (MiB) | wall (s) | |"
  echo "|---|---:|---:|---|"
  for side in 1024 4096 8192; do
    data="$work/size$side"
    [[ -d $data/images ]] || "$petseg" -q synth --out "$data" --count 1 --min-side "$side" --max-side "$side" --seed 1
    image=$(ls "$data"/images/*.jpg | head -1)
    measure "${side}² whole, own size" "$petseg" predict --checkpoint "$checkpoint" --out "$work/pred-whole-$side" \
      --resize none "$image"
    measure "${side}² slide 512/341" "$petseg" predict --checkpoint "$checkpoint" --out "$work/pred-slide-$side" \
      --mode slide --tile 512 --stride 341 "$image"
    measure "${side}² whole, training square" "$petseg" predict --checkpoint "$checkpoint" \
      --out "$work/pred-square-$side" "$image"
  done
fi

if [[ $stages == *large* ]]; then
  data="$work/large"
  [[ -d $data/images ]] || {
    "$petseg" -q synth --out "$data" --count 8 --min-side 1536 --max-side 2048 --seed 4
    "$petseg" -q prepare --data "$data" >/dev/null
  }
  size=$(checkpoint_image_size)
  echo "| eval, pets of 1536-2048 px, trained at $size | peak RSS (MiB) | wall (s) | |"
  echo "|---|---:|---:|---|"
  eval=("$petseg" eval --checkpoint "$checkpoint" --data "$data" --num-workers 2)
  measure "whole, the training square" "${eval[@]}"
  measure "whole, shorter side $size" "${eval[@]}" --resize shorter
  measure "whole, own size" "${eval[@]}" --resize none
  measure "slide 512/341, own size" "${eval[@]}" --mode slide --tile 512 --stride 341
  # Windows of the training crop on the image at twice the training scale: what training's random scales (the
  # shorter side at 0.5 to 2 times the crop) showed the model.
  measure "slide $size/$((size * 2 / 3)), shorter side $((2 * size))" "${eval[@]}" --mode slide --tile "$size" \
    --stride $((size * 2 / 3)) --resize shorter --image-size $((2 * size))
  measure "whole, the training square, TTA flip" "${eval[@]}" --tta flip
fi

if [[ $stages == *reference* ]]; then
  read -r data model classes size border < <(checkpoint_spec)
  [[ $data != - ]] || { echo "bench/inference.sh: $checkpoint names no data set (--data) to score" >&2; exit 1; }
  "$petseg" -q export --checkpoint "$checkpoint" --format state-dict --out "$work/weights.pth" --force
  "$petseg" eval --checkpoint "$checkpoint" --resize shorter --json "$work/petseg.json" >"$work/petseg-eval.log" 2>&1
  "$python" "$root/tests/python/torchvision_eval_reference.py" --data "$data" --weights "$work/weights.pth" \
    --model "$model" --num-classes "$classes" --base-size "$size" --border "$border" >"$work/torchvision.json"
  "$python" - "$work/petseg.json" "$work/torchvision.json" <<'EOF'
import json, sys
ours, ref = (json.load(open(p)) for p in sys.argv[1:])
cells = sum(abs(a - b) for ra, rb in zip(ours["confusion_matrix"], ref["confusion_matrix"]) for a, b in zip(ra, rb))
pixels = sum(map(sum, ref["confusion_matrix"]))
print(f"eval --resize shorter: petseg mIoU {100 * ours['miou']:.2f} %, torchvision's reference "
      f"{100 * ref['miou']:.2f} % ({ref['images']} images); per class IoU petseg "
      f"{', '.join(f'{100 * v:.2f}' for v in ours['iou'])}, reference {', '.join(f'{100 * v:.2f}' for v in ref['iou'])}; "
      f"{cells // 2} of {pixels} pixels in another cell of the confusion matrix")
EOF
fi
