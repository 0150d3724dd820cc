#!/usr/bin/env bash
# Where the pinned PyTorch lives (made by scripts/setup.sh): the versions petseg builds against and compares with,
# the tensorboard whose readers the tests check petseg's event files with, the onnxruntime that runs petseg's ONNX
# files in the tests, and the references of the losses and metrics tests (segmentation_models_pytorch's
# DiceLoss/FocalLoss, torchmetrics' per-class scores).
#   scripts/pyenv.sh             the environment's python (what CMake's -DPETSEG_PYTHON takes)
#   scripts/pyenv.sh --dir       the environment's folder
#   scripts/pyenv.sh --versions  "TORCH TORCHVISION TENSORBOARD ONNXRUNTIME SMP TORCHMETRICS"
# The GPU machine's PyTorch is torch 2.11.0+cu130 / torchvision 0.26.0; PyPI's default wheels of these versions are
# the same CUDA 13.0 builds. PETSEG_PYENV overrides the folder.
set -euo pipefail
torch_version=2.11.0
vision_version=0.26.0
# Not in the folder's name (these three): added to an existing environment in place (scripts/setup.sh), torch is not
# downloaded again.
tensorboard_version=2.21.0
onnxruntime_version=1.24.4
smp_version=0.6.0
torchmetrics_version=1.9.0
dir=${PETSEG_PYENV:-${XDG_CACHE_HOME:-$HOME/.cache}/petseg/pyenv/torch-$torch_version-vision-$vision_version}
case "${1:-}" in
  --dir) echo "$dir" ;;
  --versions) echo "$torch_version $vision_version $tensorboard_version $onnxruntime_version $smp_version $torchmetrics_version" ;;
  "") echo "$dir/bin/python" ;;
  *) echo "usage: scripts/pyenv.sh [--dir|--versions]" >&2; exit 2 ;;
esac
