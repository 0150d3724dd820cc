#!/usr/bin/env bash
# The command lines scripts/gpu_check.sh hands to petseg (both modes) parse: an option renamed in petseg and not in
# the check would otherwise surface only on a lent GPU machine (as `bench ladder --workers` once did, in rehearsal).
set -euo pipefail
petseg=$1
check=$2
n=0
while IFS= read -r line; do
  eval "$line"  # model_args=(...) or ladder_args=(...)
  if [[ $line == *model_args=* ]]; then
    "$petseg" --print-plan bench model "${model_args[@]}" >/dev/null
  else
    "$petseg" --print-plan bench ladder "${ladder_args[@]}" >/dev/null
  fi
  n=$((n + 1))
done < <(grep -E '^\s*(model|ladder)_args=\(' "$check")
[[ $n -eq 4 ]] || { echo "expected 4 command lines in $check, found $n"; exit 1; }
echo "gpu_check.sh's command lines: OK"
