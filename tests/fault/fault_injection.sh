#!/usr/bin/env bash
# Fault injection for petseg, runnable by anyone: kill -9 during training and checkpoint writes then resume, a full
# disk while saving, an unwritable run folder, data files that vanish or turn corrupt mid-run, a killed rank in a
# distributed run. Prints one line per scenario and a summary; exits non-zero if anything was lost or hung.
#   tests/fault/fault_injection.sh [PETSEG] [WORK_DIR] [KILLS]
# Without WORK_DIR it works in a fresh temporary folder (about 2.5 GB of checkpoints), removed when every scenario
# passed and kept for inspection otherwise; a WORK_DIR given is always kept. ctest runs it as fault.injection.
set -uo pipefail
petseg=$(realpath "${1:-build/apps/petseg}")
own_work=0
if [[ -n "${2:-}" ]]; then
  work=$2
else
  work=$(mktemp -d /tmp/petseg-fault.XXXXXX)
  own_work=1
fi
kills=${3:-12}
mkdir -p "$work"
work=$(realpath "$work")
export PETSEG_CACHE="$work/cache"
failures=0
lost=0
say() { echo "fault: $*"; }
fail() {
  say "FAILED: $*"
  failures=$((failures + 1))
}

data="$work/pets"
"$petseg" synth --out "$data" --count 40 --min-side 64 --max-side 120 >/dev/null 2>&1 || { echo "synth failed"; exit 1; }
"$petseg" prepare --data "$data" >/dev/null 2>&1
base=(--model lraspp_mobilenet_v3_large --image-size 48 --batch-size 4 --max-steps 3 --eval-batches 1 --num-workers 2
  --log-interval 1)
common=(--data "$data" --runs-dir "$work/runs" "${base[@]}")

# ---- 1. kill -9 at random moments and during checkpoint writes, then resume; repeat
epochs=$((kills + 4))
run="$work/runs/killed"
resumes=0
during_write=0
RANDOM=7
# One finished epoch first, so that every kill below interrupts a run that has a checkpoint to lose.
"$petseg" --threads 2 train "${common[@]}" --name killed --epochs 1 >>"$work/killed.log" 2>&1 ||
  fail "kill -9: the first epoch failed"
for ((i = 1; i <= kills; i++)); do
  "$petseg" --threads 2 train "${common[@]}" --resume "$run" --epochs "$epochs" >>"$work/killed.log" 2>&1 &
  resumes=$((resumes + 1))
  pid=$!
  if ((i % 2 == 0)); then
    # Wait for a checkpoint write to begin (its temporary file), then kill in the middle of it.
    for ((t = 0; t < 3000; t++)); do
      [[ -e "$run/last.pt.tmp" || -e "$run/best.pt.tmp" ]] && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.01
    done
    [[ -e "$run/last.pt.tmp" || -e "$run/best.pt.tmp" ]] && during_write=$((during_write + 1))
  else
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 2 + 6 * r / 32767 }')"
  fi
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  if ! "$petseg" eval --checkpoint "$run/last.pt" --num-workers 0 >/dev/null 2>&1; then
    fail "kill $i left no readable last.pt"
    lost=$((lost + 1))
  fi
done
if "$petseg" --threads 2 train "${common[@]}" --resume "$run" --epochs "$epochs" >>"$work/killed.log" 2>&1 &&
  "$petseg" eval --checkpoint "$run/best.pt" --num-workers 0 >/dev/null 2>&1; then
  epochs_done=$(wc -l <"$run/metrics.jsonl")
  ok=$([[ "$epochs_done" -eq "$epochs" ]] && echo "as it should" || echo "EXPECTED $epochs")
  say "kill -9: $kills kills ($during_write during a checkpoint write), $((resumes + 1)) resumes, run finished with a valid best.pt, $epochs_done epochs in metrics.jsonl ($ok)"
  [[ "$epochs_done" -eq "$epochs" ]] || fail "kill -9: metrics.jsonl holds $epochs_done epochs, not $epochs"
else
  fail "kill -9: the final resume or the best checkpoint failed (log $work/killed.log)"
  lost=$((lost + 1))
fi

# ---- 2. full disk while saving: a file size limit (any user) and, as root, a tmpfs just too small
"$petseg" --threads 2 train "${common[@]}" --name full --epochs 1 >"$work/full.log" 2>&1 || fail "full disk: first run failed"
sum_before=$(sha256sum "$work/runs/full/last.pt" | cut -d' ' -f1)
size_kb=$(($(stat -c %s "$work/runs/full/last.pt") / 1024))
(
  trap '' XFSZ
  ulimit -f $((size_kb / 2))
  exec "$petseg" --threads 2 train "${common[@]}" --resume "$work/runs/full" --epochs 2
) >"$work/full2.log" 2>&1
rc=$?
sum_after=$(sha256sum "$work/runs/full/last.pt" | cut -d' ' -f1)
if ((rc != 0)) && grep -q "previous checkpoint is intact" "$work/full2.log" && [[ "$sum_before" == "$sum_after" ]] &&
  [[ ! -e "$work/runs/full/last.pt.tmp" ]]; then
  say "full disk (file size limit): exit $rc, \"$(grep -o 'cannot write checkpoint.*' "$work/full2.log" | head -1 | cut -c1-90)...\", previous checkpoint intact"
else
  fail "full disk (file size limit): rc $rc, checkpoint changed or no clear message (log $work/full2.log)"
  [[ "$sum_before" != "$sum_after" ]] && lost=$((lost + 1))
fi
if [[ $(id -u) -eq 0 ]] && mkdir -p "$work/tmpfs" && mount -t tmpfs -o size=$((size_kb * 3 / 2))k tmpfs "$work/tmpfs" 2>/dev/null; then
  mkdir -p "$work/tmpfs/full" && cp "$work/runs/full/"{last.pt,config.json,metrics.jsonl} "$work/tmpfs/full/"
  "$petseg" --threads 2 train "${common[@]}" --resume "$work/tmpfs/full" --epochs 2 >"$work/full3.log" 2>&1
  rc=$?
  if ((rc != 0)) && grep -q "previous checkpoint is intact" "$work/full3.log" &&
    [[ "$(sha256sum "$work/tmpfs/full/last.pt" | cut -d' ' -f1)" == "$sum_before" ]]; then
    say "full disk (tmpfs of $((size_kb * 3 / 2)) KiB): exit $rc, \"$(grep -o 'No space left on device' "$work/full3.log" | head -1)\", previous checkpoint intact"
  else
    fail "full disk (tmpfs): rc $rc (log $work/full3.log)"
  fi
  umount "$work/tmpfs"
fi

# ---- 3. an unwritable run folder fails at start, before any training
if [[ $(id -u) -eq 0 ]]; then
  target=/proc/petseg-runs  # root writes through permission bits; /proc refuses everyone
else
  mkdir -p "$work/ro" && chmod 555 "$work/ro" && target="$work/ro/runs"
fi
start=$(date +%s.%N)
"$petseg" --threads 2 train --data "$data" "${base[@]}" --runs-dir "$target" --name ro --epochs 1 >"$work/ro.log" 2>&1
rc=$?
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
if ((rc != 0)) && ! grep -q "step 1/" "$work/ro.log" && grep -q "run folder" "$work/ro.log"; then
  say "unwritable run folder: exit $rc after $took s, before any step: \"$(grep -o 'error: .*' "$work/ro.log" | cut -c1-100)\""
else
  fail "unwritable run folder: rc $rc (log $work/ro.log)"
fi

# ---- 4. data files vanish or turn corrupt mid-run: replaced by another sample of the shard (training) or skipped
# (validation), with a warning naming the file; the run finishes
cp -a "$data" "$work/pets-mut"
"$petseg" --threads 2 train --runs-dir "$work/runs" "${base[@]}" --data "$work/pets-mut" --name mut --epochs 6 >"$work/mut.log" 2>&1 &
pid=$!
for ((t = 0; t < 3000; t++)); do
  grep -q "step 1/" "$work/mut.log" 2>/dev/null && break
  sleep 0.02
done
mapfile -t names < <(grep -v '^#' "$work/pets-mut/annotations/trainval.txt" | awk '{print $1}' | head -6)
rm -f "$work/pets-mut/images/${names[0]}.jpg" "$work/pets-mut/images/${names[1]}.jpg"
truncate -s 100 "$work/pets-mut/images/${names[2]}.jpg"
head -c 300 /dev/urandom >"$work/pets-mut/annotations/trimaps/${names[3]}.png"
wait "$pid"
rc=$?
warned=$(grep -cE "(replacing|skipping) sample" "$work/mut.log")
if ((rc == 0)) && ((warned >= 1)); then
  say "data vanishing/corrupt mid-run: run finished (exit 0), $warned warning(s): \"$(grep -oE '(replacing|skipping) sample.*' "$work/mut.log" | head -1 | cut -c1-100)\""
else
  fail "data vanishing/corrupt mid-run: rc $rc, $warned warnings (log $work/mut.log)"
fi

# ---- 5. a killed rank (ranks started separately, as torchrun does) ends the other with an error naming it (Gloo: under
# NCCL, ProcessGroupNCCL's watchdog ends the process itself after the timeout, without petseg's message)
port=$((20000 + RANDOM % 20000))
for r in 0 1; do
  env RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$petseg" --threads 1 train "${common[@]}" --name dist --epochs 50 --distributed --dist-timeout 30 --backend gloo \
    >"$work/dist$r.log" 2>&1 &
  pids[$r]=$!
done
for ((t = 0; t < 3000; t++)); do
  grep -q "step 1/" "$work/dist0.log" 2>/dev/null && break
  sleep 0.02
done
sleep 2
kill -9 "${pids[1]}"
start=$(date +%s)
timeout 120 tail --pid="${pids[0]}" -f /dev/null
wait "${pids[0]}"
rc=$?
took=$(($(date +%s) - start))
if ((rc != 0)) && grep -q "rank(s) no longer responding: 1" "$work/dist0.log"; then
  say "killed rank: rank 0 exited $rc after ${took} s (timeout 30 s) naming rank 1: \"$(grep -o 'error: .*' "$work/dist0.log" | cut -c1-110)\""
else
  fail "killed rank: rc $rc after ${took} s (log $work/dist0.log)"
fi

if ((failures == 0 && own_work)); then
  rm -rf "$work"
  say "summary: 0 scenario(s) failed, 0 run(s) lost data; work folder $work removed"
else
  say "summary: $failures scenario(s) failed, $lost run(s) lost data; work folder $work"
fi
((failures == 0))
