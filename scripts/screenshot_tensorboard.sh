#!/usr/bin/env bash
# Serves a runs folder with the pinned environment's TensorBoard on 127.0.0.1 and saves a headless-Chromium
# screenshot of its scalars page: what `tensorboard --logdir runs/` shows of petseg's event files.
#   scripts/screenshot_tensorboard.sh RUNS_DIR OUT.png [FILTER]     FILTER: TensorBoard's tag filter (a regex)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=$(realpath "${1:?usage: $0 RUNS_DIR OUT.png [FILTER]}")
out=$(realpath -m "${2:?usage: $0 RUNS_DIR OUT.png [FILTER]}")
filter=${3:-}
browser=$(command -v chromium || command -v chromium-browser || true)
[[ -n "$browser" ]] || { echo "chromium is not installed (apt-get install chromium)" >&2; exit 2; }
python=$(scripts/pyenv.sh)
port=$("$python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
profile=$(mktemp -d)
"$python" -m tensorboard.main --logdir "$runs" --host 127.0.0.1 --port "$port" >"$profile/tensorboard.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$profile"' EXIT
for _ in $(seq 1 120); do
  "$python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/data/runs', timeout=1)" \
    2>/dev/null && break
  sleep 0.5
done
url="http://127.0.0.1:$port/?darkMode=false#scalars&_smoothingWeight=0&_ignoreYOutliers=false${filter:+&tagFilter=$filter}"
"$browser" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile/chromium" --hide-scrollbars \
  --window-size=1400,1000 --virtual-time-budget=20000 --screenshot="$out" "$url" >/dev/null 2>&1
test -s "$out"
echo "$out"
