#!/usr/bin/env bash
# Builds the CUDA flavour on the GPU machine (Ubuntu 24.04, torch 2.11.0+cu130 in
# /opt/torch/.venv). Needs .device-deps/ from scripts/device/fetch_deps.sh, carried. Arguments:
# the targets to build (all by default).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
python=${HALO_PYTHON:-/opt/torch/.venv/bin/python}
build=${HALO_BUILD_DIR:-$root/build-cuda}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHALO_PYTHON="$python" -DHALO_CUDA=ON \
  -DPCRE2_ROOT="$root/.device-deps/pcre2" \
  -DUTF8PROC_ROOT="$root/.device-deps/utf8proc" -DGLOO_ROOT="$root/.device-deps/gloo" -DHALO_SHARED_DIR="$root/.device-deps/shared"
cmake --build "$build" -j "$(nproc)" ${1:+--target "$@"} -- -k 0
echo "device build: $build/bin/halo"
