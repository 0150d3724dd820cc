#!/usr/bin/env bash
# petseg export end to end: ONNX from a registered model and from a trained run's checkpoint (its classes and image size
# in the metadata, run by onnxruntime where the reference Python has it), an existing --out refused for every format
# unless --force, and the options that do not go together refused with a message that names them.
#   tests/cli/export.sh PETSEG PYTHON WORK
set -euo pipefail
petseg=$1
python=$2
work=$3
rm -rf "$work"
mkdir -p "$work"
export PETSEG_CACHE="$work/cache"
fail() { echo "FAILED: $*"; exit 1; }
# expect_error "MESSAGE" ARGS...: petseg ARGS exits non-zero and says MESSAGE.
expect_error() {
  local message=$1
  shift
  local out
  if out=$("$petseg" "$@" 2>&1); then fail "petseg $* succeeded"; fi
  [[ $out == *"$message"* ]] || fail "petseg $*: expected \"$message\", got: $out"
}

lraspp=(--model lraspp_mobilenet_v3_large --num-classes 3)
"$petseg" -q export "${lraspp[@]}" --format onnx --out "$work/m.onnx"
[[ -s $work/m.onnx ]] || fail "no ONNX file"
expect_error "m.onnx exists; refusing to overwrite it (--force does)" export "${lraspp[@]}" --format onnx \
  --out "$work/m.onnx"
expect_error "m.onnx exists; refusing to overwrite it (--force does)" export "${lraspp[@]}" --format torchscript \
  --out "$work/m.onnx"
expect_error "m.onnx exists; refusing to overwrite it (--force does)" export "${lraspp[@]}" --format state-dict \
  --out "$work/m.onnx"
"$petseg" -q export "${lraspp[@]}" --format onnx --out "$work/m.onnx" --force --static 1,64,64 --fp16
expect_error "--opset 99: this build writes ONNX opsets 13 to" export "${lraspp[@]}" --format onnx --opset 99 \
  --out "$work/x.onnx"
expect_error "--fp16 is for --format onnx" export "${lraspp[@]}" --fp16 --out "$work/x.pt"
expect_error "--optimize is for --format torchscript" export "${lraspp[@]}" --format onnx --optimize \
  --out "$work/x.onnx"
expect_error "--aux: the model has no aux head" export "${lraspp[@]}" --format onnx --aux --out "$work/x.onnx"
expect_error "cannot take it (No such file or directory)" export "${lraspp[@]}" --format onnx \
  --out "$work/missing/x.onnx"
"$petseg" -q export --model deeplabv3_mobilenet_v3_large --num-classes 3 --format onnx --aux --out "$work/aux.onnx"
echo "export from the registry: OK"

"$petseg" -q train "${lraspp[@]}" --runs-dir "$work/runs" --name t --image-size 64 --batch-size 2 --epochs 1 \
  --max-steps 2 --eval-batches 1 --num-workers 0 --no-tensorboard
[[ -f $work/runs/t/last.pt ]] || fail "the training run left no checkpoint"
expect_error "--model excludes --checkpoint" export --checkpoint "$work/runs/t/last.pt" --model fcn_resnet50 \
  --format onnx --out "$work/x.onnx"
"$petseg" -q export --checkpoint "$work/runs/t/last.pt" --format onnx --out "$work/run.onnx"
"$petseg" -q export --checkpoint "$work/runs/t/last.pt" --out "$work/run.pt"
if ! "$python" -c "import onnxruntime" 2>/dev/null; then
  echo "SKIPPED the onnxruntime check: no onnxruntime in $python"
else
  "$python" - "$work/run.onnx" <<'EOF' || fail "onnxruntime on the checkpoint's file"
import sys
import numpy as np
import onnxruntime
session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
assert meta["petseg.model"] == "lraspp_mobilenet_v3_large", meta
assert meta["petseg.classes"] == "pet,background,border", meta
assert meta["petseg.image_size"] == "64", meta
assert meta["petseg.mean"] == "0.485,0.456,0.406", meta
(out,) = session.run(["out"], {"input": np.zeros((2, 3, 40, 56), np.float32)})
assert out.shape == (2, 3, 40, 56), out.shape
EOF
fi
echo "export CLI: OK"
