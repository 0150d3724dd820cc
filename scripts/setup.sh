#!/usr/bin/env bash
# Installs what petseg needs to build, test and benchmark: Debian's packages (apt) for the C++ libraries and tools,
# and the pinned PyTorch wheels from PyPI (torch, whose bundled libtorch petseg builds against, and torchvision,
# the reference the tests and benchmarks compare with; tensorboard, whose readers the tests check event files with;
# onnxruntime, which runs the ONNX files petseg exports in the tests; segmentation_models_pytorch and torchmetrics,
# the references of the losses and metrics tests)
# in a Python environment outside the checkout, keyed by the pinned versions of torch and torchvision, so every clone
# and every CI run on the machine reuses it. Idempotent: when everything is there
# it only checks, and returns in a few seconds. Prints where the Python environment is.
#   PETSEG_PYENV=DIR   put (or find) the environment there instead (scripts/pyenv.sh prints the default)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # build
  cmake g++ make ccache pkg-config
  # Gloo's headers: the wheel's libtorch has Gloo built in but ships no gloo/*.h (see README, "libtorch builds")
  libgloo-dev
  # image codecs (no OpenCV: see README)
  libturbojpeg0-dev libpng-dev
  # header-only helpers
  libcli11-dev nlohmann-json3-dev
  # TensorBoard event files (src/report/tensorboard): protobuf's compiler and runtime, Boost.CRC (header-only)
  protobuf-compiler libprotobuf-dev libboost-dev
  # ONNX export (src/model/onnx_export): the ONNX protobuf types, checker and shape inference
  libonnx-dev
  # downloads: HTTP(S), checksums, safe archive extraction (petseg data download, --weights coco)
  libcurl4-openssl-dev libssl-dev libarchive-dev
  # tests and benchmarks; clang and its runtime libraries (libFuzzer, sanitizers) for scripts/fuzz.sh
  libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev
  # the interpreter of the Python environment below (tests and benchmarks only, never petseg's run path)
  python3 python3-venv
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The CUDA wheel's CMake package needs a CUDA toolkit at configure time (nothing CUDA has to run here).
if ! command -v nvcc >/dev/null && [[ ! -x /usr/local/cuda/bin/nvcc ]]; then
  echo "setup: warning: no CUDA toolkit (nvcc) found: configuring against the CUDA wheel of torch needs one" \
       "(e.g. /usr/local/cuda); see README, \"libtorch builds\"" >&2
fi

# The pinned wheels (scripts/pyenv.sh holds the versions). A virtual environment's paths are fixed when it is made,
# so it is built where it will live, under a lock, and marked complete only at the end: an interrupted download is
# started over, never mistaken for a finished environment.
read -r torch_version vision_version tensorboard_version onnxruntime_version smp_version torchmetrics_version \
  < <(scripts/pyenv.sh --versions)
env_dir=$(scripts/pyenv.sh --dir)
if [[ ! -f "$env_dir/.petseg-complete" ]]; then
  echo "setup: installing torch==$torch_version torchvision==$vision_version from PyPI into $env_dir" \
       "(about 3 GB to download, once per machine)" >&2
  mkdir -p "$(dirname "$env_dir")"
  exec 9>"$env_dir.lock"
  flock 9
  if [[ ! -f "$env_dir/.petseg-complete" ]]; then
    rm -rf "$env_dir"
    /usr/bin/python3 -m venv "$env_dir"
    "$env_dir/bin/pip" install --quiet --no-input "torch==$torch_version" "torchvision==$vision_version" \
      "tensorboard==$tensorboard_version" "onnxruntime==$onnxruntime_version" >&2
    "$env_dir/bin/python" -c "import torch, torchvision, PIL, numpy, tensorboard, onnxruntime" >&2
    touch "$env_dir/.petseg-complete"
  fi
  flock -u 9
fi
# tensorboard and onnxruntime came after the environment: one made before them gets them in place (seconds, torch
# stays). pinned_in_place PACKAGE MODULE VERSION CHECK: installs PACKAGE==VERSION unless MODULE imports at VERSION;
# CHECK is Python run afterwards to prove it works.
pinned_in_place() {
  local package=$1 module=$2 version=$3 check=$4
  local is_pinned="import sys, $module; sys.exit($module.__version__ != '$version')"
  if ! "$env_dir/bin/python" -c "$is_pinned" 2>/dev/null; then
    echo "setup: installing $package==$version into $env_dir" >&2
    exec 9>"$env_dir.lock"
    flock 9
    if ! "$env_dir/bin/python" -c "$is_pinned" 2>/dev/null; then
      "$env_dir/bin/pip" install --quiet --no-input "$package==$version" >&2
      "$env_dir/bin/python" -c "$check" >&2
    fi
    flock -u 9
  fi
}
pinned_in_place tensorboard tensorboard "$tensorboard_version" \
  "from tensorboard.backend.event_processing import event_accumulator"
pinned_in_place onnxruntime onnxruntime "$onnxruntime_version" \
  "import onnxruntime; assert 'CPUExecutionProvider' in onnxruntime.get_available_providers()"
# The losses' and metrics' references came after it too. torch and torchvision are named at their pinned versions in
# the same pip command, so resolving the references' dependencies can never move them (pip fails instead).
references_ok() {
  "$env_dir/bin/python" -c "import sys, segmentation_models_pytorch as smp, torchmetrics, torch, torchvision
pinned = lambda module: module.__version__.split('+')[0]
sys.exit(pinned(smp) != '$smp_version' or pinned(torchmetrics) != '$torchmetrics_version'
         or pinned(torch) != '$torch_version' or pinned(torchvision) != '$vision_version')" \
    2>/dev/null
}
if ! references_ok; then
  echo "setup: installing segmentation-models-pytorch==$smp_version torchmetrics==$torchmetrics_version" \
       "into $env_dir" >&2
  exec 9>"$env_dir.lock"
  flock 9
  if ! references_ok; then
    "$env_dir/bin/pip" install --quiet --no-input "segmentation-models-pytorch==$smp_version" \
      "torchmetrics==$torchmetrics_version" "torch==$torch_version" "torchvision==$vision_version" >&2
    references_ok || { echo "setup: the references do not import at their pinned versions (see above)" >&2; exit 1; }
  fi
  flock -u 9
fi
echo "setup: Python reference and libtorch: $env_dir (torch $torch_version, torchvision $vision_version," \
     "tensorboard $tensorboard_version, onnxruntime $onnxruntime_version, segmentation-models-pytorch $smp_version," \
     "torchmetrics $torchmetrics_version)" >&2
