#!/usr/bin/env bash
# Downloads end to end with no internet: a mirror server of the test's own on 127.0.0.1 (tests/python/
# mirror_server.py) serves a synthetic set packed as the two real archive names, their MD5SUMS, and a
# torchvision-format weights file under a hash-prefixed name. Checked: download -> verify -> extract -> prepare,
# with the first transfer cut off midway and resumed; a wrong checksum is refused and leaves nothing behind; a
# hostile archive is refused and nothing lands outside the folder; --weights by name lands in torch.hub's cache and
# is used from there without the network; a weights file whose SHA-256 does not match its name is refused.
#   download.sh PETSEG PYTHON WORK
set -uo pipefail
petseg=$1
python=$2
work=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$work"
mkdir -p "$work/www/mirror" "$work/www/bad" "$work/www/hostile"
export PETSEG_CACHE="$work/cache" TORCH_HOME="$work/torch"
unset PETSEG_WEIGHTS_MIRROR
fail() {
  echo "FAILED: $*"
  for f in "$work"/*.log; do echo "--- $f"; tail -5 "$f"; done
  exit 1
}
server=""
trap '[[ -n "$server" ]] && kill "$server" 2>/dev/null' EXIT

# The mirror's files.
"$petseg" synth --out "$work/pets" --count 40 --min-side 64 --max-side 96 >/dev/null 2>&1 || fail "synth"
www=$work/www
tar -czf "$www/mirror/images.tar.gz" -C "$work/pets" images
tar -czf "$www/mirror/annotations.tar.gz" -C "$work/pets" annotations
(cd "$www/mirror" && md5sum images.tar.gz annotations.tar.gz >MD5SUMS)
"$petseg" -q export --format state-dict --backbone resnet50 --num-classes 21 --aux-loss --out "$work/w.pth" || fail "export"
weights=deeplabv3_resnet50_coco-$(sha256sum "$work/w.pth" | cut -c1-8).pth
cp "$work/w.pth" "$www/mirror/$weights"
cp "$work/w.pth" "$www/mirror/deeplabv3_resnet50_coco-deadbeef.pth"
cp "$www/mirror/"*.tar.gz "$www/bad/"
(cd "$www/bad" && md5sum images.tar.gz annotations.tar.gz | sed '1s/^./0/' | sed '1s/^00/11/' >MD5SUMS)
cp "$www/mirror/images.tar.gz" "$www/hostile/"
"$python" - "$www/hostile/annotations.tar.gz" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as t:
    for name in ["annotations/list.txt", "annotations/../../evil"]:
        info = tarfile.TarInfo(name)
        info.size = 2
        t.addfile(info, io.BytesIO(b"x\n"))
PY
(cd "$www/hostile" && md5sum images.tar.gz annotations.tar.gz >MD5SUMS)

"$python" "$here/tests/python/mirror_server.py" --root "$www" --log "$work/server.log" \
  --cut "mirror/images.tar.gz:$(($(stat -c %s "$www/mirror/images.tar.gz") / 2))" >"$work/port" &
server=$!
for _ in $(seq 1 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
url=http://127.0.0.1:$(cat "$work/port")

# 1. download, cut off midway and resumed; verify; extract; prepare.
"$petseg" data download --out "$work/d1" --mirror "$url/mirror" >"$work/d1.log" 2>&1 || { cat "$work/d1.log"; fail "download"; }
grep -q "mirror/images.tar.gz range=bytes=[0-9]*- status=206" "$work/server.log" || fail "the cut transfer was not resumed with a range request"
grep -q "resuming" "$work/d1.log" || fail "the download did not say it resumed"
[[ $(ls "$work/d1/images" | wc -l) -eq $(ls "$work/pets/images" | wc -l) ]] || fail "images missing after extraction"
[[ -f "$work/d1/petseg_manifest.json" && -f "$work/d1/annotations/trainval.txt" ]] || fail "not prepared"
[[ -f "$work/d1/images.tar.gz" && ! -e "$work/d1/images.tar.gz.part" ]] || fail "archive not kept in place"
# Again: nothing fetched twice.
lines=$(wc -l <"$work/server.log")
"$petseg" data download --out "$work/d1" --mirror "$url/mirror" >"$work/d1b.log" 2>&1 || fail "second download"
[[ $(grep -c "tar.gz" <(tail -n +$((lines + 1)) "$work/server.log")) -eq 0 ]] || fail "archives fetched twice"

# 2. a wrong checksum: refused, nothing left behind.
if "$petseg" data download --out "$work/d2" --mirror "$url/bad" >"$work/d2.log" 2>&1; then fail "a wrong MD5 was accepted"; fi
grep -q "MD5 is .*expected" "$work/d2.log" || { cat "$work/d2.log"; fail "no MD5 error"; }
[[ -z "$(ls -A "$work/d2")" ]] || fail "a refused download left $(ls -A "$work/d2")"

# 3. a hostile archive: refused naming the entry, nothing outside the folder.
if "$petseg" data download --out "$work/d3" --mirror "$url/hostile" >"$work/d3.log" 2>&1; then fail "path traversal accepted"; fi
grep -q 'refusing entry "annotations/../../evil"' "$work/d3.log" || { cat "$work/d3.log"; fail "no refusal naming the entry"; }
[[ ! -e "$work/evil" && ! -e "$work/d3/annotations" && ! -e "$work/d3/.petseg-extract-annotations" ]] ||
  fail "the hostile archive left files"

# 4. weights by name into torch.hub's cache; a name whose hash does not match is refused.
cache=$TORCH_HOME/hub/checkpoints
if "$petseg" -q export --weights deeplabv3_resnet50_coco-deadbeef.pth --mirror "$url/mirror" --backbone resnet50 \
   --num-classes 3 --aux-loss --format state-dict --out "$work/x.pth" >"$work/bad-hash.log" 2>&1; then
  fail "a file whose SHA-256 does not match its name was accepted"
fi
grep -q "SHA-256 starts with" "$work/bad-hash.log" || { cat "$work/bad-hash.log"; fail "no hash error"; }
[[ ! -e "$cache/deeplabv3_resnet50_coco-deadbeef.pth" ]] || fail "a refused weights file was cached"
"$petseg" train --data "$work/d1" --weights "$weights" --mirror "$url/mirror" --backbone resnet50 --aux-loss \
  --runs-dir "$work/runs" --name w --epochs 1 --max-steps 2 --eval-batches 1 --image-size 48 --batch-size 2 \
  --num-workers 0 >"$work/train.log" 2>&1 || { tail -20 "$work/train.log"; fail "train with --weights by name"; }
grep -q "loaded .* tensors from $cache/$weights" "$work/train.log" || fail "the weights did not come from the cache"
kill "$server"
server=""
"$petseg" -q export --weights "$weights" --backbone resnet50 --num-classes 3 --aux-loss --format state-dict \
  --out "$work/e.pth" || fail "the cached weights were not used without the network"
echo "downloads: OK"
