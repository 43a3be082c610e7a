#!/usr/bin/env bash
# The SmolLM2-135M -> HypeNet experiment on the GPU machine (docs/results/smollm2-hypenet.md):
# configs/smollm2-hypenet.yaml (HyPE, HALO's layer selection), then ablations at a smaller
# budget, the same for each (stage 2: 300 x [32, 512]; stage 3: 64 x [2, 8192]; the tune grid
# 100..3000), compared by the tune stage's held-out loss, and optionally one report beside the
# teacher and the student:
#   small  the main recipe (HyPE, HALO's layers) at the ablation budget: their reference
#   rope   RoPE in the attention layers too (all-RoPE)       shares stage 1 and the selection
#   nope   no RoPE in the RNN layers either (all-NoPE)        its own stage 1; the main run's layers
#   even   evenly spaced attention layers (same count)        shares stage 1
#   kl     layers chosen by the KL-guided criterion (KL-LS)   shares stage 1
# A device call carries at most 64 MiB, so the inputs travel in parts, made on the CPU machine by
#   scripts/device/smollm2_hypenet.sh pack
# (.device-carry/: the teacher GGUF in three parts, and smollm2-inputs.tar.xz with the raw corpus
# and retrieval documents of scripts/prepare_smollm2_data.sh). On the GPU machine, in consecutive
# calls (the machine keeps /tmp while calls follow within 30 s):
#   1. carry .device-deps + part-00:   smollm2_hypenet.sh stash && scripts/device/build.sh halo_cli
#   2. carry part-01 + the inputs:     smollm2_hypenet.sh stash
#   3. carry part-02:                  smollm2_hypenet.sh stash && smollm2_hypenet.sh start && smollm2_hypenet.sh wait 540
#   4. ... until it says finished:     smollm2_hypenet.sh wait 560
# `start` joins and checks the GGUF (sha256), imports it, tokenizes the inputs with its
# tokenizer and starts the experiment in the background (setsid); `wait` follows it for at most
# the given seconds and packs the logs, stage summaries, reports and charts into
# $OUT/smollm2-results.tgz.
# VARIANTS (default "small rope nope even kl") picks the ablations; COMPARE_REPORT=0 skips the
# final report that puts them beside the teacher and the student; HALO_RUN_ARGS (one argument a line)
# goes to every `halo run` (e.g. a small smoke run on the CPU machine:
# HALO_BUILD_DIR=build HALO_RUN_ARGS=$'--device\ncpu\n--set\nalign.train.steps=2' ... experiment).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
work=/tmp/halo-smollm2
halo=${HALO_BUILD_DIR:-$root/build-cuda}/bin/halo
config=configs/smollm2-hypenet.yaml
main=runs/smollm2-hypenet
gguf_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
variants=${VARIANTS:-small rope nope even kl}
# The ablation budget (the main run's before 2026-12-07).
ablation_budget=(--set distill.data.batch_size=32 --set distill.train.steps=300 --set distill.train.lr=3.0e-4
  --set distill.train.warmup_steps=30 --set distill.train.checkpoint_every=100 --set finetune.data.seq_len=8192
  --set finetune.data.batch_size=2 --set finetune.train.steps=64 --set finetune.train.lr=3.0e-5
  --set finetune.train.checkpoint_every=32 --set finetune.train.schedule=constant --set finetune.train.warmup_steps=8
  --set "tune.grid=[100, 300, 500, 1000, 3000]" --set tune.ppl_tokens=0 --set tune.ppl_tail=0)
extra=()
[ -z "${HALO_RUN_ARGS:-}" ] || mapfile -t extra <<< "$HALO_RUN_ARGS"
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }

# The ablation's column name in the report.
variant_name() {
  case "$1" in
    small) echo "HyPE + HALO (ablation budget)" ;;
    rope) echo "all-RoPE" ;;
    nope) echo "all-NoPE" ;;
    even) echo "even layers" ;;
    kl) echo "KL layers" ;;
  esac
}

# The whole experiment (runs in the background).
experiment() {
  stamp "main run: $config"
  "$halo" run "$config" "${extra[@]}"
  stamp "teacher vs student report done; ablations next"
  local layers
  layers=$(python3 -c "import json; print(','.join(map(str, json.load(open('$main/select/selection.json'))['attention_layers'])))")
  local compare=""
  for v in $variants; do
    local dir=runs/smollm2-$v
    local sets=(--set "run_dir=$dir" --set report=null "${ablation_budget[@]}")
    case "$v" in
      small) sets+=(--set "select.attention_layers=[$layers]") ;;
      rope) sets+=(--set position_encoding=rope --set "select.attention_layers=[$layers]") ;;
      nope) sets+=(--set position_encoding=nope --set "select.attention_layers=[$layers]") ;;
      even) sets+=(--set select.criterion=even) ;;
      kl) sets+=(--set select.criterion=kl) ;;
      *) echo "smollm2_hypenet: unknown variant '$v' (small, rope, nope, even, kl)" >&2; exit 2 ;;
    esac
    if [ "$v" != nope ] && [ ! -f "$dir/align/DONE" ]; then
      mkdir -p "$dir/align"
      cp -r "$main/align/model" "$dir/align/"
      cp "$main/align/DONE" "$dir/align/DONE"
    fi
    stamp "ablation $v: ${sets[*]}"
    "$halo" run "$config" "${extra[@]}" "${sets[@]}"
    compare+="${compare:+, }$(variant_name "$v"): $dir/tune/model"
  done
  if [ "${COMPARE_REPORT:-1}" != 0 ] && [ -n "$compare" ]; then
    stamp "report"
    "$halo" run "$config" "${extra[@]}" --stage report --set "report.compare={$compare}"
  fi
  stamp "finished"
}

# Packs what came out so far into $OUT/smollm2-results.tgz (no weights): a call brings back only a
# few files, none in deep folders.
collect() {
  local out=${OUT:-$root/device-out}
  mkdir -p "$out"
  local files=("$work"/*.log)
  for run in runs/smollm2-*/; do
    [ "$run" = runs/smollm2-data/ ] && continue
    for f in "$run"*/DONE "$run"*/metrics.jsonl "$run"select/selection.* "$run"tune/hype_scaling.* "$run"report/*; do
      [ -f "$f" ] && files+=("$f")
    done
  done
  tar -czf "$out/smollm2-results.tgz" "${files[@]}" 2>/dev/null || true
}

case "${1:-}" in
  pack)
    mkdir -p .device-carry
    rm -f .device-carry/smollm2.gguf.part-* .device-carry/smollm2-inputs.tar.xz
    split -n 3 -d -a 2 runs/teachers/smollm2-135m.gguf .device-carry/smollm2.gguf.part-
    tar -cJf .device-carry/smollm2-inputs.tar.xz runs/corpus/raw runs/smollm2-data/retrieval
    ls -la .device-carry
    ;;
  stash)
    mkdir -p "$work/stash"
    for f in .device-carry/smollm2.gguf.part-* .device-carry/smollm2-inputs.tar.xz; do
      [ -e "$f" ] && cp "$f" "$work/stash/"
    done
    [ -d .device-deps/shared ] && [ ! -d "$work/shared" ] && cp -r .device-deps/shared "$work/shared"
    ls -la "$work/stash"
    ;;
  start)
    [ -d "$work/shared" ] || { echo "smollm2_hypenet: no $work/shared (stash with .device-deps carried)" >&2; exit 1; }
    # ../shared may exist there without the data: the carried copy fills it in.
    mkdir -p ../shared
    cp -r --update=none "$work/shared/." ../shared/
    mkdir -p runs/teachers
    gguf=runs/teachers/smollm2-135m.gguf
    if [ ! -f "$gguf" ]; then
      cat "$work"/stash/smollm2.gguf.part-* > "$gguf.tmp"
      echo "$gguf_sha256  $gguf.tmp" | sha256sum -c - || { rm -f "$gguf.tmp"; exit 1; }
      mv "$gguf.tmp" "$gguf"
    fi
    [ -f runs/teachers/smollm2-135m/config.json ] || "$halo" import "$gguf" --out runs/teachers/smollm2-135m --quiet
    [ -d runs/smollm2-data/retrieval ] || tar -xJf "$work/stash/smollm2-inputs.tar.xz"
    [ -f runs/smollm2-data/tokens/manifest.json ] || "$halo" data prepare --tokenizer runs/teachers/smollm2-135m \
      --input runs/corpus/raw runs/smollm2-data/retrieval --out runs/smollm2-data/tokens > "$work/data.log" 2>&1
    tail -n 2 "$work/data.log"
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$work/gpu.log"
    setsid nohup "$0" experiment > "$work/experiment.log" 2>&1 < /dev/null &
    echo $! > "$work/pid"
    stamp "started experiment (pid $(cat "$work/pid"))"
    ;;
  experiment) experiment ;;
  wait)
    pid=$(cat "$work/pid")
    timeout "${2:-540}" tail --pid="$pid" -f /dev/null || true
    collect
    tail -n 25 "$work/experiment.log"
    if kill -0 "$pid" 2>/dev/null; then echo "smollm2_hypenet: still running"; else echo "smollm2_hypenet: process ended"; fi
    ;;
  *) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; [ "${1:-}" = -h ] || [ "${1:-}" = --help ] ;;
esac
