#!/usr/bin/env bash
# The GPU check in one command, run from the pack that scripts/gpu_pack.sh built on the developer's machine (carried
# as .gpu-pack/): nothing is compiled where it runs. It needs only bash, coreutils and a `python3` on PATH with the
# pinned torch + torchvision (the GPU machine's virtual environment), whose torch/lib and nvidia/*/lib give the
# binaries libtorch and CUDA. Stages, most valuable first, each writing its results as it ends (a stop at the deadline
# loses nothing already measured):
#   1. ctest -L gpu                     the CUDA tests (parity with torchvision, fp16/bf16 steps, NCCL, resume ...)
#   2. bench model                      the headline train step: DeepLabV3-ResNet101, 3 classes, 520x520, batch 8,
#                                       fp32 / TF32 / bf16 / channels_last+bf16 / fp16 (loss-scaled) vs Python eager at
#                                       the same settings, and Python's torch.compile (channels_last + bf16)
#   3. bench ladder                     the original's ladder at 520x520 on one GPU
#   4. ctest -LE gpu                    the rest of the suite, with the time left
# At most 8 files in OUT_DIR: summary.txt (each stage: exit code, seconds), check.log, ctest.txt, model.txt/.json,
# ladder.txt/.json/.svg.
#   scripts/gpu_check.sh OUT_DIR            on the GPU machine (all within PETSEG_GPU_CHECK_SECONDS, default 500)
#   scripts/gpu_check.sh --small OUT_DIR    the same stages on the CPU with small bench sizes
#   scripts/gpu_check.sh --rehearse OUT_DIR here: build the pack, then --small in a bare root (scripts/gpu_rehearse.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
mode=gpu
case "${1:-}" in
  --small) mode=small; shift ;;
  --rehearse) shift; exec scripts/gpu_rehearse.sh "$@" ;;
esac
out=${1:?usage: scripts/gpu_check.sh [--small|--rehearse] OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
deadline=${PETSEG_GPU_CHECK_SECONDS:-500}
[[ $mode == small ]] && deadline=${PETSEG_GPU_CHECK_SECONDS:-5400}
start=$SECONDS
summary=$out/summary.txt
log=$out/check.log
: >"$summary"
: >"$log"
note() { echo "$*" | tee -a "$summary"; }
failed=0
fail() { note "STOPPED: $*"; exit 1; }

# The pack, unpacked once beside its archive, at the path its binaries were built for.
readonly root=/tmp/petseg-gpu-pack
pack=$(pwd)/.gpu-pack
[[ -f $pack/pack.tar.gz ]] || fail "no .gpu-pack here: run scripts/gpu_pack.sh on the build machine and carry .gpu-pack"
if [[ -L $root || ! -e $root ]]; then
  ln -sfn "$pack" "$root"
else
  fail "$root is a folder here, not a link: this is the machine that builds packs (scripts/gpu_pack.sh); run the" \
    "check in a bare root with scripts/gpu_check.sh --rehearse, or on the GPU machine"
fi
if ! cmp -s "$pack/MANIFEST" "$pack/MANIFEST.unpacked" 2>/dev/null; then
  rm -rf "$pack/build" "$pack/tree" "$pack/bin" "$pack/lib"
  tar -C "$pack" -xzf "$pack/pack.tar.gz" --exclude ./MANIFEST || fail "cannot unpack $pack/pack.tar.gz"
  cp "$pack/MANIFEST" "$pack/MANIFEST.unpacked"
fi
note "petseg GPU check ($mode), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
note "pack: $(sed -n '2p;4p' "$pack/MANIFEST" | paste -sd ';')"

# Torch's and CUDA's libraries from this machine's python3.
python=${PETSEG_PYTHON:-python3}
command -v "$python" >/dev/null || fail "no $python on PATH"
site=$("$python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>>"$log") ||
  fail "$python cannot import torch (see check.log)"
note "python: $(command -v "$python"): $("$python" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, "GPU", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")' 2>&1 | tail -1)"
want=$(sed -n 's/^torch: \([^ ]*\).*/\1/p' "$pack/MANIFEST")
have=$("$python" -c 'import torch; print(torch.__version__)')
[[ $want == "$have" ]] || fail "the pack was built against torch $want, this python3 has $have"
# The pack's own libraries come through its binaries' RPATH; only libtorch and CUDA's are added here.
libs=$site/torch/lib
for d in "$site"/nvidia/*/lib; do [[ -d $d ]] && libs=$libs:$d; done
export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$pack/bin:$PATH
export PETSEG_PYTHON=$python
# The machine's python has torch and torchvision, and no network to add tensorboard: the tests that read event files
# back with it skip there, saying so (they run on every CI machine).
export PETSEG_TESTS_WITHOUT_TENSORBOARD=1
command -v nvidia-smi >/dev/null && note "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"
petseg=$root/build/apps/petseg
"$petseg" --help >/dev/null 2>>"$log" || fail "petseg does not start here (missing library? see check.log; pack $(sed -n 5p "$pack/MANIFEST"))"

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
  timeout --kill-after=10 "$left" "$@" >>"$log" 2>&1
  local rc=$?
  note "$name: exit $rc, $((SECONDS - t0)) s$([[ $rc -eq 124 ]] && echo ' (stopped at the deadline)')"
  ((rc == 0)) || failed=$((failed + 1))
  return $rc
}
ctest_summary() {  # the verdict lines of the ctest run that starts after line $1 of check.log
  tail -n +"$(($1 + 1))" "$log" | grep -E "tests passed|tests failed|\(Failed\)|\(SEGFAULT\)|\(Timeout\)|\(Subprocess|Not Run|\*\*\*Skipped|Total Test time" | tail -60
}

if [[ $mode == gpu ]]; then
  device=cuda
  model_args=(--device cuda --cases train:8:520 --variants fp32,tf32,bf16,cl_bf16,fp16,compile_cl_bf16 --warmup 3 --repeats 10)
  ladder_args=(--device cuda --image-size 520 --batch-size 8 --steps 8 --num-workers 8 --ranks 1 --no-compile)
  jobs=$(($(nproc) / 4 > 1 ? $(nproc) / 4 : 1))
else
  device=cpu
  model_args=(--device cpu --backbone resnet50 --cases train:2:64 --variants fp32,bf16,cl_bf16,fp16,compile_cl_bf16 --warmup 1 --repeats 1)
  ladder_args=(--device cpu --backbone resnet50 --image-size 48 --batch-size 2 --steps 2 --num-workers 2 --no-compile)
  jobs=$(($(nproc) / 2 > 1 ? $(nproc) / 2 : 1))
fi
build=$root/build
ctest_txt=$out/ctest.txt

lines=$(wc -l <"$log")
stage "ctest -L gpu" 30 ctest --test-dir "$build" -L gpu --output-on-failure --timeout 300
{ echo "== ctest -L gpu"; ctest_summary "$lines"; } >"$ctest_txt"

# The table on standard output goes to its file, the log lines to check.log.
to() { local file=$1; shift; "$@" >"$file"; }
export -f to
stage "bench model ($device)" 120 bash -c 'to "$@"' to "$out/model.txt" "$petseg" bench model "${model_args[@]}" \
  --json "$out/model.json"
stage "bench ladder ($device)" 120 bash -c 'to "$@"' to "$out/ladder.txt" "$petseg" bench ladder "${ladder_args[@]}" \
  --json "$out/ladder.json" --svg "$out/ladder.svg"

lines=$(wc -l <"$log")
stage "ctest -LE gpu (the rest)" 30 ctest --test-dir "$build" -LE gpu --output-on-failure --timeout 300 --parallel "$jobs"
{ echo "== ctest -LE gpu"; ctest_summary "$lines"; } >>"$ctest_txt"
note "total: $((SECONDS - start)) s, $failed stage(s) failed"
exit $((failed > 0))
