#!/usr/bin/env bash
# On the GPU machine, after scripts/device/build.sh: the SmolLM2-135M teacher's long-context
# behaviour in halo (bf16): perplexity of brown.txt and needle-in-a-haystack accuracy at 1K..32K,
# and decode ms/token at 8K and 32K. The GGUF arrives in parts (a device call carries at most
# 64 MiB): made here with
#   mkdir -p .device-carry && split -b 45M runs/teachers/smollm2-135m.gguf .device-carry/smollm2.gguf.part-
# and carried one per call; each call first runs `scripts/device/smollm2_teacher.sh --stash`, which
# moves the parts it finds into /tmp/smollm2 (kept between consecutive calls). The last call runs
# it without --stash: the parts are joined, the sha256 is checked, the file is imported and
# evaluated. Results: $OUT/smollm2_teacher.{json,md} and the eval logs.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
halo=${HALO_BUILD_DIR:-$root/build-cuda}/bin/halo
out=${OUT:-$root/device-out}
stash=/tmp/smollm2
gguf_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
shared=$root/.device-deps/shared
[ -d "$shared" ] || shared=${HALO_SHARED:-$root/../shared}
mkdir -p "$stash" "$out"
for part in "$root"/.device-carry/smollm2.gguf.part-*; do
  [ -e "$part" ] && cp "$part" "$stash/"
done
ls "$stash"
if [ "${1:-}" = "--stash" ]; then exit 0; fi

gguf=$stash/smollm2-135m.gguf
if [ ! -f "$gguf" ]; then
  cat "$stash"/smollm2.gguf.part-* > "$gguf.tmp"
  echo "$gguf_sha256  $gguf.tmp" | sha256sum -c - || { rm -f "$gguf.tmp"; exit 1; }
  mv "$gguf.tmp" "$gguf"
fi
model=$stash/smollm2-135m
[ -f "$model/config.json" ] || "$halo" import "$gguf" --out "$model" --quiet
brown=$shared/data/text/brown.txt
lengths=1024,2048,4096,8192,16384,32768
"$halo" eval --model "$model" --tasks niah --filler "$brown" --lengths $lengths --samples 4 \
  --depths 0.1,0.3,0.5,0.7,0.9 --device cuda --dtype bfloat16 --json --out "$out/niah.json" > "$out/niah.log" 2>&1
for context in 2048 4096 8192 16384 32768; do
  "$halo" eval --model "$model" --tasks ppl --text "$brown" --context $context --max-tokens $((4 * context + 1)) \
    --device cuda --dtype bfloat16 --json --out "$out/ppl_$context.json" > "$out/ppl_$context.log" 2>&1
done
"$halo" bench inference --model "$model" --contexts 8K,32K --out "$out/decode" > "$out/decode.log" 2>&1 || true
tail -n 3 "$out"/niah.log "$out"/ppl_*.log "$out"/decode.log
