#!/usr/bin/env bash
# Export time and file size of every registered model: `petseg export` of each (random weights, 3 classes) as ONNX
# (fp32, and --fp16), and as TorchScript (traced at --image-size 520, export's default), each whole command timed
# (start-up and building the model included) REPEATS times, the repeats taken in turn over every model and format,
# the median reported; bench/results/export.json (seconds, sizes, the machine: bench/python/environment.py) and
# bench/results/export.md (the table for docs/deployment.md).
#   bench/export_sizes.sh [REPEATS] [MODEL ...]      (default 3, every model of `petseg export --model`)
# Environment: THREADS (intra-op threads; default: the cores), RESULTS (the JSON's path; the table beside it as .md),
# PETSEG (build/apps/petseg), PYTHON (the pinned environment).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
shift || true
petseg=${PETSEG:-build/apps/petseg}
python=${PYTHON:-$(scripts/pyenv.sh)}
threads=${THREADS:-$(nproc)}
results=${RESULTS:-bench/results/export.json}
models=("$@")
if [[ ${#models[@]} -eq 0 ]]; then  # the registry's names, as --model lists them
  read -r -a models < <("$petseg" export --help | grep -o -- '--model TEXT:{[^}]*}' | sed 's/.*{\(.*\)}/\1/' | tr , ' ')
fi
[[ ${#models[@]} -gt 0 ]] || { echo "export_sizes: no models (petseg export --help lists none?)" >&2; exit 1; }
formats=(onnx onnx-fp16 torchscript)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# export MODEL FORMAT FILE: one whole `petseg export`.
export_one() {
  local args=(--format "$2")
  case $2 in
    onnx-fp16) args=(--format onnx --fp16) ;;
  esac
  "$petseg" -q --threads "$threads" export --model "$1" --num-classes 3 "${args[@]}" --out "$3" --force
}

lines="$work/lines.txt"
for i in $(seq 1 "$repeats"); do
  for m in "${models[@]}"; do
    for f in "${formats[@]}"; do
      file="$work/$m-$f"
      start=$EPOCHREALTIME
      export_one "$m" "$f" "$file"
      seconds=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}')
      bytes=$(stat -c %s "$file")
      echo "$m $f $seconds $bytes" >>"$lines"
      echo "run $i: $m $f: $seconds s, $bytes bytes"
      rm -f "$file"
    done
  done
done

environment=$("$python" bench/python/environment.py --petseg "$petseg" --threads "$threads")
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain 2>/dev/null) ]] || commit+="-dirty"
mkdir -p "$(dirname "$results")"
"$python" - "$lines" "$results" "$environment" "$repeats" "$threads" "$*" "$commit" <<'EOF'
import json, statistics, sys
lines, results, environment, repeats, threads, asked, commit = sys.argv[1:]
FORMATS = {"onnx": "ONNX fp32", "onnx-fp16": "ONNX fp16", "torchscript": "TorchScript"}
runs = {}
for line in open(lines):
    model, fmt, seconds, size = line.split()
    entry = runs.setdefault(model, {}).setdefault(fmt, {"seconds": [], "bytes": int(size)})
    entry["seconds"].append(float(seconds))
    if entry["bytes"] != int(size):
        sys.exit(f"export_sizes: {model} {fmt} wrote {size} bytes, before {entry['bytes']}")
for model in runs.values():
    for entry in model.values():
        entry["median_seconds"] = statistics.median(entry["seconds"])
        entry["megabytes"] = entry["bytes"] / 1e6
env = json.loads(environment)
doc = {
    "benchmark": "export",
    "commit": commit,
    "command": f"bench/export_sizes.sh {repeats}" + (f" {asked}" if asked else ""),
    "what": "whole `petseg export --model M --num-classes 3` commands (start-up, the model built with random weights, "
            "the file written): --format onnx (opset 17, BatchNorm folded, dynamic N/H/W), --format onnx --fp16, "
            "--format torchscript (traced at 520x520, not --optimize); median of the repeats",
    "formats": FORMATS, "repeats": int(repeats), "threads": int(threads),
    "models": runs, "environment": env,
}
with open(results, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
table = ["| model | " + " | ".join(f"{name}: s / MB" for name in FORMATS.values()) + " |",
         "|---|" + "---:|" * len(FORMATS)]
for model, entries in runs.items():
    cells = [f"{entries[k]['median_seconds']:.2f} / {entries[k]['megabytes']:.1f}" if k in entries else "–"
             for k in FORMATS]
    table.append(f"| `{model}` | " + " | ".join(cells) + " |")
table.append("")
table.append(f"Stamp: commit {commit}, {env['date']}; {env['cpu_model']}, {env['cores']} cores, {threads} "
             f"threads; petseg {env['petseg_version']}, libtorch {env['libtorch_version']}; `{doc['command']}` "
             f"(`{results}`).")
text = "\n".join(table) + "\n"
with open(results.rsplit(".", 1)[0] + ".md", "w") as f:
    f.write(text)
print(text, end="")
EOF
