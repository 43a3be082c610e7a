#!/usr/bin/env bash
# The training data of configs/smollm2-hypenet.yaml, tokenized with the SmolLM2 teacher's
# tokenizer into runs/smollm2-data/tokens:
#   1. the Debian corpus with the Linux kernel documentation (scripts/prepare_corpus.sh --with-linux,
#      about 57 MB of text);
#   2. synthetic retrieval documents (a number hidden in corpus sentences, then asked for, in the
#      NIAH template; the filler never comes from the evaluation texts): 6000 short ones
#      (200-2000 characters, for stage 2's 512-token sequences) and 1200 long ones
#      (4000-30000 characters, up to ~8K tokens, for stage 3);
#   3. halo data prepare with the teacher's tokenizer.json.
# Needs the teacher (scripts/fetch_teacher.sh smollm2) and build/bin/halo. Each step is skipped
# when its output exists.
# Usage: scripts/prepare_smollm2_data.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
case "${1:-}" in
  -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "prepare_smollm2_data: no arguments expected, got '$1' (see --help)" >&2; exit 2 ;;
esac
halo=${HALO_BIN:-$root/build/bin/halo}
teacher=runs/teachers/smollm2-135m
data=runs/smollm2-data
[ -x "$halo" ] || { echo "prepare_smollm2_data: $halo is missing; build first (scripts/setup.sh)" >&2; exit 1; }
[ -f "$teacher/tokenizer.json" ] || {
  echo "prepare_smollm2_data: $teacher/tokenizer.json is missing; run scripts/fetch_teacher.sh smollm2" >&2
  exit 1
}
"$root/scripts/prepare_corpus.sh" --out runs/corpus/raw --with-linux
mkdir -p "$data/retrieval"
[ -f "$data/retrieval/short.jsonl" ] || "$halo" data retrieval --filler runs/corpus/raw --seed 1 \
  --out "$data/retrieval/short.jsonl" --documents 6000 --min-chars 200 --max-chars 2000
[ -f "$data/retrieval/long.jsonl" ] || "$halo" data retrieval --filler runs/corpus/raw --seed 2 \
  --out "$data/retrieval/long.jsonl" --documents 1200 --min-chars 4000 --max-chars 30000
[ -f "$data/tokens/manifest.json" ] || "$halo" data prepare --tokenizer "$teacher" \
  --input runs/corpus/raw "$data/retrieval" --out "$data/tokens"
echo "prepare_smollm2_data: $data/tokens ready"
