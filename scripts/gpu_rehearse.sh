#!/usr/bin/env bash
# The GPU check rehearsed here, where nothing of this machine can help it: builds the pack (scripts/gpu_pack.sh),
# then runs `scripts/gpu_check.sh --small` in a fresh root that has what the GPU machine has and lacks what it lacks:
# a Debian minbase system (debootstrap) with python3 and no compiler, no -dev package, no cmake; `python3` on PATH a
# virtual environment at /opt/torch/.venv (another path than ours) holding the pinned torch; an empty HOME; no network
# but loopback (its own network namespace); the working tree copied in as the device tool copies it, with .gpu-pack.
# It differs from the GPU run only in the device (CPU) and the bench sizes. Needs root (namespaces, chroot).
#   scripts/gpu_rehearse.sh OUT_DIR [--budget SECONDS]   (scripts/gpu_check.sh --rehearse OUT_DIR ... runs this)
# The base root is made once per machine (~/.cache/petseg/rehearsal, about 250 MB, from Debian's packages).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu_rehearse.sh OUT_DIR [--budget SECONDS]}
shift
check_args=("$@")  # e.g. --budget 120
mkdir -p "$out"
out=$(cd "$out" && pwd)
[[ $(id -u) -eq 0 ]] || { echo "gpu_rehearse: needs root (namespaces and chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null 2>&1 || true
for tool in debootstrap unshare chroot ip; do
  command -v "$tool" >/dev/null || { echo "gpu_rehearse: needs $tool (apt-get install debootstrap iproute2)" >&2; exit 1; }
done
python=${PETSEG_PYTHON:-$(scripts/pyenv.sh)}
site=$("$python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
t0=$SECONDS

echo "== 1. the pack (built here)"
scripts/gpu_pack.sh .gpu-pack
echo "   pack: $(($SECONDS - t0)) s"

echo "== 2. a bare root"
cache=${PETSEG_REHEARSAL_CACHE:-$HOME/.cache/petseg/rehearsal}
base=$cache/bookworm-minbase-python3
if [[ ! -f $base/.complete ]]; then
  mkdir -p "$cache"
  rm -rf "$base.tmp"
  # The mirror this machine's apt already uses.
  mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  [[ -n $mirror ]] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
  debootstrap --variant=minbase --include=python3 bookworm "$base.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  touch "$base.tmp/.complete"
  mv "$base.tmp" "$base"
fi
root=${PETSEG_REHEARSAL_ROOT:-/tmp/petseg-rehearsal-root}
rm -rf "$root"
cp -a "$base" "$root"
for tool in cc gcc g++ c++ cmake nvcc make; do
  if chroot "$root" sh -c "command -v $tool" >/dev/null 2>&1; then echo "gpu_rehearse: the root has $tool" >&2; exit 1; fi
done
# python3 on PATH: a virtual environment at the GPU machine's path, whose site-packages is the pinned torch.
chroot "$root" /usr/bin/python3 -m venv --without-pip /opt/torch/.venv
venv_site=/opt/torch/.venv/lib/python$pyver/site-packages
mkdir -p "$root$venv_site" "$root/work/repo" "$root/out"
rm -rf "$root/root" && mkdir -m 700 "$root/root"  # an empty HOME
# What every container is given and debootstrap writes none of: localhost and the machine's own name resolve
# (torchrun --standalone meets its workers at the hostname). This machine's own file, as a container gets one.
cp /etc/hosts "$root/etc/hosts"
grep -qw "$(hostname)" "$root/etc/hosts" || printf '127.0.1.1\t%s\n' "$(hostname)" >>"$root/etc/hosts"
grep -qw localhost "$root/etc/hosts" || printf '127.0.0.1\tlocalhost\n' >>"$root/etc/hosts"
# The working tree as the device tool copies it (tracked and untracked-not-ignored files), and the carried pack.
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [[ -f $f ]] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -xf - -C "$root/work/repo"
mkdir "$root/work/repo/.gpu-pack"
cp .gpu-pack/MANIFEST .gpu-pack/pack.tar.gz "$root/work/repo/.gpu-pack/"
echo "   root: $root ($(du -sh "$root" | cut -f1) with the pack), $(($SECONDS - t0)) s"

echo "== 3. scripts/gpu_check.sh --small in it (no network, empty HOME, python3 = /opt/torch/.venv)"
rc=0
# A mount namespace keeps the mounts to this run; the network namespace has only loopback.
unshare --mount --net --pid --fork --mount-proc bash -euo pipefail -c '
  root=$1 site=$2 venv_site=$3
  mount --make-rprivate /
  ip link set lo up
  mount --bind "$site" "$root$venv_site" && mount -o remount,bind,ro "$root$venv_site"
  # The GPU machine'"'"'s venv holds torch, torchvision, tensorboard, onnx and onnxruntime (what the tests use), not
  # segmentation-models-pytorch or torchmetrics: the tests that compare with them skip there, saying so, and here too.
  for hidden in segmentation_models_pytorch torchmetrics; do
    if [[ -d "$root$venv_site/$hidden" ]]; then mount -t tmpfs -o size=1m,ro tmpfs "$root$venv_site/$hidden"; fi
  done
  mount -t proc proc "$root/proc"
  mount --bind /dev "$root/dev"
  mount -t tmpfs -o size=8g tmpfs "$root/dev/shm"
  mount -t sysfs -o ro sysfs "$root/sys"
  exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/opt/torch/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c "cd /work/repo && scripts/gpu_check.sh --small \"\$@\" /out" check "${@:4}"
' rehearse "$root" "$site" "$venv_site" "${check_args[@]}" || rc=$?
cp -a "$root/out/." "$out/"
echo "== rehearsal: exit $rc in $(($SECONDS - t0)) s; results in $out ($(ls "$out" | wc -l) files):"
cat "$out/summary.txt" 2>/dev/null || true
exit $rc
