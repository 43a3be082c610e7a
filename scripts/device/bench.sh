#!/usr/bin/env bash
# On the GPU machine, after scripts/device/build.sh: the attention-kernel sweep (bf16 inputs,
# H=16, D=128 as in docs/ANCHORS.md): chunked lightning attention against causal SDPA (flash)
# over (B, T) shapes, plus the quadratic naive form at the short ones, forward and
# forward+backward. All rows go to $OUT/kernels.{json,md,png} (three files).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
halo=${HALO_BUILD_DIR:-$root/build-cuda}/bin/halo
out=${OUT:-$root/device-out}
mkdir -p "$out"
"$halo" bench kernels --device cuda --shapes "${SHAPES:-8x512,4x2K,4x4K,2x8K,4x16K,1x64K}" --impl chunked,sdpa \
  --repeat 5 --out "$out/kernels"
"$halo" bench kernels --device cuda --shapes 8x512,4x2K,4x4K --impl naive --repeat 5 --out "$out/kernels" --append
