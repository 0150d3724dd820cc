#!/usr/bin/env bash
# Downloads, here where apt works, the Debian packages petseg's build needs beyond what the GPU machine has (it has
# PyTorch, CMake, ninja and nvcc, but no network and no apt): the image codecs, CLI11, nlohmann-json, GoogleTest and
# Gloo's headers. scripts/gpu_check.sh unpacks them (dpkg-deb -x) into a prefix there. About 5 MB.
#   scripts/gpu_debs.sh [DIR]     DIR defaults to .gpu-debs (ignored by git; name it in the device tool's carry)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.gpu-debs}
packages=(libturbojpeg0 libturbojpeg0-dev libpng16-16 libpng-dev zlib1g-dev libcli11-dev nlohmann-json3-dev
          libgtest-dev libgmock-dev libgloo-dev)
mkdir -p "$out"
cd "$out"
rm -f ./*.deb
# apt-get download runs as the _apt user where it can: let it write here.
chmod 777 . 2>/dev/null || true
apt-get download "${packages[@]}" 2>&1 | grep -v "^Get:" || true
count=$(ls ./*.deb 2>/dev/null | wc -l)
[[ $count -eq ${#packages[@]} ]] || { echo "gpu_debs: expected ${#packages[@]} packages, got $count" >&2; exit 1; }
echo "gpu_debs: ${#packages[@]} packages in $(pwd) ($(du -sh . | cut -f1))"
