#!/usr/bin/env bash
# On the GPU machine, after scripts/device/build.sh halo_cli: batched serving at 32K context
# (issue 17): decode tokens/s and memory for batch 1..64, Qwen3-1.7B against HypeNet-2B
# dimensions (random weights, bf16, CUDA-graph decode). Qwen3's KV cache is 112 KiB a token
# (3.8 GB a sequence at 32K, 240 GB for 64); HypeNet's attention layers hold about a quarter of
# it and its lightning layers a fixed state, so it should keep scaling where Qwen3 runs out.
# Rows: $OUT/serving.{json,md,png}; a batch that does not fit is a row marked out of memory.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
halo=${HALO_BUILD_DIR:-$root/build-cuda}/bin/halo
out=${OUT:-$root/device-out}
mkdir -p "$out"
batches=${BATCHES:-1,2,4,8,16,32,64}
"$halo" bench inference --arch qwen3-1.7b --contexts 32K --batch "$batches" --decode-tokens 8 --out "$out/serving"
"$halo" bench inference --arch hypenet-2b --contexts 32K --batch "$batches" --decode-tokens 8 --out "$out/serving" \
  --append
