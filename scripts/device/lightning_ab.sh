#!/usr/bin/env bash
# On the GPU machine, after scripts/device/build.sh: times the fused lightning kernels (fwd and
# fwd+bwd at LIGHTNING_SHAPES; H=16, D=128, bf16, median of 20) against an earlier
# src/lightning_chunk_kernels.cu on the same card, in the order current, earlier, current. The
# argument is the earlier file, carried (e.g. made with
#   git show REV:src/lightning_chunk_kernels.cu > build-ab/earlier.cu);
# the current source is put back at the end. Tables go to stdout.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${HALO_BUILD_DIR:-$root/build-cuda}
earlier=$1
shapes=${LIGHTNING_SHAPES:-8x512,4x16K,1x64K}
src=$root/src/lightning_chunk_kernels.cu
kept=$(mktemp)
cp "$src" "$kept"
trap 'cp "$kept" "$src"' EXIT
bench() {
  echo "== $1"
  cmake --build "$build" --target halo > "$kept.log" 2>&1 || { tail -n 20 "$kept.log"; exit 1; }
  "$build/bin/halo" bench kernels --device cuda --shapes "$shapes" --impl chunked --chunk 64 --repeat 20 | tail -n +3
}
bench current
cp "$earlier" "$src"
bench earlier
cp "$kept" "$src"
bench current
