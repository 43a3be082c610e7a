#!/usr/bin/env bash
# On the GPU machine, after scripts/device/build.sh: the lightning-attention sweep (ATen
# implementations, bf16 inputs, fp32 state; H=16, D=128 as in docs/ANCHORS.md) at the shapes
# the anchors name. JSON lines go to $OUT/bench-lightning.jsonl.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
halo=${HALO_BUILD_DIR:-$root/build-cuda}/bin/halo
out=${OUT:-$root/device-out}
mkdir -p "$out"
for shape in "8 512" "4 4096" "4 16384" "1 65536"; do
  set -- $shape
  "$halo" bench lightning --device cuda --dtype bfloat16 --batch "$1" --lengths "$2" --heads 16 --head-dim 128 \
    --impl chunked --backward --repeat 5 --json | tee -a "$out/bench-lightning.jsonl"
  if [ "$2" -le 4096 ]; then
    "$halo" bench lightning --device cuda --dtype bfloat16 --batch "$1" --lengths "$2" --heads 16 --head-dim 128 \
      --impl naive --backward --repeat 5 --json | tee -a "$out/bench-lightning.jsonl"
  fi
done
