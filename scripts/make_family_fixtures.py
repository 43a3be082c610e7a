#!/usr/bin/env python3
"""Writes the tiny random Llama-family checkpoints of tests/data/ and their reference logits.

Each fixture is a Hugging Face directory saved by transformers (config.json, model.safetensors)
plus reference.safetensors: input_ids [2, 21] int64 and logits [2, 21, V] float32 from the same
weights in float32 (eager attention). tests/test_model_families.cpp compares halo with them.
Run once by hand (needs torch and transformers; the committed fixtures came from transformers
4.57.1, torch 2.11.0):

    python3 scripts/make_family_fixtures.py tests/data
"""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

COMMON = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2)

FIXTURES = {
    # Plain Llama (SmolLM2's shape of choices): no biases, tied embeddings, default RoPE.
    "llama-tiny": (LlamaConfig, LlamaForCausalLM, dict(rope_theta=100000.0, tie_word_embeddings=True)),
    # Llama with every bias, untied, llama3 RoPE scaling.
    "llama-tiny-llama3": (LlamaConfig, LlamaForCausalLM, dict(
        rope_theta=500000.0, tie_word_embeddings=False, attention_bias=True, mlp_bias=True,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 16})),
    # Llama with yarn RoPE scaling and head_dim != hidden / heads.
    "llama-tiny-yarn": (LlamaConfig, LlamaForCausalLM, dict(
        rope_theta=10000.0, tie_word_embeddings=True, head_dim=16,
        rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16})),
    # Qwen2: q/k/v biases, linear RoPE scaling.
    "qwen2-tiny": (Qwen2Config, Qwen2ForCausalLM, dict(
        rope_theta=1000000.0, tie_word_embeddings=False, use_sliding_window=False,
        rope_scaling={"rope_type": "linear", "factor": 2.0})),
}


def main(out_root: Path) -> None:
    for index, (name, (config_class, model_class, extra)) in enumerate(FIXTURES.items()):
        torch.manual_seed(1000 + index)
        config = config_class(**COMMON, **extra, attn_implementation="eager")
        model = model_class(config).to(torch.float32).eval()
        with torch.no_grad():  # biases and norm gains away from their 0/1 init, so that they matter
            for pname, p in model.named_parameters():
                if pname.endswith("bias") or "norm" in pname:
                    p.add_(0.1 * torch.randn_like(p))
        out = out_root / name
        model.save_pretrained(out, safe_serialization=True)
        (out / "generation_config.json").unlink(missing_ok=True)
        ids = torch.randint(0, config.vocab_size, (2, 21), generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            logits = model(input_ids=ids).logits.float().contiguous()
        save_file({"input_ids": ids.contiguous(), "logits": logits}, str(out / "reference.safetensors"))
        print(name, json.loads((out / "config.json").read_text())["architectures"], tuple(logits.shape))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data"))
