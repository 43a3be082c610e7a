#!/usr/bin/env bash
# Which retrieval data and training budget teach the quickstart's small teacher to retrieve (issue 14,
# section 6: with today's data its NIAH is 0 % at every length). On the GPU machine, after
# scripts/device/build.sh, each variant builds its retrieval documents (`halo data retrieval` over the
# quickstart's Debian corpus), tokenizes them with the corpus, runs the quickstart's `pretrain` stage
# alone (configs/quickstart.yaml, every later stage dropped) in float32, so that the GPU trial
# predicts the 2-core CPU run, and measures the teacher's NIAH at its training length (256 tokens,
# 5 depths x 10 prompts, filler brown.txt as in the quickstart's report). Table: $OUT/sweep.md;
# progress: $OUT/sweep.log. A variant is data:layers:steps:lr[:batch] (batch 16 by default); the
# data kinds (about 75 % of the tokens retrieval documents unless said):
#   base    the quickstart's today: 1 needle, 100-600 filler characters (about 37 %)
#   recall  2 needles, each repeated verbatim twice later in the filler (--recalls 2), digit-free filler
#   mqar    4 needles with 1 recall each in short filler: many keys and values, many queries
#   copy    1 needle with 2 recalls, the text written twice (--repeat-text): most tokens copyable
#   scramble  copy with the filler's words shuffled (--scramble-words): only copying predicts the copy
# CPU cost of a variant on the quickstart's 2 cores: steps x batch x 256 tokens through a model of
# 8 layers (3.5M parameters, about 1.2 steps/s at batch 16) or 4 layers (2.0M, about 2.6 steps/s);
# the table's "CPU min" column estimates it from those rates (the pretrain stage may take 8-10 min).
# Modes:
#   pack   (CPU machine, build/bin/halo) .device-carry/quickstart-teacher-inputs.tar.xz: the corpus
#          without the kernel docs and the 2048-token tokenizer (a copy of
#          runs/quickstart-data/tokenizer, else one trained as scripts/quickstart.sh trains it)
#   run    (GPU machine) the sweep, in the foreground
#   start  (GPU machine) the sweep in the background (setsid); `wait [S]` follows it for at most S
#          seconds (default 540) and copies sweep.md and sweep.log to $OUT
# Device calls (carry .device-deps and the tarball; the first builds, about 3 minutes):
#   scripts/device/build.sh halo_cli
#   scripts/device/quickstart_teacher_sweep.sh run
# VARIANTS (space-separated) replaces the list below; SWEEP_STEPS forces every variant's steps (a
# smoke test); finished variants are kept in runs/qs-sweep and not trained again; SWEEP_DEVICE (default cuda), SWEEP_BUDGET_S (default 420: no variant starts once the
# elapsed time plus the longest so far would pass it), HALO_BUILD_DIR (default build-cuda).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
halo=${HALO_BUILD_DIR:-$root/build-cuda}/bin/halo
tarball=.device-carry/quickstart-teacher-inputs.tar.xz
sweep=runs/qs-sweep
tokenizer=$sweep/tokenizer
bg=/tmp/halo-qs-sweep
device=${SWEEP_DEVICE:-cuda}
budget=${SWEEP_BUDGET_S:-420}
# In order of interest: the budget guard drops the last ones first.
variants=${VARIANTS:-"copy:4:1200:3e-3 recall:4:1200:3e-3 mqar:4:1200:3e-3 copy:8:600:3e-3 base:8:600:3e-3
  copy:4:2400:3e-3:8 copy:4:1200:1e-3 recall:8:600:3e-3"}
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }

corpus_files() {
  local f
  for f in runs/corpus/raw/*.jsonl; do [ "$f" = runs/corpus/raw/linux.jsonl ] || echo "$f"; done
}

# The retrieval options of a data kind.
data_options() {
  case "$1" in
    base) echo "--documents 30000 --min-chars 100 --max-chars 600" ;;
    recall) echo "--documents 100000 --min-chars 100 --max-chars 500 --needles 2 --recalls 2 --digit-free-filler" ;;
    mqar) echo "--documents 80000 --min-chars 50 --max-chars 300 --needles 4 --recalls 1 --digit-free-filler" ;;
    copy) echo "--documents 110000 --min-chars 50 --max-chars 250 --recalls 2 --repeat-text --digit-free-filler" ;;
    scramble) echo "--documents 110000 --min-chars 50 --max-chars 250 --recalls 2 --repeat-text --scramble-words --digit-free-filler" ;;
    *) echo "quickstart_teacher_sweep: unknown data kind '$1' (base, recall, mqar, copy, scramble)" >&2; return 2 ;;
  esac
}

# Builds $sweep/data-KIND/tokens once.
build_data() {
  local kind=$1 dir=$sweep/data-$1 line options
  line=$(data_options "$kind") || return 1
  read -ra options <<< "$line"
  [ -f "$dir/tokens/manifest.json" ] && return 0
  mkdir -p "$dir/retrieval"
  mapfile -t corpus < <(corpus_files)
  "$halo" data retrieval "${corpus[@]/#/--filler=}" --out "$dir/retrieval/retrieval.jsonl" "${options[@]}" -q || return 1
  "$halo" data prepare --tokenizer "$tokenizer" --input "${corpus[@]}" "$dir/retrieval" --out "$dir/tokens" -q ||
    return 1
  python3 - "$dir/tokens/manifest.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
retrieval = sum(s["tokens"] for s in m["sources"] if "retrieval" in s["path"])
print(f"  {m['tokens'] / 1e6:.1f}M tokens, {100 * retrieval / m['tokens']:.0f} % retrieval documents")
EOF
}

# One variant: pretrain, NIAH at 256, a row of the table.
run_variant() {
  local spec=$1 kind layers steps lr batch
  IFS=: read -r kind layers steps lr batch <<< "$spec"
  batch=${batch:-16}
  steps=${SWEEP_STEPS:-$steps}
  local name="$kind-${layers}L-$steps-lr$lr-b$batch" dir
  dir=$sweep/$name
  local begin=$SECONDS
  stamp "$name: data"
  build_data "$kind" || return 1
  stamp "$name: pretrain"
  local start=$SECONDS
  "$halo" run configs/quickstart.yaml --stage pretrain --device "$device" --dtype float32 --quiet \
    --set "run_dir=$dir" --set "tokenizer=$tokenizer" --set "pretrain.data.tokens=$sweep/data-$kind/tokens" \
    --set "pretrain.model.num_hidden_layers=$layers" --set "pretrain.train.steps=$steps" \
    --set "pretrain.train.lr=$lr" --set "pretrain.data.batch_size=$batch" \
    --set "pretrain.train.checkpoint_every=$steps" --set align=null --set select=null --set distill=null \
    --set finetune=null --set tune=null --set report=null || return 1
  local wall=$((SECONDS - start))
  stamp "$name: NIAH"
  "$halo" eval --model "$dir/pretrain/model" --tasks niah --filler "$filler" --lengths 256 \
    --depths 0.1,0.3,0.5,0.7,0.9 --samples 10 --device "$device" --dtype float32 --json --out "$dir/niah.json" -q \
    > /dev/null || return 1
  python3 - "$dir" "$name" "$steps" "$batch" "$layers" "$wall" "$(data_options "$kind")" >> "$sweep/rows.md" <<'EOF' || return 1
import json, sys
dir, name, steps, batch, layers, wall, options = sys.argv[1:]
niah = json.load(open(f"{dir}/niah.json"))["tasks"]["niah"]
losses = [json.loads(line)["loss"] for line in open(f"{dir}/pretrain/metrics.jsonl")]
tail = losses[-min(50, len(losses)):]
rate = (2.6 if layers == "4" else 1.2) * 16 / int(batch)  # CPU steps/s on 2 cores
print(f"| {name} | {steps} x {batch} | {100 * niah['accuracy']:.0f} % ({niah['correct']}/{niah['total']}) "
      f"| {sum(tail) / len(tail):.3f} | {wall} s | {int(steps) / rate / 60:.0f} | `{options}` |")
EOF
  tail -n 1 "$sweep/rows.md"
  echo "$((SECONDS - begin))" >> "$sweep/walls"
}

sweep_all() {
  local out=$1 begin=$SECONDS
  mkdir -p "$sweep" "$out"
  filler=../shared/data/text/brown.txt
  [ -f "$filler" ] || filler=.device-deps/shared/data/text/brown.txt
  if [ ! -d runs/corpus/raw ] || [ ! -f "$tokenizer/tokenizer.json" ]; then tar -xJf "$tarball"; fi
  rm -f "$sweep/rows.md" "$sweep/walls"
  { nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo "$device"; } | head -n 1 > "$sweep/device"
  for spec in $variants; do
    local longest=0
    [ -f "$sweep/walls" ] && longest=$(sort -n "$sweep/walls" | tail -n 1)
    if ((SECONDS - begin + longest > budget)); then
      stamp "$spec: skipped (the budget of $budget s would pass)"
      echo "| $spec | skipped (budget) | | | | | |" >> "$sweep/rows.md"
      continue
    fi
    run_variant "$spec" || { stamp "$spec: failed"; echo "| $spec | failed | | | | | |" >> "$sweep/rows.md"; }
  done
  {
    echo "# Quickstart teacher sweep ($(cat "$sweep/device"), float32, $((SECONDS - begin)) s)"
    echo
    echo "NIAH at 256 tokens (5 depths x 10 prompts, brown.txt filler); loss: mean of the last 50 steps;"
    echo "CPU min: the pretrain stage's estimate on 2 cores (8 layers 1.2, 4 layers 2.6 steps/s at batch 16)."
    echo
    echo "| variant | steps x batch | NIAH 256 | final loss | wall | CPU min | retrieval options |"
    echo "|---|---|---|---|---|---|---|"
    cat "$sweep/rows.md"
  } > "$out/sweep.md"
  cat "$out/sweep.md"
}

case "${1:-}" in
  pack)
    halo=${HALO_BUILD_DIR:-$root/build}/bin/halo
    mkdir -p .device-carry "$sweep"
    mapfile -t corpus < <(corpus_files)
    if [ -f runs/quickstart-data/tokenizer/tokenizer.json ]; then
      rm -rf "$tokenizer"
      cp -r runs/quickstart-data/tokenizer "$tokenizer"
    elif [ ! -f "$tokenizer/tokenizer.json" ]; then
      # scripts/quickstart.sh's tokenizer: trained on the corpus and its default retrieval documents.
      mkdir -p "$sweep/data-base/retrieval"
      read -ra options <<< "$(data_options base)"
      "$halo" data retrieval "${corpus[@]/#/--filler=}" --out "$sweep/data-base/retrieval/retrieval.jsonl" \
        "${options[@]}" -q
      "$halo" tokenizer train --input "${corpus[@]}" "$sweep/data-base/retrieval" --vocab-size 2048 --max-mb 12 \
        --out "$tokenizer"
    fi
    tar -cJf "$tarball" "${corpus[@]}" "$tokenizer"
    ls -la "$tarball"
    ;;
  run)
    out=${OUT:-$root/device-out}
    mkdir -p "$out"
    sweep_all "$out" 2>&1 | tee "$out/sweep.log"
    ;;
  start)
    mkdir -p "$bg"
    setsid nohup "$0" background > "$bg/sweep.log" 2>&1 < /dev/null &
    echo $! > "$bg/pid"
    stamp "started the sweep (pid $(cat "$bg/pid")); log $bg/sweep.log"
    ;;
  background) sweep_all "$bg" ;;
  wait)
    out=${OUT:-$root/device-out}
    mkdir -p "$out"
    pid=$(cat "$bg/pid")
    timeout "${2:-540}" tail --pid="$pid" -f /dev/null || true
    cp "$bg/sweep.log" "$out/"
    [ -f "$bg/sweep.md" ] && cp "$bg/sweep.md" "$out/"
    tail -n 30 "$bg/sweep.log"
    if kill -0 "$pid" 2>/dev/null; then echo "quickstart_teacher_sweep: still running"; else echo "quickstart_teacher_sweep: finished"; fi
    ;;
  *) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; [ "${1:-}" = -h ] || [ "${1:-}" = --help ] ;;
esac
