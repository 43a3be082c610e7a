#!/usr/bin/env bash
# On the GPU machine: build, then the whole suite with tensors on the GPU (HALO_TEST_DEVICE=cuda
# moves the model tests there) plus the CUDA-only tests (label "cuda"). Logs go to $OUT.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${HALO_BUILD_DIR:-$root/build-cuda}
out=${OUT:-$root/device-out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
"$root/scripts/device/build.sh" > "$out/build.log" 2>&1 || { tail -n 40 "$out/build.log"; exit 1; }
tail -n 2 "$out/build.log"
HALO_TEST_DEVICE=cuda ctest --test-dir "$build" -L "cpu|cuda" --output-on-failure -j 8 --timeout 600 > "$out/ctest.log" 2>&1
rc=$?
grep -E "tests passed|FAILED|Failed|Test #.*\*\*\*" "$out/ctest.log" | tail -n 30
exit $rc
