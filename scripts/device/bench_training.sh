#!/usr/bin/env bash
# On the GPU machine, after scripts/device/build.sh: one training-step row per HALO stage at real
# dimensions (stage 1 at 8 x 512, stage 2 at 12 x 512, stage 3 at 1 x 16K with activation recomputation),
# written as PREFIX.{json,md,png} (PREFIX: the first argument, default $OUT/training).
# With MODEL=DIR (e.g. runs/teachers/smollm2-135m; only its config.json is read) the teacher is that
# model's and the shapes are those of configs/smollm2-hypenet.yaml (stage 1 32 x 512, stage 2
# 64 x 512, stage 3 1 x 32K). PROFILE=1 also profiles one stage-2 step; the printed rows and
# the profile go to PREFIX.txt too.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
halo=${HALO_BUILD_DIR:-$root/build-cuda}/bin/halo
prefix=${1:-${OUT:-$root/device-out}/training}
mkdir -p "$(dirname "$prefix")"
model=()
[ -z "${MODEL:-}" ] || model=(--model "$MODEL")
append=""
for stage in 1 2 3; do
  seq=512; batch=12; extra=()
  if [ $stage = 1 ]; then batch=8; fi
  if [ $stage = 3 ]; then seq=16384; batch=1; extra=(--recompute-activations); fi
  if [ -n "${MODEL:-}" ]; then
    case $stage in 1) batch=32 ;; 2) batch=64 ;; 3) seq=32768 ;; esac
  fi
  if [ $stage = 2 ] && [ "${PROFILE:-0}" = 1 ]; then
    extra+=(--profile "$prefix-trace.json")
  fi
  "$halo" bench training "${model[@]}" --stage $stage --batch $batch --seq-len $seq "${extra[@]}" --out "$prefix" \
    $append | tee -a "$prefix.txt"
  append=--append
done
rm -f "$prefix-trace.json"
