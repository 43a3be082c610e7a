// Softmax attention of one layer: Qwen3's (q/k RMSNorm before RoPE, GQA) and HypeNet's kept
// layers (NoPE, sigmoid output gate, HyPE logits scaling folded into q). PyTorch's fused SDPA
// does the attention; GQA goes to the kernel without repeating K/V (enable_gqa).
#include <ATen/ATen.h>

#include <cmath>

#include "halo/causal_lm.h"
#include "halo/inference_cache.h"

namespace halo {

at::Tensor attention_mixer(const ModelConfig& c, const MixerWeights& w, const at::Tensor& x,
                           const ForwardContext& ctx, InferenceCache* cache, int64_t layer) {
  const int64_t b = x.size(0), t = x.size(1);
  const int64_t h = c.num_attention_heads, kv = c.num_key_value_heads, d = c.head_dim;
  at::Tensor q = rms_norm(at::linear(x, w.q_proj).view({b, t, h, d}), w.q_norm, c.rms_norm_eps).transpose(1, 2);
  at::Tensor k = rms_norm(at::linear(x, w.k_proj).view({b, t, kv, d}), w.k_norm, c.rms_norm_eps).transpose(1, 2);
  at::Tensor v = at::linear(x, w.v_proj).view({b, t, kv, d}).transpose(1, 2);
  if (c.attn_use_rope) {
    q = apply_rope(q, ctx.attn_cos, ctx.attn_sin);
    k = apply_rope(k, ctx.attn_cos, ctx.attn_sin);
  }
  if (c.attn_logits_scaling_const) q = q * *c.attn_logits_scaling_const;
  if (ctx.hype_scale.defined()) q = q * ctx.hype_scale;
  if (cache != nullptr) std::tie(k, v) = cache->append_kv(layer, k, v);
  const int64_t s = k.size(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const bool gqa = kv != h;
  at::Tensor o;
  if (ctx.attn_mask.defined()) {
    o = at::scaled_dot_product_attention(q, k, v, ctx.attn_mask, 0.0, false, scale, gqa);
  } else if (t == s || t == 1) {
    // A full causal block, or one new token that sees the whole cache.
    o = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/t == s && t > 1, scale, gqa);
  } else {
    // A chunk continuing a cache: query i sits at key position s - t + i (bottom-right causal).
    at::Tensor qi = at::arange(s - t, s, x.options().dtype(at::kLong)).unsqueeze(1);
    at::Tensor kj = at::arange(0, s, x.options().dtype(at::kLong)).unsqueeze(0);
    o = at::scaled_dot_product_attention(q, k, v, kj <= qi, 0.0, false, scale, gqa);
  }
  o = o.transpose(1, 2).reshape({b, t, h * d});
  if (c.attn_use_output_gate) o = o * at::sigmoid(at::linear(x, w.o_gate));
  return at::linear(o, w.o_proj);
}

}  // namespace halo
