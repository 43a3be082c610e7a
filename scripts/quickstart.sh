#!/usr/bin/env bash
# The main job (README's first command). For now it sets up, builds, and exercises halo end to
# end on the bundled tiny Qwen3 checkpoint: info, the real Qwen3 tokenizer, greedy generation,
# a forward pass, and perplexity of held-out text. The full HALO pipeline replaces this once
# the training stages land.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${HALO_SHARED:-$root/../shared}
"$root/scripts/setup.sh"
halo=${HALO_BUILD_DIR:-$root/build}/bin/halo
run=$root/runs/quickstart
mkdir -p "$run/byte-tokenizer"
model=$shared/fixtures/qwen3-tiny

echo "== halo info"
"$halo" info --model "$model"

echo "== halo tokenize (the real Qwen3 tokenizer)"
"$halo" tokenize --tokenizer "$shared/data/qwen3-tokenizer" --text "HypeNet keeps a quarter of its attention layers."

echo "== halo generate (greedy, KV cache)"
"$halo" generate --model "$model" --prompt-ids "1 17 42 99 256 3 7 512 64" --print-ids --max-new-tokens 16 --device cpu

echo "== halo forward"
python3 - "$run/ids.safetensors" <<'PY'
import json, struct, sys
ids = [[1, 17, 42, 99, 256, 3, 7, 512]]
data = b"".join(struct.pack("<q", i) for row in ids for i in row)
header = json.dumps({"input_ids": {"dtype": "I64", "shape": [1, 8], "data_offsets": [0, len(data)]}}).encode()
header += b" " * (-len(header) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(header)) + header + data)
PY
"$halo" forward --model "$model" --input "$run/ids.safetensors" --output "$run/logits.safetensors" --device cpu

echo "== halo ppl (random weights over a byte-level vocabulary: expect perplexity near 1000)"
python3 - "$run/byte-tokenizer/tokenizer.json" <<'PY'
import json, sys
printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
extra, vocab = 0, {}
for b in range(256):
    if b in printable:
        vocab[chr(b)] = b
    else:
        vocab[chr(256 + extra)] = b
        extra += 1
level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True}
json.dump({"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": level,
           "decoder": dict(level, use_regex=False), "model": {"type": "BPE", "vocab": vocab, "merges": []}}, open(sys.argv[1], "w"))
PY
"$halo" ppl --model "$model" --tokenizer "$run/byte-tokenizer" --text "$shared/data/text/brown.txt" \
  --max-tokens 20000 --context 512 --device cpu

echo "quickstart: done (outputs in $run)"
