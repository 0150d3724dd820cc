#!/usr/bin/env bash
# Every petseg command line the documentation shows parses: an option renamed or dropped in apps/options.cpp and not
# in the docs fails here, not in a reader's terminal. Reads README.md and docs/*.md; takes each line of a fenced code
# block, and each inline code span, that starts with `petseg `, `build/apps/petseg ` or `$ petseg ` (lines ending in
# `\` joined with the next), drops a trailing `# comment` and standalone `...` tokens (nothing else is substituted:
# DIR, FILE, runs/<name>/best.pt stay as they are, since --print-plan opens no file), and runs it as
# `PETSEG_BIN --print-plan ARGS`. A line meant to fail (an error message shown on purpose) ends in `# fails: why`
# and must fail. Needs only bash, grep, sed and xargs (it also runs in the GPU check's bare root).
#   tests/cli/docs_command_lines.sh PETSEG_BIN REPO_ROOT
set -uo pipefail
petseg=${1:?usage: docs_command_lines.sh PETSEG_BIN REPO_ROOT}
root=${2:?usage: docs_command_lines.sh PETSEG_BIN REPO_ROOT}
cd "$root" || exit 1
n=0
failures=0

# One command line, from FILE:LINE: parse it, run it through --print-plan, compare with what the docs expect.
check() {
  local where=$1 text=$2 shown=$2 expect_fail=0
  [[ $text =~ [[:space:]]#[[:space:]]*fails: ]] && expect_fail=1
  text=$(sed -E 's/(^|[[:space:]])#.*$//' <<<"$text")  # the shell comment
  local -a words=() args=()
  # xargs splits as a shell does (quotes, backslashes) without expanding anything.
  mapfile -d '' -t words < <(xargs printf '%s\0' <<<"$text" 2>/dev/null || printf '%s\0' '(unsplittable)')
  if ((${#words[@]} < 2)) || [[ ${words[-1]} == '(unsplittable)' ]]; then
    echo "$where: cannot split: $text"
    failures=$((failures + 1))
    return
  fi
  local i=0
  [[ ${words[0]} == '$' ]] && i=1
  for ((i = i + 1; i < ${#words[@]}; i++)); do
    [[ ${words[i]} == '...' ]] || args+=("${words[i]}")
  done
  n=$((n + 1))
  local err rc
  err=$("$petseg" --print-plan "${args[@]}" 2>&1 >/dev/null)
  rc=$?
  if ((expect_fail)) && ((rc == 0)); then
    echo "$where: marked '# fails:' but parses: $shown"
    failures=$((failures + 1))
  elif ((!expect_fail)) && ((rc != 0)); then
    echo "$where: $shown"
    echo "  ${err//$'\n'/$'\n'  }"
    failures=$((failures + 1))
  fi
}

starts_a_command() { [[ $1 =~ ^(\$[[:space:]]+)?(build/apps/)?petseg[[:space:]] ]]; }

files=(README.md docs/*.md)
for file in "${files[@]}"; do
  [[ -f $file ]] || { echo "$file: missing"; failures=$((failures + 1)); continue; }
  in_code=0
  lineno=0
  pending=""
  pending_at=0
  while IFS= read -r line || [[ -n $line ]]; do
    lineno=$((lineno + 1))
    if [[ $line =~ ^[[:space:]]*\`\`\` ]]; then
      in_code=$((1 - in_code))
      pending=""
      continue
    fi
    if ((in_code)); then
      stripped=$(sed -E 's/^[[:space:]]+//' <<<"$line")
      if [[ -n $pending ]]; then
        pending+=" $stripped"
      elif starts_a_command "$stripped"; then
        pending=$stripped
        pending_at=$lineno
      else
        continue
      fi
      if [[ $pending =~ \\[[:space:]]*$ ]]; then
        pending=$(sed -E 's/\\[[:space:]]*$//' <<<"$pending")
        continue
      fi
      check "$file:$pending_at" "$pending"
      pending=""
    else
      # Inline code spans (single backticks; a table's escaped \| is a plain | inside the span).
      while IFS= read -r span; do
        span=${span#\`}
        span=${span%\`}
        span=${span//\\|/|}
        if starts_a_command "$span"; then check "$file:$lineno" "$span"; fi
      done < <(grep -o '`[^`]*`' <<<"$line")
    fi
  done <"$file"
done

# Too few lines means the extraction broke, not that the docs are right.
if ((n < 20)); then
  echo "only $n command lines found in ${files[*]}: the extraction is broken"
  exit 1
fi
if ((failures > 0)); then
  echo "docs' command lines: $failures of $n failed"
  exit 1
fi
echo "docs' command lines: OK ($n lines)"
