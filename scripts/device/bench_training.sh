#!/usr/bin/env bash
# On the GPU machine, after scripts/device/build.sh: one training-step row per HALO stage at real
# dimensions (stage 1 at 8 x 512, stage 2 at 12 x 512, stage 3 at 1 x 16K with activation recomputation),
# written as PREFIX.{json,md,png} (PREFIX: the first argument, default $OUT/training).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
halo=${HALO_BUILD_DIR:-$root/build-cuda}/bin/halo
prefix=${1:-${OUT:-$root/device-out}/training}
mkdir -p "$(dirname "$prefix")"
append=""
for stage in 1 2 3; do
  seq=512; batch=12; extra=""
  if [ $stage = 1 ]; then batch=8; fi
  if [ $stage = 3 ]; then seq=16384; batch=1; extra=--recompute-activations; fi
  "$halo" bench training --stage $stage --batch $batch --seq-len $seq $extra --out "$prefix" $append
  append=--append
done
