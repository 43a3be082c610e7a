#!/usr/bin/env bash
# On the GPU machine, after scripts/device/build.sh: inference (Qwen3-1.7B and HypeNet-2B
# dimensions, random weights) against context length, and training steps of stages 1-3.
# Rows go to $OUT/inference.{json,md,png} and $OUT/training.{json,md,png} (six files).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
halo=${HALO_BUILD_DIR:-$root/build-cuda}/bin/halo
out=${OUT:-$root/device-out}
mkdir -p "$out"
"$halo" bench inference --arch qwen3-1.7b --contexts ${QWEN_CONTEXTS:-4K,32K,128K} --out "$out/inference"
"$halo" bench inference --arch hypenet-2b --contexts ${HYPENET_CONTEXTS:-4K,32K,128K,256K,512K,1M} \
  --out "$out/inference" --append
"$halo" bench inference --arch hypenet-2b --contexts 32K --batch 8 --out "$out/inference" --append
"$root/scripts/device/bench_training.sh" "$out/training"
