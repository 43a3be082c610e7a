#!/usr/bin/env bash
# On the GPU machine, after scripts/device/build.sh: the quickstart's HALO pipeline
# (configs/quickstart.yaml: pretrain, align, select, distill, finetune, report) on CUDA in
# bfloat16. The machine has no Debian mirror, so the corpus, retrieval documents and tokenizer
# that scripts/quickstart.sh built on the CPU machine travel as runs/quickstart-inputs.tar.xz
# (carried), made there with
#   tar -cJf runs/quickstart-inputs.tar.xz runs/corpus/raw runs/quickstart-data/retrieval \
#     runs/quickstart-data/tokenizer
# The corpus is tokenized here; the experiment's ../shared paths lead to the carried
# .device-deps/shared. Log: $OUT/quickstart.log; report: $OUT/quickstart-report.md.
# Extra arguments go to `halo run`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
halo=${HALO_BUILD_DIR:-$root/build-cuda}/bin/halo
out=${OUT:-$root/device-out}
mkdir -p "$out"
cd "$root"
tar -xJf runs/quickstart-inputs.tar.xz
[ -e ../shared ] || ln -s "$root/.device-deps/shared" ../shared
"$halo" data prepare --tokenizer runs/quickstart-data/tokenizer --input runs/corpus/raw runs/quickstart-data/retrieval \
  --out runs/quickstart-data/tokens > "$out/quickstart.log" 2>&1
"$halo" run configs/quickstart.yaml --device cuda "$@" >> "$out/quickstart.log" 2>&1
cp runs/quickstart/report/report.md "$out/quickstart-report.md"
cat "$out/quickstart-report.md"
