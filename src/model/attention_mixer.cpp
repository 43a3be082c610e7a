// Softmax attention of one layer: Qwen3's (q/k RMSNorm before RoPE, GQA) and HypeNet's kept
// layers (NoPE, sigmoid output gate, HyPE logits scaling folded into q). PyTorch's fused
// kernels do the attention:
// - a whole sequence, or one new token against the cache (decode): SDPA, GQA in the kernel
//   (enable_gqa). (Folding the query heads of a KV head into the query length measured 2x
//   slower per decode step on an H100: docs/benchmarks.md.)
// - a prefill chunk continuing the cache: split-KV. The chunk attends to the cached keys (no
//   mask, GQA folded) and to its own keys (causal), each with its log-sum-exp, and the two are
//   merged exactly; memory stays O(chunk x cache) in the kernels, with no [chunk, cache] mask;
// - left-padded batches: SDPA with the padding-aware mask of the ForwardContext.
// - a decode step whose cache position is device data (DecodeGraph): K/V written at that slot,
//   then decode_attention over the whole cache buffers, masked by the device length: the
//   flash-decoding kernel of decode_attention_cuda.cu when built with HALO_CUDA (it reads the valid
//   keys only), else SDPA with a mask over the capacity.
#include <ATen/ATen.h>

#include <cmath>

#include "halo/causal_lm.h"
#include "halo/inference_cache.h"
#include "model/mixers.h"
#include "ops/decode_attention.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"

namespace halo {
namespace {

struct Attended {
  at::Tensor out;  // [B, H, T, D]
  at::Tensor lse;  // [B, H, T] float32 (float64 for float64 inputs)
};

// Attention with its log-sum-exp from the fused kernels (flash on CUDA half types, memory-
// efficient on CUDA float32, flash on the CPU) or, for float64, written out.
Attended attend_with_lse(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal, double scale) {
  const int64_t t = q.size(2);
  if (q.scalar_type() == at::kDouble) {
    at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * scale;
    if (causal) scores.masked_fill_(at::ones({t, k.size(2)}, q.options().dtype(at::kBool)).triu(1), -INFINITY);
    at::Tensor lse = at::logsumexp(scores, -1);
    return {at::matmul(at::exp(scores - lse.unsqueeze(-1)), v), lse};
  }
  if (q.is_cuda() && (q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf)) {
    auto r = at::_scaled_dot_product_flash_attention(q, k, v, 0.0, causal, false, scale);
    return {std::get<0>(r), std::get<1>(r)};
  }
  if (q.is_cuda()) {
    auto r = at::_scaled_dot_product_efficient_attention(q, k, v, {}, true, 0.0, causal, scale);
    return {std::get<0>(r), std::get<1>(r).narrow(-1, 0, t)};
  }
  auto r = at::_scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, {}, scale);
  return {std::get<0>(r), std::get<1>(r)};
}

// Attention of q [B, H, T, D] over k, v [B, KV, S, D] with no mask, GQA folded into the length.
Attended attend_folded(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2), d = q.size(3), kv = k.size(1);
  Attended a = attend_with_lse(q.reshape({b, kv, (h / kv) * t, d}), k, v, false, scale);
  return {a.out.reshape({b, h, t, d}), a.lse.reshape({b, h, t})};
}

// Queries of a chunk continuing a cache: [cached keys] merged with [own keys, causal].
at::Tensor attend_split(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  const int64_t t = q.size(2), s = k.size(2), groups = q.size(1) / k.size(1);
  Attended past = attend_folded(q, k.narrow(2, 0, s - t), v.narrow(2, 0, s - t), scale);
  at::Tensor k_own = k.narrow(2, s - t, t), v_own = v.narrow(2, s - t, t);
  if (groups > 1) {
    k_own = k_own.repeat_interleave(groups, 1);
    v_own = v_own.repeat_interleave(groups, 1);
  }
  Attended own = attend_with_lse(q, k_own, v_own, true, scale);
  at::Tensor lse = at::logaddexp(past.lse, own.lse);
  at::Tensor w_past = at::exp(past.lse - lse).unsqueeze(-1), w_own = at::exp(own.lse - lse).unsqueeze(-1);
  return (past.out.to(w_past.scalar_type()) * w_past + own.out.to(w_own.scalar_type()) * w_own).to(q.scalar_type());
}

}  // namespace

at::Tensor attention_mixer(const ModelConfig& c, const MixerWeights& w, const at::Tensor& x, const ForwardContext& ctx,
                           InferenceCache* cache, int64_t layer) {
  const int64_t b = x.size(0), t = x.size(1);
  const int64_t h = c.num_attention_heads, kv = c.num_key_value_heads, d = c.head_dim;
  at::Tensor q = at::linear(x, w.q_proj, w.q_bias).view({b, t, h, d});
  at::Tensor k = at::linear(x, w.k_proj, w.k_bias).view({b, t, kv, d});
  if (c.attn_use_qk_norm) {
    q = rms_norm(q, w.q_norm, c.rms_norm_eps);
    k = rms_norm(k, w.k_norm, c.rms_norm_eps);
  }
  q = q.transpose(1, 2);
  k = k.transpose(1, 2);
  at::Tensor v = at::linear(x, w.v_proj, w.v_bias).view({b, t, kv, d}).transpose(1, 2);
  if (c.attn_use_rope) {
    q = apply_rope(q, ctx.attn_cos, ctx.attn_sin);
    k = apply_rope(k, ctx.attn_cos, ctx.attn_sin);
  }
  if (c.attn_logits_scaling_const) q = q * *c.attn_logits_scaling_const;
  if (ctx.hype_scale.defined()) q = q * ctx.hype_scale;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  if (ctx.cache_position.defined()) {
    auto [keys, values] = cache->write_kv_at(layer, k, v, ctx.cache_position);
    at::Tensor o = decode_attention(q.select(2, 0), keys, values, ctx.cache_length, cache->left_padding(), scale);
    o = o.reshape({b, 1, h * d});
    if (c.attn_use_output_gate) o = o * at::sigmoid(at::linear(x, w.o_gate));
    return at::linear(o, w.o_proj, w.o_bias);
  }
  if (cache != nullptr) std::tie(k, v) = cache->append_kv(layer, k, v);
  const int64_t s = k.size(2);
  const bool gqa = kv != h;
  at::Tensor o;
  if (ctx.attn_mask.defined()) {
    o = at::scaled_dot_product_attention(q, k, v, ctx.attn_mask, 0.0, false, scale, gqa);
  } else if (t == s || t == 1) {
    // A whole causal block, or one new token that sees the whole cache.
    o = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/t == s && t > 1, scale, gqa);
  } else {
    o = attend_split(q, k, v, scale);
  }
  o = o.transpose(1, 2).reshape({b, t, h * d});
  if (c.attn_use_output_gate) o = o * at::sigmoid(at::linear(x, w.o_gate));
  return at::linear(o, w.o_proj, w.o_bias);
}

}  // namespace halo
