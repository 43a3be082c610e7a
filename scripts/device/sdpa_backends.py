"""Times PyTorch's attention backends (flash, cuDNN, memory-efficient) on the shapes halo's
attention layers run, to pick the backend for prefill and training (issue 17). Run on the GPU
machine with its torch: /opt/torch/.venv/bin/python scripts/device/sdpa_backends.py > sdpa.md

Shapes (HypeNet-2B / Qwen3-1.7B attention: 16 query heads, 8 KV heads, head dim 128, bf16):
- prefill, past keys: a 16K-token chunk's queries against S cached keys, GQA folded into the
  query length ([1, 8, 32K, 128] x [1, 8, S, 128], no mask), the bulk of a long prefill;
- prefill, own keys: the chunk's causal self-attention, [1, 16, 16K, 128];
- training: causal forward + backward at stage 2 (12 x 512) and stage 3 (1 x 16K).
TFLOP/s counts 4 * Tq * Tk * D per head (halved when causal); medians of 10 after 3 warm-ups.
It also checks that cuDNN's log-sum-exp agrees with flash's (halo merges split attention by it).
"""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}


def median_ms(fn, reps=10, warm=3):
    for _ in range(warm):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def shape_row(name, b, hq, hk, tq, tk, causal, backward):
    d = 128
    q = torch.randn(b, hq, tq, d, device="cuda", dtype=torch.bfloat16, requires_grad=backward)
    k = torch.randn(b, hk, tk, d, device="cuda", dtype=torch.bfloat16, requires_grad=backward)
    v = torch.randn(b, hk, tk, d, device="cuda", dtype=torch.bfloat16, requires_grad=backward)
    flops = 4.0 * b * hq * tq * tk * d * (0.5 if causal else 1.0) * (3.5 if backward else 1.0)
    cells = []
    for backend in BACKENDS.values():
        def step():
            with sdpa_kernel(backend):
                o = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=hq != hk)
                if backward:
                    o.backward(torch.ones_like(o))
        try:
            ms = median_ms(step)
            cells.append(f"{ms:.3f} ms ({flops / ms / 1e9:.0f} TFLOP/s)")
        except RuntimeError as e:
            cells.append("n/a: " + str(e).splitlines()[0][:60])
        torch.cuda.empty_cache()
    print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def check_lse():
    q = torch.randn(1, 8, 4096, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, 8, 8192, 128, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    flash = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, False, False, scale=0.088)
    cudnn = torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, None, True, 0.0, False, False, scale=0.088)
    print(f"\ncuDNN lse shape {tuple(cudnn[1].shape)} dtype {cudnn[1].dtype}, flash lse {tuple(flash[1].shape)}; "
          f"max |lse diff| {(cudnn[1].reshape(flash[1].shape) - flash[1]).abs().max().item():.2e}, "
          f"max |out diff| {(cudnn[0] - flash[0]).abs().max().item():.2e}; "
          f"cuDNN out strides {cudnn[0].stride()}")


def main():
    print(f"# SDPA backends, {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"cuDNN {torch.backends.cudnn.version()}\n")
    print("| shape | " + " | ".join(BACKENDS) + " |\n|---|" + "---|" * len(BACKENDS))
    for s in (16384, 131072, 524288):
        shape_row(f"prefill past keys, 32K folded x {s // 1024}K", 1, 8, 8, 32768, s, False, False)
    shape_row("prefill own keys, 16K causal", 1, 16, 8, 16384, 16384, True, False)
    shape_row("training fwd+bwd 12 x 512 causal", 12, 16, 8, 512, 512, True, True)
    shape_row("training fwd+bwd 1 x 16K causal", 1, 16, 8, 16384, 16384, True, True)
    check_lse()


if __name__ == "__main__":
    main()
