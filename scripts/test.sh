#!/usr/bin/env bash
# The test command: setup if needed, a compile-only check of the CUDA flavour (library only)
# when nvcc is here, then the CPU test suite (ctest label "cpu").
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
build=${HALO_BUILD_DIR:-$root/build}
nvcc=$(command -v nvcc || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; } || true)
if [ -n "$nvcc" ]; then
  cuda_build=${HALO_CUDA_BUILD_DIR:-$root/build-cuda-check}  # build-cuda is the GPU machine's
  cmake -S "$root" -B "$cuda_build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHALO_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$nvcc" -DHALO_PYTHON="${HALO_VENV:-$root/.venv}/bin/python" >/dev/null
  cmake --build "$cuda_build" --target halo
fi
ctest --test-dir "$build" -L cpu --output-on-failure -j "$(nproc)" --timeout 900
