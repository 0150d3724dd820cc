#!/usr/bin/env bash
# The GPU check, in one command, for a GPU machine that has PyTorch (torch + torchvision with CUDA in its python3),
# CMake, ninja and nvcc but no network and no apt: unpacks the Debian packages that scripts/gpu_debs.sh downloaded
# (carry .gpu-debs/ there), builds petseg against that machine's own torch, runs `ctest -L gpu`, then
# `petseg bench model` and `petseg bench ladder` on CUDA at 520x520 (the original's size) side by side with Python on
# the same GPU, then the rest of the suite with the time that is left. Writes at most 8 files to OUT_DIR:
# summary.txt (each stage, its exit code and seconds), check.log, ctest.log, model.txt/.json, ladder.txt/.json/.svg.
#   scripts/gpu_check.sh OUT_DIR          on the GPU machine (everything within PETSEG_GPU_CHECK_SECONDS, default 510)
#   scripts/gpu_check.sh --cpu OUT_DIR    the same steps here, on the CPU, with small benchmark settings
# Stages that no longer fit before the deadline are skipped and say so; a failing stage does not stop the others.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=gpu
if [[ "${1:-}" == "--cpu" ]]; then
  mode=cpu
  shift
fi
out=${1:?usage: scripts/gpu_check.sh [--cpu] OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=${PETSEG_GPU_CHECK_WORK:-/tmp/petseg-gpu-check}
deadline=${PETSEG_GPU_CHECK_SECONDS:-510}
[[ $mode == cpu ]] && deadline=${PETSEG_GPU_CHECK_SECONDS:-7200}
start=$SECONDS
summary=$out/summary.txt
log=$out/check.log
: >"$summary"
: >"$log"

note() { echo "$*" | tee -a "$summary"; }

# stage NAME MIN_SECONDS COMMAND...: runs COMMAND (output to check.log) unless fewer than MIN_SECONDS remain.
stage() {
  local name=$1 min=$2
  shift 2
  local left=$((deadline - (SECONDS - start)))
  if ((left < min)); then
    note "$name: SKIPPED ($left s left before the deadline, needs about $min)"
    return 1
  fi
  local t0=$SECONDS
  echo "===== $name: $*" >>"$log"
  # Through bash, so that COMMAND may be one of the exported functions below.
  timeout --kill-after=10 "$left" bash -c '"$@"' "$name" "$@" >>"$log" 2>&1
  local rc=$?
  note "$name: exit $rc, $((SECONDS - t0)) s$([[ $rc -eq 124 ]] && echo ' (stopped at the deadline)')"
  return $rc
}

if [[ $mode == gpu ]]; then
  python=${PETSEG_PYTHON:-python3}
  device=cuda
else
  python=${PETSEG_PYTHON:-$(scripts/pyenv.sh)}
  device=cpu
  [[ -d .gpu-debs ]] || scripts/gpu_debs.sh >/dev/null
fi
note "petseg GPU check ($mode mode), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores"
note "python: $python: $("$python" -c 'import torch, torchvision; print("torch", torch.__version__, "CUDA", torch.version.cuda, "torchvision", torchvision.__version__, "GPU", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")' 2>&1 | tail -1)"
command -v nvidia-smi >/dev/null && note "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"

# The Debian packages, unpacked into a prefix of their own (never into /).
prefix=$work/prefix
unpack() {
  rm -rf "$prefix" && mkdir -p "$prefix"
  local n=0
  for deb in .gpu-debs/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$prefix" || return 1
    else
      (cd "$work" && ar x "$OLDPWD/$deb" data.tar.xz && tar -xJf data.tar.xz -C "$prefix" && rm -f data.tar.xz) || return 1
    fi
    n=$((n + 1))
  done
  ((n > 0)) || { echo "no .deb files in .gpu-debs/ (run scripts/gpu_debs.sh where apt works, carry .gpu-debs)"; return 1; }
  echo "unpacked $n packages into $prefix"
}
mkdir -p "$work"
export prefix work
export -f unpack
stage unpack 5 unpack || { note "cannot go on without the packages"; exit 1; }

build=$work/build
generator=Ninja
command -v ninja >/dev/null || generator="Unix Makefiles"
configure() {
  cmake -S . -B "$build" -G "$generator" -DCMAKE_BUILD_TYPE=Release -DPETSEG_PYTHON="$python" \
    -DCMAKE_PREFIX_PATH="$prefix/usr" -DPETSEG_BUILD_BENCH=OFF -DPETSEG_WITH_FETCH=OFF
}
export build generator python
export -f configure
stage configure 20 configure || { note "configure failed: see check.log"; exit 1; }
stage build 60 cmake --build "$build" --parallel "$(nproc)" || { note "build failed: see check.log"; exit 1; }
petseg=$build/apps/petseg

ctest_log=$out/ctest.log
(cd "$build" && stage "ctest -L gpu" 30 ctest -L gpu --output-on-failure --timeout 300)
grep -E "tests passed|tests failed|Skipped|Failed|\*\*\*" "$log" | tail -20 >"$ctest_log"

if [[ $mode == gpu ]]; then
  model_args=(--device cuda --cases train:8:520,infer:8:520)
  ladder_args=(--device cuda --image-size 520 --batch-size 8 --steps 8 --ranks 1 --no-compile)
else
  model_args=(--device cpu --backbone resnet50 --cases train:2:64,infer:2:64 --variants fp32,bf16,cl_bf16,torchscript
              --repeats 1 --warmup 1 --no-compile)
  ladder_args=(--device cpu --backbone resnet50 --image-size 48 --batch-size 2 --steps 2 --workers 2 --no-compile)
fi
stage "bench model" 60 sh -c '"$0" bench model "$@" --json "'"$out"'/model.json" >"'"$out"'/model.txt"' \
  "$petseg" "${model_args[@]}"
stage "bench ladder" 90 sh -c '"$0" bench ladder "$@" --json "'"$out"'/ladder.json" --svg "'"$out"'/ladder.svg" \
  >"'"$out"'/ladder.txt"' "$petseg" "${ladder_args[@]}"

# The rest of the suite with whatever time is left (on a GPU machine most of it trains on CUDA).
lines_before=$(wc -l <"$log")
(cd "$build" && stage "ctest (rest of the suite)" 30 ctest -LE gpu --output-on-failure --timeout 300 \
  --parallel "$(($(nproc) / 2 > 1 ? $(nproc) / 2 : 1))")
tail -n +"$((lines_before + 1))" "$log" | grep -E "tests passed|tests failed|\(Failed\)|\(SEGFAULT\)|\(Timeout\)|Not Run" |
  tail -40 >>"$ctest_log"
note "total: $((SECONDS - start)) s"
