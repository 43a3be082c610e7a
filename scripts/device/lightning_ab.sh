#!/usr/bin/env bash
# On the GPU machine, after scripts/device/build.sh: times the fused lightning kernels (fwd and
# fwd+bwd at LIGHTNING_SHAPES; H=16, D=128, bf16, median of 20) against earlier versions of some
# source files on the same card, in the order current, earlier, current. The argument is a
# carried folder holding the earlier files at their paths in the repository, e.g. made with
#   for f in src/ops/lightning_chunk_cuda.cu src/ops/lightning_chunk_cuda.h src/ops/lightning_attention.cpp; do
#     mkdir -p build-ab/$(dirname $f); git show REV:$f > build-ab/$f; done
# The current sources are put back at the end. Tables go to stdout.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${HALO_BUILD_DIR:-$root/build-cuda}
earlier=$(cd "$1" && pwd)
shapes=${LIGHTNING_SHAPES:-8x512,4x16K,1x64K}
kept=$(mktemp -d)
files=$(cd "$earlier" && find . -type f | sed 's|^\./||')
for f in $files; do mkdir -p "$kept/$(dirname "$f")"; cp "$root/$f" "$kept/$f"; done
restore() { for f in $files; do cp "$kept/$f" "$root/$f"; done; }
trap restore EXIT
bench() {
  echo "== $1"
  cmake --build "$build" --target halo_cli > "$kept/build.log" 2>&1 || { tail -n 20 "$kept/build.log"; exit 1; }
  "$build/bin/halo" bench kernels --device cuda --shapes "$shapes" --impl chunked --chunk 64 --repeat 20 | tail -n +3
}
bench current
for f in $files; do cp "$earlier/$f" "$root/$f"; done
bench earlier
restore
bench current
