#!/usr/bin/env bash
# Issue 17's measures in one GPU-machine call, the fused lightning decode kernel first:
# build halo and the two CUDA tests that cover the kernel (against a float64 reference, and
# the CUDA-graph decode of whole models against eager decode and the forward pass), run them,
# then the measures of scripts/device/inference_speed.sh that judge it: decode at 128K with the
# ATen kernels and with the fused kernel; the training steps of the SmolLM2-size student with a
# stage-2 profile (scripts/device/bench_training.sh, when runs/teachers/smollm2-135m/config.json
# is carried); a decode profile; last scripts/device/sdpa_backends.py (PyTorch's attention
# backends at halo's shapes). Test logs and rows go to $OUT. Needs .device-deps/ carried. Each
# measure has its own time limit, so the call ends within its 10 minutes.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=${OUT:-$root/device-out}
mkdir -p "$out"
build=${HALO_BUILD_DIR:-$root/build-cuda}
SECONDS=0
scripts/device/build.sh halo_cli test_lightning_decode_cuda test_decode_graph_cuda > "$out/build.log" 2>&1 ||
  { tail -n 30 "$out/build.log"; exit 1; }
echo "build: ${SECONDS} s"
for t in test_lightning_decode_cuda test_decode_graph_cuda; do
  "$build/tests/$t" > "$out/$t.log" 2>&1
  echo "$t: exit $? ($(grep -E '^\[  (PASSED|FAILED)' "$out/$t.log" | tr '\n' ' '))"
done
STEPS=decode timeout 150 scripts/device/inference_speed.sh
if [ -f runs/teachers/smollm2-135m/config.json ]; then
  MODEL=runs/teachers/smollm2-135m PROFILE=1 timeout 120 scripts/device/bench_training.sh "$out/training-smollm2" |
    grep -v '^ ' | tail -n 8
fi
STEPS=profile timeout 60 scripts/device/inference_speed.sh | tail -n 40
timeout 60 "${HALO_PYTHON:-/opt/torch/.venv/bin/python}" scripts/device/sdpa_backends.py > "$out/sdpa_backends.txt" 2>&1
tail -n 20 "$out/sdpa_backends.txt"
echo "total: ${SECONDS} s"
