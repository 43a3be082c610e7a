#!/usr/bin/env bash
# The main job (README's first command): on a fresh machine, set up and build, then run the
# whole HALO pipeline on real data with a small teacher:
#   1. a real-text corpus from Debian packages (scripts/prepare_corpus.sh) plus synthetic
#      retrieval documents (needle in filler, question, answer);
#   2. a 2048-token byte-level BPE tokenizer trained on it, and the corpus tokenized;
#   3. `halo run configs/quickstart.yaml`: pretrain a small Qwen3-architecture teacher, then
#      stage 1 (align), attention-layer selection, stage 2 (distill), stage 3 (finetune), the
#      choice of HyPE's a (tune), and a
#      report (teacher vs student perplexity and NIAH at 1x/4x/16x the training length,
#      parameters, decode speed, wall time per stage) printed and written to
#      runs/quickstart/report/report.md.
# Every step is resumable: run the script again after an interruption and finished work is kept.
# Extra arguments go to `halo run` (e.g. --dry-run).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
"$root/scripts/setup.sh"
halo=${HALO_BUILD_DIR:-$root/build}/bin/halo
data=runs/quickstart-data
mkdir -p "$data/retrieval"

echo "== corpus"
"$root/scripts/prepare_corpus.sh" --out runs/corpus/raw
# The quickstart's corpus: the Debian packages without the kernel documentation, which
# scripts/prepare_smollm2_data.sh adds to the same folder (--with-linux).
mapfile -t corpus < <(ls runs/corpus/raw/*.jsonl | grep -v '/linux\.jsonl$')
if [ ! -f "$data/retrieval/retrieval.jsonl" ]; then
  # Short documents whose text comes twice, each needle recalled twice, no digits but the magic
  # numbers: copy targets dense enough that the small teacher learns to retrieve within its
  # steps (docs/benchmarks.md, session 9).
  "$halo" data retrieval ${corpus[@]/#/--filler=} --out "$data/retrieval/retrieval.jsonl" \
    --documents 110000 --min-chars 50 --max-chars 250 --recalls 2 --repeat-text --digit-free-filler
fi

echo "== tokenizer"
if [ ! -f "$data/tokenizer/tokenizer.json" ]; then
  "$halo" tokenizer train --input "${corpus[@]}" "$data/retrieval" --vocab-size 2048 --max-mb 12 \
    --out "$data/tokenizer"
fi
if [ ! -f "$data/tokens/manifest.json" ]; then
  "$halo" data prepare --tokenizer "$data/tokenizer" --input "${corpus[@]}" "$data/retrieval" --out "$data/tokens"
fi

echo "== HALO"
"$halo" run configs/quickstart.yaml "$@"
