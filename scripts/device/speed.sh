#!/usr/bin/env bash
# On the GPU machine, the loop for speed work in one call: build, the CUDA-only tests (label
# cuda), lightning attention at the issue's shapes (fused kernels), training steps of stages 1-3
# at real dimensions, and a Kineto profile of one stage-2 step. Seven files in $OUT: build.log,
# ctest-cuda.log, kernels.{json,md}, training.{json,md}, profile.txt.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${HALO_BUILD_DIR:-$root/build-cuda}
halo=$build/bin/halo
out=${OUT:-$root/device-out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
"$root/scripts/device/build.sh" > "$out/build.log" 2>&1 || { tail -n 40 "$out/build.log"; exit 1; }
ctest --test-dir "$build" -L cuda --output-on-failure -j 4 --timeout 600 > "$out/ctest-cuda.log" 2>&1
grep -E "tests passed|Failed|Expected|Which is|\*\*\*" "$out/ctest-cuda.log" | head -n 40
"$halo" bench kernels --device cuda --shapes 8x512,4x16K,1x64K --impl chunked --chunk 64 --repeat 10 --out "$out/kernels"
"$root/scripts/device/bench_training.sh" "$out/training"
"$halo" bench training --stage 2 --batch 12 --seq-len 512 --steps 2 --profile "$out/stage2-trace.json" > "$out/profile.txt"
head -n 45 "$out/profile.txt"
rm -f "$out"/*.png "$out/stage2-trace.json"
