#!/usr/bin/env bash
# The test command: setup if needed, then the CPU test suite (ctest label "cpu").
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
build=${HALO_BUILD_DIR:-$root/build}
ctest --test-dir "$build" -L cpu --output-on-failure -j "$(nproc)" --timeout 900
