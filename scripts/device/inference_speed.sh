#!/usr/bin/env bash
# On the GPU machine, after scripts/device/build.sh halo_cli: the inference measures of issue 17
# in one call: (1) "prefill": HypeNet-2B prefill + decode at the PREFILL contexts (default
# 128K,1M), rows in $OUT/prefill.{json,md}; (2) "profile": a Kineto profile of one HypeNet-2B
# decode step at 128K ($OUT/decode-profile.txt: the kernels a token costs); (3) "serving": batched
# serving at 32K (scripts/device/serving.sh, $OUT/serving.*); (4) "decode": HypeNet-2B decode at
# 128K with the lightning layers' ATen kernels and with the fused decode kernel
# (HALO_LIGHTNING_DECODE=aten / fused), rows in $OUT/decode-{aten,fused}.*. STEPS picks the
# steps (default "prefill profile serving").
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
halo=${HALO_BUILD_DIR:-$root/build-cuda}/bin/halo
out=${OUT:-$root/device-out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for step in ${STEPS:-prefill profile serving}; do
  case "$step" in
    prefill)
      "$halo" bench inference --arch hypenet-2b --contexts "${PREFILL:-128K,1M}" --decode-tokens 8 --out "$out/prefill" ;;
    profile)
      "$halo" bench inference --arch hypenet-2b --contexts 128K --decode-tokens 8 \
        --profile "$out/decode-hypenet-2b-128k.json" > "$out/decode-profile.txt" 2>&1
      head -n 60 "$out/decode-profile.txt"
      rm -f "$out/decode-hypenet-2b-128k.json" ;;
    decode)
      for impl in aten fused; do
        echo "== lightning decode: $impl"
        HALO_LIGHTNING_DECODE=$impl "$halo" bench inference --arch hypenet-2b --contexts 128K --decode-tokens 64 \
          --out "$out/decode-$impl"
      done ;;
    serving)
      BATCHES=${BATCHES:-1,4,16,64} "$root/scripts/device/serving.sh" ;;
    *) echo "inference_speed: unknown step '$step' (prefill, profile, serving, decode)" >&2; exit 2 ;;
  esac
done
