#!/usr/bin/env bash
# Builds here, against the pinned wheel (the same torch 2.11.0+cu130 the GPU machine has), everything the GPU check
# runs there, so that nothing is compiled on the GPU machine: writes .gpu-pack/ (ignored by git; the device tool's
# `carry`) holding MANIFEST and pack.tar.gz (about 33 MB, well under the 64 MiB a device call carries; about 80 MB
# unpacked, which scripts/gpu_check.sh does there in a few seconds), whose folders are:
#   tree/    the checkout's files (tracked and untracked-not-ignored, as the device tool copies them): the tests'
#            scripts and data, the Python references
#   build/   petseg, the test binaries and ctest's test lists, built for the fixed path below
#   bin/     ctest; lib/ the shared libraries the binaries need that are neither torch's, CUDA's nor glibc's
#            (libturbojpeg, libpng, ctest's own), each a plain file under its soname: no symlink leaves the pack
#   MANIFEST what was built, from which commit, and what the binaries need of the machine (glibc, libstdc++)
# The binaries are built for /tmp/petseg-gpu-pack: scripts/gpu_check.sh points that path at the pack it runs from
# and finds torch's libraries through that machine's python3, never through a path of this machine.
#   scripts/gpu_pack.sh [OUT]      OUT defaults to .gpu-pack
set -euo pipefail
cd "$(dirname "$0")/.."
readonly root=/tmp/petseg-gpu-pack
out=${1:-.gpu-pack}
python=${PETSEG_PYTHON:-$(scripts/pyenv.sh)}
jobs=${PETSEG_JOBS:-$(nproc)}
[[ ! -L $root ]] || { echo "gpu_pack: $root is a link (a pack is being run from here); remove it first" >&2; exit 1; }
command -v patchelf >/dev/null || { apt-get install -y -qq patchelf >/dev/null 2>&1 || true; }
command -v patchelf >/dev/null || { echo "gpu_pack: needs patchelf (apt-get install patchelf)" >&2; exit 1; }

site=$("$python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
torch_prefix=$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
torch_version=$("$python" -c 'import torch; print(torch.__version__)')

# 1. The tree, as the device tool copies a working tree.
rm -rf "$root/tree"
mkdir -p "$root/tree"
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [[ -f $f ]] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -xf - -C "$root/tree"

# 2. The build: the checkout's sources (so ccache reuses ./build's objects), the tree's path compiled in, no
# PETSEG_PYTHON (the tests and benches then run the `python3` on PATH: that machine's), no downloads (libcurl and
# libarchive would bring 30 libraries along; `data download` says it is not built in).
# One pack build per machine at the fixed path: a build of another checkout there is started over (ccache keeps it quick).
if [[ -f $root/build/CMakeCache.txt ]] &&
   ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$(pwd)" "$root/build/CMakeCache.txt"; then
  rm -rf "$root/build"
fi
cmake -S . -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DPETSEG_PYTHON= -DCMAKE_PREFIX_PATH="$torch_prefix" \
  -DPETSEG_RUNTIME_SOURCE_DIR="$root/tree" -DPETSEG_WITH_FETCH=OFF -DPETSEG_BUILD_BENCH=OFF >/dev/null
cmake --build "$root/build" --parallel "$jobs"

# 3. The pack, staged beside the build, then archived.
stage=$root/pack
out_final=$out
out=$stage
rm -rf "$out"
mkdir -p "$out/build" "$out/bin" "$out/lib"
cp -a "$root/tree" "$out/tree"
binaries=()
while IFS= read -r -d '' f; do
  if [[ $f == *.cmake ]]; then
    mkdir -p "$out/build/$(dirname "$f")" && cp "$root/build/$f" "$out/build/$f"
  elif head -c 4 "$root/build/$f" | grep -q ELF && [[ -x $root/build/$f && $f != *.so* && $f != *CMakeFiles* ]]; then
    mkdir -p "$out/build/$(dirname "$f")"
    strip --strip-unneeded -o "$out/build/$f" "$root/build/$f"
    binaries+=("$out/build/$f")
  fi
done < <(cd "$root/build" && find . -path ./CMakeFiles -prune -o \( -name CTestTestfile.cmake -o -name '*_tests.cmake' \
  -o -name '*_include.cmake' -o -name '*_labels.cmake' -o -type f -perm -u+x \) -type f -print0 | sed -z 's|^\./||')
cp "$(command -v ctest)" "$out/bin/ctest"
binaries+=("$out/bin/ctest")

# Libraries: what ldd resolves here, less what the other machine has by construction: glibc's own, libstdc++ and
# libgcc_s (the system's, newer there), the CUDA driver, and everything torch's wheels bring (torch/lib, nvidia/*).
provided() {
  local name=$1
  case $name in
    linux-vdso.so* | ld-linux*.so* | libc.so* | libm.so* | libpthread.so* | libdl.so* | librt.so* | libresolv.so* | \
      libutil.so* | libanl.so* | libmvec.so* | libnsl.so* | libBrokenLocale.so* | libthread_db.so* | \
      libstdc++.so* | libgcc_s.so* | libcuda.so*) return 0 ;;
  esac
  compgen -G "$site/torch/lib/$name" >/dev/null || compgen -G "$site/nvidia/*/lib/$name" >/dev/null
}
declare -A bundled=()
for bin in "${binaries[@]}"; do
  while read -r name _ path _; do
    [[ $name == *.so* ]] || continue
    provided "$name" && continue
    [[ -n ${bundled[$name]:-} ]] && continue
    [[ -f $path ]] || { echo "gpu_pack: $bin needs $name, which ldd cannot find here" >&2; exit 1; }
    cp -L "$path" "$out/lib/$name"  # the file itself, never a link (Debian's can point outside any prefix)
    bundled[$name]=1
  done < <(LD_LIBRARY_PATH="$site/torch/lib" ldd "$bin" | sed -n 's/^\t\([^ ]*\) => \([^ ]*\) .*/\1 x \2 x/p')
done

# The pack's libraries are found through each binary's own DT_RPATH (which, unlike RUNPATH, also serves the libraries
# they load in turn), never through LD_LIBRARY_PATH: the python3 and the tools the tests start there keep that
# machine's own libssl, libexpat, libz... This machine's paths (its torch, /usr/local/cuda) leave the binaries.
for bin in "${binaries[@]}"; do patchelf --force-rpath --set-rpath "$root/lib" "$bin"; done

# What the binaries need of the machine: the newest glibc and libstdc++ symbol versions they reference.
needs() { objdump -T "${binaries[@]}" "$out"/lib/* 2>/dev/null | grep -o "$1_[0-9.]*" | sort -uV | tail -1; }
{
  echo "petseg GPU pack, built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "commit: $(git rev-parse HEAD)$([[ -n $(git status --porcelain) ]] && echo ' (with uncommitted changes)')"
  echo "torch: $torch_version (the wheel built against; the GPU machine must have the same)"
  echo "needs: $(needs GLIBC) $(needs GLIBCXX)"
  echo "bundled: ${!bundled[*]}"
} >"$out/MANIFEST"
rm -rf "$out_final"
mkdir -p "$out_final"
cp "$out/MANIFEST" "$out_final/MANIFEST"
tar -C "$out" -czf "$out_final/pack.tar.gz" .
echo "gpu_pack: $out_final: ${#binaries[@]} binaries, ${#bundled[@]} libraries, $(du -sh "$out" | cut -f1) in" \
  "$(du -sh "$out_final/pack.tar.gz" | cut -f1)"
