#!/usr/bin/env python3
"""The ablation chart of docs/results/smollm2-hypenet.md from the run directories that
scripts/device/smollm2_hypenet.sh packs (smollm2-results.tgz, unpacked): for each variant, the
tune stage's held-out loss (wikitext-2 test) at 32K and 64K at the chosen a, and the mean
distillation KL of stage 2's last 20 steps. Needs matplotlib.
Usage: scripts/smollm2_ablation_chart.py RUNS_DIR OUT.png"""
import json
import sys
from pathlib import Path

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("smollm2_ablation_chart: needs matplotlib (pip install matplotlib)")

VARIANTS = [("smollm2-small", "HyPE + HALO"), ("smollm2-rope", "all-RoPE"), ("smollm2-nope", "all-NoPE"),
            ("smollm2-even", "even layers"), ("smollm2-kl", "KL layers")]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.splitlines()[-1])
    runs, out = Path(sys.argv[1]), sys.argv[2]
    names, loss32, loss64, kl = [], [], [], []
    for run, name in VARIANTS:
        tune = runs / run / "tune" / "hype_scaling.json"
        metrics = runs / run / "distill" / "metrics.jsonl"
        if not tune.exists() or not (runs / run / "distill" / "DONE").exists():
            continue
        t = json.loads(tune.read_text())
        best = next(p for p in t["points"] if p["a"] == t["best_a"])
        losses = [json.loads(line)["loss"] for line in metrics.read_text().splitlines()]
        losses = [x for x in losses if isinstance(x, (int, float))]
        names.append(name)
        by_length = dict(zip(t["lengths"], best["nll_by_length"]))
        loss32.append(by_length[32768])
        loss64.append(by_length[65536])
        kl.append(sum(losses[-20:]) / len(losses[-20:]))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    x = range(len(names))
    a.bar([i - 0.2 for i in x], loss32, 0.4, label="32K")
    a.bar([i + 0.2 for i in x], loss64, 0.4, label="64K")
    a.set_xticks(list(x), names, rotation=15)
    a.set_ylim(min(loss32 + loss64) - 0.3, max(loss32 + loss64) + 0.1)
    a.set_title("held-out loss past the 8K training length (nats)")
    a.legend()
    b.bar(list(x), kl, 0.5, color="tab:green")
    b.set_xticks(list(x), names, rotation=15)
    b.set_title("stage-2 KL to the teacher (last 20 steps, 512 tokens)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
