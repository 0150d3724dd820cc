#!/usr/bin/env bash
# Renders a run's report.html in headless Chromium (Debian's `chromium`) and saves a PNG screenshot next to it,
# proving the page renders in a real browser with no network. Usage: scripts/screenshot_report.sh runs/<name>
set -euo pipefail
run=${1:?usage: $0 runs/<name>}
[[ -f "$run/report.html" ]] || { echo "no report.html in $run" >&2; exit 1; }
browser=$(command -v chromium || command -v chromium-browser || true)
[[ -n "$browser" ]] || { echo "chromium is not installed (apt-get install chromium)" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
  --window-size=1100,1900 --screenshot="$(realpath "$run")/report.png" "file://$(realpath "$run")/report.html" \
  >/dev/null 2>&1
test -s "$run/report.png"
echo "$run/report.png"
