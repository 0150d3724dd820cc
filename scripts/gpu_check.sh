#!/usr/bin/env bash
# The GPU check in one command, run from the pack that scripts/gpu_pack.sh built on the developer's machine (carried
# as .gpu-pack/): nothing is compiled where it runs. It needs only bash, coreutils and a `python3` on PATH with the
# pinned torch + torchvision (the GPU machine's virtual environment), whose torch/lib and nvidia/*/lib give the
# binaries libtorch and CUDA. A lease is short and comes without warning, so the stages run in the order that answers
# the project's question soonest, each in its own time box within one budget, and nothing measured is ever lost: every
# bench writes its JSON after each row, each stage's log joins logs.tar.gz as it ends, and summary.txt is rebuilt
# from what is on disk after every stage (and printed last: only the end of a command's output comes back).
#   1. facts      GPU, driver, torch/CUDA/cuDNN, and two measured ceilings: device copy GB/s, 8192^3 bf16 matmul
#   2. headline   bench model: DeepLabV3-ResNet101 train step, 3 classes, 520x520, batch 8: petseg fp32, TF32, bf16,
#                 channels_last+bf16, then Python eager of the same (each variant with an untimed warm-up)
#   3. compile    Python's torch.compile (channels_last+bf16) in its own process and time box, compile time apart
#   4. gpu tests  ctest -L gpu (ResNet-50 but the parity test, at most 120 s each)
#   5. ladder     the single-GPU rungs: baseline, 8 workers + pinned memory, + TorchScript, + channels_last + bf16
#   6. fp16       the fp16 train step with the loss scaler, both sides
#   7. the rest   ctest -LE gpu, only with >= 300 s left; stopped by the budget, it is not a failure
# What comes back (at most 8 files): summary.txt, facts.json, model.json, compile.json, fp16.json, ladder.json,
# ctest.txt, logs.tar.gz (every stage's log, the benches' tables, ladder.svg).
#   scripts/gpu_check.sh [--budget SECONDS] OUT_DIR           on the GPU machine (default 500 s;
#                                                               $PETSEG_GPU_CHECK_SECONDS also sets it)
#   scripts/gpu_check.sh --small [--budget SECONDS] OUT_DIR   the same stages on the CPU with small sizes
#   scripts/gpu_check.sh --rehearse OUT_DIR [--budget S]      here: build the pack, then --small in a bare root
set -uo pipefail
cd "$(dirname "$0")/.."
mode=gpu
budget=${PETSEG_GPU_CHECK_SECONDS:-}
out=
while (($#)); do
  case $1 in
    --small) mode=small ;;
    --rehearse) shift; exec scripts/gpu_rehearse.sh "$@" ;;
    --budget) budget=${2:?--budget needs SECONDS}; shift ;;
    --budget=*) budget=${1#--budget=} ;;
    -*) echo "gpu_check: unknown option $1" >&2; exit 2 ;;
    *) out=$1 ;;
  esac
  shift
done
[[ -n $out ]] || { echo "usage: scripts/gpu_check.sh [--small|--rehearse] [--budget SECONDS] OUT_DIR" >&2; exit 2; }
[[ -z $budget ]] && { [[ $mode == gpu ]] && budget=500 || budget=5400; }
[[ $budget =~ ^[0-9]+$ ]] || { echo "gpu_check: --budget must be whole seconds, not $budget" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
start=$SECONDS
# Logs and the stage table live outside OUT (8 files come back); they travel in logs.tar.gz.
work=$(mktemp -d /tmp/petseg-gpu-check.XXXXXX)
stages_tsv=$work/stages.tsv
log=$work/00-setup.log
: >"$stages_tsv"
note() { echo "$*" | tee -a "$log"; }
fail() {
  note "STOPPED: $*"
  printf 'set-up\tfailed\t%s\t-\t%s\n' "$((SECONDS - start))" "$*" >>"$stages_tsv"
  tar -C "$work" -czf "$out/logs.tar.gz" . 2>/dev/null
  cat "$log"
  exit 1
}

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
note "petseg GPU check ($mode, budget $budget s), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
note "pack: $(sed -n '2p;4p' "$pack/MANIFEST" | paste -sd ';')"

# Torch's and CUDA's libraries from this machine's python3.
python=${PETSEG_PYTHON:-python3}
command -v "$python" >/dev/null || fail "no $python on PATH"
site=$("$python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>>"$log") ||
  fail "$python cannot import torch (see 00-setup.log in logs.tar.gz)"
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
# The tests that read event files back with tensorboard skip, saying so, only where this python has none.
"$python" -c 'import tensorboard' 2>/dev/null || export PETSEG_TESTS_WITHOUT_TENSORBOARD=1
command -v nvidia-smi >/dev/null && note "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"
petseg=$root/build/apps/petseg
"$petseg" --help >/dev/null 2>>"$log" || fail "petseg does not start here (missing library? see 00-setup.log in logs.tar.gz; pack $(sed -n 5p "$pack/MANIFEST"))"

# stage NAME BOX MIN COMMAND...: runs COMMAND, its output to the stage's log, stopped after BOX seconds (or when the
# budget ends, if sooner); skipped when fewer than MIN seconds of the budget are left. After it: the stage's line in
# the table, the logs archive and the summary, so that a stop at any moment keeps all of it.
# With `optional` first, a stop at the box is not a failure (the rest of the suite).
failed=0
n=0
stage() {
  local optional=0
  [[ $1 == optional ]] && { optional=1; shift; }
  local name=$1 box=$2 min=$3
  shift 3
  n=$((n + 1))
  local left=$((budget - (SECONDS - start)))
  ((box > left)) && box=$left
  local slog
  slog=$work/$(printf '%02d' "$n")-${name// /-}.log
  if ((left < min)); then
    printf '%s\tskipped\t0\t%s\t%s s of the budget left, needs %s\n' "$name" "$box" "$left" "$min" >>"$stages_tsv"
    finish_stage
    return 1
  fi
  local t0=$SECONDS
  echo "===== $name (box $box s): $*" >"$slog"
  # timeout runs the stage as its own process group and stops all of it (Python's compile workers too).
  timeout --kill-after=5 "$box" "$@" >>"$slog" 2>&1
  local rc=$? status=ok extra=""
  if ((rc == 124 || rc == 137)); then
    status=stopped extra="stopped at its box; what it finished is kept"
    ((optional)) || failed=$((failed + 1))
  elif ((rc != 0)); then
    status="exit $rc" extra="see logs.tar.gz: $(basename "$slog")"
    failed=$((failed + 1))
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - t0))" "$box" "$extra" >>"$stages_tsv"
  finish_stage
  return $rc
}
finish_stage() {
  # A runaway log cannot push the archive past what a device call brings back (16 MiB a file).
  find "$work" -name '*.log' -size +40M -exec sh -c 'tail -c 40M "$1" >"$1.t" && mv "$1.t" "$1"' sh {} \;
  tar -C "$work" -czf "$out/logs.tar.gz.tmp" . 2>/dev/null && mv "$out/logs.tar.gz.tmp" "$out/logs.tar.gz"
  "$python" "$root/tree/scripts/gpu_summary.py" "$out" "$stages_tsv" >"$work/summary.txt" 2>>"$log" &&
    cp "$work/summary.txt" "$out/summary.txt.tmp" && mv "$out/summary.txt.tmp" "$out/summary.txt"
}
ctest_summary() {  # the verdict lines of a ctest log, or why there are none
  [[ -f $1 ]] || { echo "(not run: the budget skipped it)"; return; }
  grep -E "tests passed|tests failed|\(Failed\)|\(SEGFAULT\)|\(Timeout\)|\(Subprocess|Not Run|\*\*\*Skipped|Total Test time" "$1" | tail -60
}

# The command lines (options only; the files are added below): tests/cli/gpu_check_args.sh parses each of them.
if [[ $mode == gpu ]]; then
  bench_headline=(bench model --device cuda --cases train:8:520 --variants fp32,tf32,bf16,cl_bf16 --warmup 3 --repeats 10)
  bench_compile=(bench model --device cuda --cases train:8:520 --variants compile_cl_bf16 --warmup 3 --repeats 10)
  bench_fp16=(bench model --device cuda --cases train:8:520 --variants fp16 --warmup 3 --repeats 10)
  bench_ladder=(bench ladder --device cuda --image-size 520 --batch-size 8 --steps 5 --epochs 2 --num-workers 8 --rungs baseline,workers+pin,torchscript,cl+bf16 --no-compile)
  facts_args=()
  boxes=(60 240 180 150 200 90)  # facts headline compile tests ladder fp16
  jobs=$(($(nproc) / 4 > 1 ? $(nproc) / 4 : 1))
else
  bench_headline=(bench model --device cpu --backbone resnet50 --cases train:2:64 --variants fp32,bf16,cl_bf16 --warmup 1 --repeats 1)
  bench_compile=(bench model --device cpu --backbone resnet50 --cases train:2:64 --variants compile_cl_bf16 --warmup 1 --repeats 1)
  bench_fp16=(bench model --device cpu --backbone resnet50 --cases train:2:64 --variants fp16 --warmup 1 --repeats 1)
  bench_ladder=(bench ladder --device cpu --backbone resnet50 --image-size 48 --batch-size 2 --steps 2 --epochs 2 --num-workers 2 --rungs baseline,workers+pin,torchscript,cl+bf16 --no-compile)
  facts_args=(--matmul-size 1024 --copy-mib 64)
  boxes=(120 600 400 600 900 300)
  jobs=$(($(nproc) / 2 > 1 ? $(nproc) / 2 : 1))
fi
build=$root/build
# FILE COMMAND...: the command's standard output (its table) to FILE, its log lines (standard error) to the stage log.
tables=(bash -c '"$@" >"$0"')

stage facts "${boxes[0]}" 10 "$python" "$root/tree/scripts/gpu_facts.py" "$out/facts.json" "${facts_args[@]}"
ceilings=()
grep -q matmul_bf16_tflops "$out/facts.json" 2>/dev/null && ceilings=(--ceilings "$out/facts.json")
stage headline "${boxes[1]}" 30 "${tables[@]}" "$work/model.txt" "$petseg" "${bench_headline[@]}" "${ceilings[@]}" \
  --json "$out/model.json"
left=$((budget - (SECONDS - start)))
compile_box=$((boxes[2] < left ? boxes[2] : left))
stage compile "${boxes[2]}" 60 "${tables[@]}" "$work/compile.txt" "$petseg" "${bench_compile[@]}" "${ceilings[@]}" \
  --compile-timeout $((compile_box > 40 ? compile_box - 20 : 20)) --json "$out/compile.json"
stage "gpu tests" "${boxes[3]}" 30 ctest --test-dir "$build" -L gpu -j4 --no-tests=error --output-on-failure
{ echo "== ctest -L gpu"; ctest_summary "$work/$(printf '%02d' "$n")-gpu-tests.log"; } >"$out/ctest.txt"
finish_stage
stage ladder "${boxes[4]}" 60 "${tables[@]}" "$work/ladder.txt" "$petseg" "${bench_ladder[@]}" --json "$out/ladder.json" \
  --svg "$work/ladder.svg"
stage fp16 "${boxes[5]}" 45 "${tables[@]}" "$work/fp16.txt" "$petseg" "${bench_fp16[@]}" "${ceilings[@]}" --json "$out/fp16.json"
stage optional "the rest" 100000 300 ctest --test-dir "$build" -LE gpu --no-tests=error --output-on-failure --timeout 300 \
  --parallel "$jobs"
if [[ -f $work/$(printf '%02d' "$n")-the-rest.log ]]; then
  { echo "== ctest -LE gpu"; ctest_summary "$work/$(printf '%02d' "$n")-the-rest.log"; } >>"$out/ctest.txt"
  finish_stage
fi
echo "total: $((SECONDS - start)) s of a $budget s budget, $failed stage(s) failed or stopped" >>"$log"
finish_stage
cat "$out/summary.txt" 2>/dev/null || cat "$stages_tsv"
echo "total: $((SECONDS - start)) s of a $budget s budget, $failed stage(s) failed or stopped"
exit $((failed > 0))
