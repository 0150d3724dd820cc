#!/usr/bin/env bash
# Installs every Debian package petseg needs to build, test and benchmark. Idempotent: when everything is
# already there it only checks (dpkg-query) and returns in well under a second.
set -euo pipefail

packages=(
  # build
  cmake g++ make ccache pkg-config
  # libtorch (CPU, with Gloo) and the BLAS that keeps its CPU paths fast
  libtorch-dev libgloo-dev libopenblas0-pthread
  # image codecs (no OpenCV: see README)
  libturbojpeg0-dev libpng-dev
  # header-only helpers
  libcli11-dev nlohmann-json3-dev
  # tests and benchmarks; clang and its runtime libraries (libFuzzer, sanitizers) for scripts/fuzz.sh
  libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev
  # Python reference, used only by tests and benchmarks (never by petseg itself)
  python3 python3-torch python3-torchvision python3-pil python3-numpy
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
