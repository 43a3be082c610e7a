#!/usr/bin/env bash
# Evaluates several model directories with `halo eval --json` (the same options for each) and
# gathers the results into one CSV (model,task,setting,metric,value) and one markdown table (a
# row per task/setting/metric, a column per model). Stops at the first model that fails.
#   scripts/eval_batch.sh [--out DIR] MODEL_DIR... [-- HALO_EVAL_OPTIONS...]
# Writes DIR/eval.csv, DIR/eval.md and DIR/NN-<model name>.json (DIR default: runs/eval).
# The binary is $HALO_BIN, else build/bin/halo.
# Example:
#   scripts/eval_batch.sh runs/qwen3-1.7b runs/hypenet-2b -- --tasks ppl,mc \
#     --text ../shared/data/text/brown.txt --max-tokens 65536 \
#     --task-file ../shared/data/piqa/valid.jsonl --labels ../shared/data/piqa/valid-labels.lst
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
halo=${HALO_BIN:-$root/build/bin/halo}
out=runs/eval
models=()
usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || { echo "eval_batch.sh: --out needs a directory" >&2; exit 2; }; out=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "eval_batch.sh: unknown option $1 (halo eval options go after --)" >&2; exit 2 ;;
    *) models+=("$1"); shift ;;
  esac
done
if [ ${#models[@]} -eq 0 ]; then
  usage >&2
  exit 2
fi
[ -x "$halo" ] || { echo "eval_batch.sh: no halo binary at $halo (build it, or set HALO_BIN)" >&2; exit 2; }
mkdir -p "$out"

results=()
for i in "${!models[@]}"; do
  model=${models[$i]}
  json=$(printf '%s/%02d-%s.json' "$out" "$i" "$(basename "$model")")
  echo "eval_batch.sh: evaluating $model -> $json" >&2
  "$halo" eval --model "$model" "$@" --json --out "$json" >/dev/null
  results+=("$json")
done

python3 - "$out/eval.csv" "$out/eval.md" "${results[@]}" <<'EOF'
import csv, json, sys

csv_path, md_path, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
reports = [json.load(open(p)) for p in paths]
models = [r["model"] for r in reports]
keys, values = [], {}
with open(csv_path, "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["model", "task", "setting", "metric", "value"])
    for model, report in zip(models, reports):
        for row in report["rows"]:
            key = (row["task"], row["setting"], row["metric"])
            if key not in values:
                keys.append(key)
                values[key] = {}
            values[key][model] = row["value"]
            out.writerow([model, *key, repr(row["value"])])
with open(md_path, "w") as f:
    f.write("| task | setting | metric | " + " | ".join(models) + " |\n")
    f.write("|---|---|---|" + "---:|" * len(models) + "\n")
    for key in keys:
        cells = ["%.4f" % values[key][m] if m in values[key] else "-" for m in models]
        f.write("| " + " | ".join(key) + " | " + " | ".join(cells) + " |\n")
print(f"eval_batch.sh: {len(models)} models -> {csv_path}, {md_path}", file=sys.stderr)
EOF
