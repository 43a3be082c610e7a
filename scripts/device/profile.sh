#!/usr/bin/env bash
# On the GPU machine, after scripts/device/build.sh: one step of each kind recorded with the
# Kineto profiler (random weights, bf16): a HypeNet-2B decode step at 128K context, a Qwen3-1.7B
# decode step at 32K, and a stage-2 training step (B=12, T=512). The summaries (top kernels,
# launches, GPU busy vs wall time) go to $OUT/profile.txt, the chrome traces (gzipped; Perfetto
# and chrome://tracing read them) to $OUT/*.json.gz: four files.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
halo=${HALO_BUILD_DIR:-$root/build-cuda}/bin/halo
out=${OUT:-$root/device-out}
mkdir -p "$out"
: > "$out/profile.txt"
"$halo" bench inference --arch hypenet-2b --contexts 128K --decode-tokens 8 \
  --profile "$out/decode-hypenet-2b-128k.json" | tee -a "$out/profile.txt"
"$halo" bench inference --arch qwen3-1.7b --contexts 32K --decode-tokens 8 \
  --profile "$out/decode-qwen3-1.7b-32k.json" | tee -a "$out/profile.txt"
"$halo" bench training --stage 2 --batch 12 --seq-len 512 --steps 2 \
  --profile "$out/train-stage2-12x512.json" | tee -a "$out/profile.txt"
gzip -f "$out/decode-hypenet-2b-128k.json" "$out/decode-qwen3-1.7b-32k.json" "$out/train-stage2-12x512.json"
