#!/usr/bin/env bash
# On the GPU machine, after scripts/device/lightning.sh built: per-kernel time, DRAM bytes and
# tensor-pipe use of the fused lightning kernels at one BxT shape (argument, 4x16K by default;
# H=16, D=128, bf16) from Nsight Compute (clock control off: the card as found). Output: $OUT/ncu-lightning.txt.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
halo=${HALO_BUILD_DIR:-$root/build-cuda}/bin/halo
out=${OUT:-$root/device-out}
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu | head -n 1)
"$ncu" --clock-control none --kernel-name regex:"recurrence|forward_kernel|backward_kernel" --launch-count 14 \
  --metrics gpu__time_duration.sum,dram__bytes.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,sm__warps_active.avg.pct_of_peak_sustained_active \
  "$halo" bench kernels --device cuda --shapes "${1:-4x16K}" --impl chunked --repeat 1 > "$out/ncu-lightning.txt" 2>&1
grep -E "^  [a-z].*kernel|gpu__time|dram__bytes|hmma|warps_active" "$out/ncu-lightning.txt" |
  sed -E 's/^  void [^:]*::([a-z_]+)<([^>]*)>.*/\1<\2>/; s/ +/ /g'
# With LIGHTNING_STALLS=1, also where the first recurrence launch's warps wait (cycles per issued
# instruction by stall reason), into $OUT/ncu-stalls.txt.
if [[ ${LIGHTNING_STALLS:-0} == 1 ]]; then
  "$ncu" --clock-control none --kernel-name regex:recurrence --launch-count 1 \
    --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,smsp__inst_executed.sum,smsp__cycles_active.avg,gpu__time_duration.sum" \
    "$halo" bench kernels --device cuda --shapes "${1:-4x16K}" --impl chunked --repeat 1 > "$out/ncu-stalls.txt" 2>&1
  grep -E "stalled|inst_executed|cycles_active|gpu__time" "$out/ncu-stalls.txt" | sed -E 's/ +/ /g' | sort -t' ' -k4 -g -r | head -n 40
fi
# With LIGHTNING_DETAIL=<kernel regex>, also the full Nsight Compute sections of that kernel's first
# launch ($OUT/ncu-detail.txt) and its SASS with sampled stalls per instruction ($OUT/ncu-sass.csv).
if [[ -n ${LIGHTNING_DETAIL:-} ]]; then
  rep=$(mktemp -d)/detail
  "$ncu" --clock-control none --kernel-name regex:"$LIGHTNING_DETAIL" --launch-count 1 --set full \
    --import-source no -o "$rep" \
    "$halo" bench kernels --device cuda --shapes "${1:-4x16K}" --impl chunked --repeat 1 > "$out/ncu-detail.log" 2>&1
  "$ncu" --import "$rep.ncu-rep" --print-details all > "$out/ncu-detail.txt" 2>&1
  "$ncu" --import "$rep.ncu-rep" --page source --print-source sass --csv > "$out/ncu-sass.csv" 2>&1
  grep -E "Duration|Throughput|Warp Cycles|Issued|Eligible|Stall|Bank|Registers|Achieved Occupancy|Block Limit" \
    "$out/ncu-detail.txt" | sed -E 's/ +/ /g' | head -n 60
fi
