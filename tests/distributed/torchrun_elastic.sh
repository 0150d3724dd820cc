#!/usr/bin/env bash
# torchrun as the launcher, with an elastic restart: a 2-rank job under `torchrun --standalone --max-restarts 2`
# whose rank 1 is killed (kill -9) in the middle of epoch 2. torchrun restarts the group; petseg, started with
# --resume auto, continues from the run's last checkpoint by itself, with the restart's own --num-workers (as on a
# node with other cores: how a run runs is not what it is); the run ends with exactly the asked epochs in
# metrics.jsonl (none lost, none counted twice) and a best.pt.
#   torchrun_elastic.sh PETSEG PYTHON WORK
set -uo pipefail
petseg=$1
python=$2
work=$3
rm -rf "$work"
mkdir -p "$work"
export PETSEG_CACHE="$work/cache"
if ! "$python" -c "import torch.distributed.run" 2>/dev/null; then
  echo "SKIPPED: $python has no torch.distributed.run (torchrun; scripts/setup.sh installs PyTorch)"
  exit 0
fi
fail() {
  echo "FAILED: $*"
  echo "--- torchrun log (last 40 lines)"
  tail -40 "$work/torchrun.log"
  exit 1
}
"$petseg" synth --out "$work/data" --count 48 --min-side 64 --max-side 96 >/dev/null 2>&1 || fail "synth"
args=(train --distributed --resume auto --runs-dir "$work/runs" --name elastic --data "$work/data" --model lraspp_mobilenet_v3_large
      --image-size 48 --batch-size 2 --epochs 3 --max-steps 4 --eval-batches 1 --log-interval 1 --dist-timeout 30)
# torchrun starts the same command line again; the ranks read their worker count from a file when they start.
echo 1 >"$work/num_workers"
printf '#!/usr/bin/env bash\nexec "%s" "$@" --num-workers "$(cat "%s")"\n' "$petseg" "$work/num_workers" >"$work/rank.sh"
chmod +x "$work/rank.sh"
"$python" -m torch.distributed.run --standalone --nproc-per-node 2 --max-restarts 2 --no-python \
  "$work/rank.sh" "${args[@]}" >"$work/torchrun.log" 2>&1 &
launcher=$!

# Kill rank 1 once rank 0 reports step 1 of epoch 2 (epoch 1 is checkpointed by then; 3 steps of slack).
victim=""
for _ in $(seq 1 1200); do
  if grep -q "epoch 2/3 step 1/4" "$work/torchrun.log"; then
    # Through /proc, not pgrep (minimal images, the GPU machine's among them, have no procps): one grep over every
    # process's command line, then the environment of the two ranks.
    for cmdline in $(grep -l -a -- "--name" /proc/[0-9]*/cmdline 2>/dev/null); do
      dir=${cmdline%/cmdline}
      tr '\0' ' ' <"$cmdline" 2>/dev/null | grep -q -- "--name elastic" || continue
      if tr '\0' '\n' <"$dir/environ" 2>/dev/null | grep -qx "RANK=1"; then victim=${dir#/proc/}; fi
    done
    break
  fi
  kill -0 "$launcher" 2>/dev/null || break
  sleep 0.25
done
[[ -n "$victim" ]] || fail "never saw epoch 2 under way with a rank 1 to kill"
echo 2 >"$work/num_workers"  # the restart runs with 2 workers a rank
kill -9 "$victim"
echo "killed rank 1 (pid $victim) during epoch 2"
wait "$launcher"
rc=$?
((rc == 0)) || fail "torchrun exited with $rc"
grep -q "restart 1" "$work/torchrun.log" || fail "the ranks never reported torchrun's restart 1"
grep -q "resuming .*elastic at epoch 2" "$work/torchrun.log" || fail "the restarted ranks did not resume at epoch 2"
grep -q "this start changes how the run runs: .*num_workers 1 -> 2" "$work/torchrun.log" ||
  fail "the restart did not continue with its own --num-workers 2"
grep -q '"num_workers": 2' "$work/runs/elastic/config.json" || fail "config.json does not show the restart's workers"
epochs=$(grep -o '"epoch":[0-9]*' "$work/runs/elastic/metrics.jsonl" | cut -d: -f2 | tr '\n' ' ')
[[ "$epochs" == "1 2 3 " ]] || fail "metrics.jsonl holds epochs '$epochs', expected '1 2 3 '"
[[ -f "$work/runs/elastic/best.pt" ]] || fail "no best.pt"
echo "torchrun elastic restart: OK"
