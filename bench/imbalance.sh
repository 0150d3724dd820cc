#!/usr/bin/env bash
# Class imbalance on the dry run's data and settings (run.sh: a 240-sample synthetic pets set with its broken files,
# prepared; DeepLabV3-ResNet50 at 96x96, batch 8, 10 epochs, lr 0.02, 2 workers): plain cross-entropy against
# --class-weights auto and against --loss ce+dice, each with --seed 0, 1 and 2. Every run is reported, not the best:
# the last epoch's mIoU and border IoU, and the best mIoU of the run, read from its metrics.jsonl. mIoU is not a
# timing, so a loaded machine measures it as well as an idle one (it only takes longer: ~5-10 min a run on 2 cores).
#   bench/imbalance.sh [WORK_DIR]
# WORK_DIR (default: a temporary folder) keeps the data and the runs; finished runs found there are not run again.
# PETSEG_BIN: the petseg binary (default build/apps/petseg). Writes bench/results/imbalance.json and prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
petseg=${PETSEG_BIN:-build/apps/petseg}
work=${1:-$(mktemp -d)}
mkdir -p "$work"
epochs=10
# Where other work shares the cores, OpenMP threads that spin while they wait take the cores from the threads doing the
# work (the numbers are the same either way: the runs keep their thread count).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
"$petseg" -q synth --out "$work/data" --count 240 --junk >/dev/null
"$petseg" -q prepare --data "$work/data" >/dev/null
settings=(--data "$work/data" --backbone resnet50 --image-size 96 --batch-size 8 --epochs "$epochs" --lr 0.02
          --num_workers=2 --pin_memory --runs-dir "$work/runs")
declare -A variants=([ce]="" [auto]="--class-weights auto" [ce+dice]="--loss ce+dice")
order=(ce auto ce+dice)
for seed in 0 1 2; do
  for v in "${order[@]}"; do
    name="$v-seed$seed"
    run="$work/runs/$name"
    if [[ -f "$run/metrics.jsonl" && $(wc -l <"$run/metrics.jsonl") -eq $epochs ]]; then
      echo "== $name: done before"
      continue
    fi
    rm -rf "$run"
    echo "== $name: petseg train ${settings[*]} ${variants[$v]} --seed $seed --name $name"
    # shellcheck disable=SC2086  # the variant's options are words
    "$petseg" train "${settings[@]}" ${variants[$v]} --seed "$seed" --name "$name" >"$work/$name.log" 2>&1
    grep -E "^  mIoU|class weights" "$work/$name.log" | tail -2 || true
  done
done

python3 - "$work" "$epochs" "$(environment_json "$petseg" "$work/ce-seed0.log")" <<'PY'
import json, os, statistics, sys
work, epochs, environment = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
rows, table = [], {}
for variant in ["ce", "auto", "ce+dice"]:
    for seed in range(3):
        lines = [json.loads(l) for l in open(os.path.join(work, "runs", f"{variant}-seed{seed}", "metrics.jsonl"))]
        assert len(lines) == epochs, (variant, seed, len(lines))
        last = lines[-1]
        border = last["class_names"].index("border")
        best = max(lines, key=lambda l: l["miou"])
        rows.append({"variant": variant, "seed": seed, "miou": last["miou"], "border_iou": last["iou"][border],
                     "pet_iou": last["iou"][last["class_names"].index("pet")],
                     "best_miou": best["miou"], "best_epoch": best["epoch"],
                     "border_dice": last["dice"][border], "border_recall": last["recall"][border]})
        table.setdefault(variant, []).append(rows[-1])
print("| options | seed | mIoU % (epoch 10) | border IoU % | pet IoU % | border recall % | best mIoU % (epoch) |")
print("|---|---|---|---|---|---|---|")
names = {"ce": "cross-entropy (default)", "auto": "`--class-weights auto`", "ce+dice": "`--loss ce+dice`"}
for r in rows:
    print(f"| {names[r['variant']]} | {r['seed']} | {100 * r['miou']:.1f} | {100 * r['border_iou']:.1f} | "
          f"{100 * r['pet_iou']:.1f} | {100 * r['border_recall']:.1f} | {100 * r['best_miou']:.1f} ({r['best_epoch']}) |")
summary = {}
for variant, runs in table.items():
    mean = lambda k: statistics.mean(r[k] for r in runs)
    summary[variant] = {"miou": mean("miou"), "border_iou": mean("border_iou"), "best_miou": mean("best_miou")}
    print(f"| {names[variant]} | mean | {100 * summary[variant]['miou']:.1f} | "
          f"{100 * summary[variant]['border_iou']:.1f} | | | {100 * summary[variant]['best_miou']:.1f} |")
result = {"benchmark": "imbalance", "command": "bench/imbalance.sh", "environment": environment,
          "settings": "synth --count 240 --junk; prepare; train --backbone resnet50 --image-size 96 --batch-size 8 "
                      "--epochs 10 --lr 0.02 --num_workers=2 --pin_memory --seed S",
          "runs": rows, "mean": summary}
with open("bench/results/imbalance.json", "w") as f:
    json.dump(result, f, indent=1)
    f.write("\n")
PY
