#!/usr/bin/env bash
# Inference of every registered model on this machine: petseg's best against Python's best (torch.compile with and
# without Inductor's freezing included) and ONNX Runtime's, side by side in one `petseg bench model` run per model,
# batch 2 at 256x256 and 520x520, random weights (3 classes); bench/results/infer/<model>.json, then the table
# (bench/infer_table.py) on standard output and in bench/results/infer/table.md.
#   bench/infer_models.sh [MODEL ...]                       (default: every model of `petseg export --model`)
# Variants: the eager ones both sides run (fp32, bf16 autocast, channels_last + bf16 autocast, channels_last + bf16
# weights, TorchScript frozen for inference), petseg's BatchNorm-folded model (fp32; channels_last + bf16 weights) and
# its fused model, what eval and predict run on the CPU (fp32, channels_last, bf16 weights, both),
# Python's torch.compile (channels_last + bf16 autocast; with freezing in fp32 and in channels_last + bf16), and ONNX
# Runtime on petseg's ONNX export (fp32). Long: each torch.compile variant compiles for minutes on a small CPU.
# Environment: THREADS (--threads of petseg and of both references; default: the cores), RESULTS_DIR
# (bench/results/infer), PETSEG (build/apps/petseg), VARIANTS (the list above, to narrow it), CASES
# (infer:2:256,infer:2:520), TIMING (warm-up and repeats; default "--warmup 1 --repeats 3", the mobile models
# "--warmup 2 --repeats 9").
set -euo pipefail
cd "$(dirname "$0")/.."
petseg=${PETSEG:-build/apps/petseg}
threads=${THREADS:-$(nproc)}
dir=${RESULTS_DIR:-bench/results/infer}
default_variants=fp32,bf16,cl_bf16,cl_bf16w,torchscript,folded,folded_cl_bf16w,fused,fused_cl,fused_bf16w,fused_cl_bf16w,ort
default_variants+=,compile_cl_bf16,compile_freeze,compile_freeze_cl_bf16
variants=${VARIANTS:-$default_variants}
cases=${CASES:-infer:2:256,infer:2:520}
models=("$@")
if [[ ${#models[@]} -eq 0 ]]; then  # the registry's names, as --model lists them
  read -r -a models < <("$petseg" export --help | grep -o -- '--model TEXT:{[^}]*}' | sed 's/.*{\(.*\)}/\1/' | tr , ' ')
fi
mkdir -p "$dir"
for m in "${models[@]}"; do
  # The mobile models' steps take tenths of a second, where a small machine's noise is a few hundredths: more repeats.
  read -r -a timing <<<"${TIMING:---warmup 1 --repeats 3}"
  [[ -n ${TIMING:-} || $m != *mobilenet* ]] || timing=(--warmup 2 --repeats 9)
  echo "== bench model --model $m ${timing[*]}"
  "$petseg" --threads "$threads" bench model --model "$m" --cases "$cases" --variants "$variants" \
    "${timing[@]}" --json "$dir/$m.json"
done
"$(scripts/pyenv.sh)" bench/infer_table.py "$dir" | tee "$dir/table.md"
