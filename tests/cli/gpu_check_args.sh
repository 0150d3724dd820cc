#!/usr/bin/env bash
# The command lines scripts/gpu_check.sh hands to petseg (both modes) parse: an option renamed in petseg and not in
# the check would otherwise surface only on a lent GPU machine (as `bench ladder --workers` once did, in rehearsal).
set -euo pipefail
petseg=$1
check=$2
n=0
while IFS= read -r line; do
  eval "$line"  # bench_headline=(bench model ...), bench_ladder=(bench ladder ...), ...
  name=${line%%=*}
  name=${name//[[:space:]]/}
  declare -n command_line=$name
  "$petseg" --print-plan "${command_line[@]}" >/dev/null || { echo "$name does not parse: ${command_line[*]}"; exit 1; }
  # The files each stage adds (--json, --ceilings, --compile-timeout) parse too.
  "$petseg" --print-plan "${command_line[@]}" --json /tmp/x.json >/dev/null
  unset -n command_line
  n=$((n + 1))
done < <(grep -E '^\s*bench_[a-z0-9]+=\(' "$check")
[[ $n -eq 8 ]] || { echo "expected 8 command lines in $check (4 per mode), found $n"; exit 1; }
"$petseg" --print-plan bench model --ceilings /tmp/facts.json --compile-timeout 100 >/dev/null
echo "gpu_check.sh's command lines: OK"
