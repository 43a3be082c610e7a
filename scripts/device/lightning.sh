#!/usr/bin/env bash
# On the GPU machine: build, check the lightning kernels against the float64 CPU reference
# (ctest label cuda), then time fwd and fwd+bwd at the issue's shapes (H=16, D=128, bf16) on the
# fused kernels (chunk 64) and on the ATen chunked form (chunk 32) for comparison. Logs go to $OUT;
# reports to $OUT/lightning-{fused,aten}.{json,md,png}. LIGHTNING_ATEN=0 skips the ATen form.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${HALO_BUILD_DIR:-$root/build-cuda}
halo=$build/bin/halo
out=${OUT:-$root/device-out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
"$root/scripts/device/build.sh" halo_cli test_lightning_cuda > "$out/build.log" 2>&1 || { tail -n 40 "$out/build.log"; exit 1; }
ctest --test-dir "$build" -R "[Ll]ightning" -L cuda --output-on-failure --timeout 600 > "$out/ctest-lightning.log" 2>&1
grep -E "tests passed|FAILED|Failed|Expected|Which is|rel_norm|\*\*\*" "$out/ctest-lightning.log" | head -n 40
"$halo" bench kernels --device cuda --shapes 8x512,4x4K,4x16K,1x64K --impl chunked --chunk 64 --repeat 10 \
  --out "$out/lightning-fused"
[[ ${LIGHTNING_ATEN:-1} == 0 ]] ||
  "$halo" bench kernels --device cuda --shapes 8x512,4x4K,4x16K,1x64K --impl chunked --chunk 32 --repeat 10 \
    --out "$out/lightning-aten"
