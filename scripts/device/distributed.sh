#!/usr/bin/env bash
# On the GPU machine, after scripts/device/build.sh halo_cli test_pipeline: data parallelism on
# one GPU (issue 16).
#   1. test_pipeline's torchrun tests: one CUDA rank (NCCL) trains as one plain process, without
#      ZeRO and with ZeRO-2; two CPU ranks (Gloo) as one process with the global batch.
#   2. `halo bench training` under `torchrun --nproc-per-node 1` for stages 1-3: the bench times
#      rank 0's step without the reduction first, then the data-parallel step (post-accumulate
#      hooks, buckets, NCCL); their ratio is the overhead of DDP at world size 1. Then the same
#      with --zero=1 and --zero=2 (their step time against the first row's).
# Writes $OUT/distributed.log and $OUT/distributed.{json,md,png}.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${HALO_BUILD_DIR:-$root/build-cuda}
halo=$build/bin/halo
torchrun=${TORCHRUN:-/opt/torch/.venv/bin/torchrun}
out=${OUT:-$root/device-out}
mkdir -p "$out"
log=$out/distributed.log
export NCCL_NVLS_ENABLE=0
{
  nvidia-smi --query-gpu=name,serial,driver_version --format=csv,noheader
  HALO_SHARED="$root/.device-deps/shared" "$build/tests/test_pipeline" \
    --gtest_filter='*OneRankUnderTorchrun*:*TwoRanksTrainLike*'
  append=""
  for zero in 0 1 2; do
    for stage in 1 2 3; do
      seq=512; batch=12; extra=""
      if [ $stage = 1 ]; then batch=8; fi
      if [ $stage = 3 ]; then seq=16384; batch=1; extra=--recompute-activations; fi
      "$torchrun" --no-python --standalone --nproc-per-node 1 "$halo" bench training --stage $stage \
        --batch $batch --seq-len $seq $extra --zero=$zero --steps 10 --out "$out/distributed" $append
      append=--append
    done
  done
} > "$log" 2>&1
grep -E "OK|FAILED|PASSED|torchrun: 1 rank|stage [123]," "$log"
