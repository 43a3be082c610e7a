// Lightning attention of one HypeNet layer (../shared/docs/METHOD.md §2.3): per-head q/k RMSNorm, RoPE, the
// fixed-decay linear recurrence in float32 (lightning_attention.h), ONE RMSNorm over all heads,
// the sigmoid output gate z_proj, then o_proj. K/V heads are repeated when lightning_nkv <
// lightning_nh. Padded positions get k = 0, so they add nothing to the recurrent state. A decode
// step at a device-held position (CausalLM::decode_step) updates the cached state in place. A
// one-token step with a cached state and no padding runs everything between the projections and
// the output norm as one fused kernel where the build has one (lightning_decode.h: CUDA), which
// also updates the state in place.
#include <ATen/ATen.h>

#include <optional>

#include "halo/causal_lm.h"
#include "halo/inference_cache.h"
#include "model/mixers.h"
#include "ops/lightning_decode.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"

namespace halo {
namespace {

// The fused one-token step's [B, 1, H*D] output (lightning_decode.h), or nothing where it does
// not apply: more than one token, no cached state yet, padding, or inputs the kernel does not take.
std::optional<at::Tensor> fused_decode_step(const ModelConfig& c, const MixerWeights& w, const at::Tensor& q,
                                            const at::Tensor& k, const at::Tensor& v, const at::Tensor& decay,
                                            const ForwardContext& ctx, InferenceCache* cache, int64_t layer) {
  if (q.size(1) != 1 || cache == nullptr || ctx.token_valid.defined()) return std::nullopt;
  const at::Tensor& state = cache->lightning_state(layer);
  if (!state.defined() || (c.lightning_use_rope && !ctx.light_cos.defined())) return std::nullopt;
  const bool norm = c.lightning_use_qk_norm;
  const int64_t b = q.size(0);
  std::optional<at::Tensor> out = fused_lightning_decode(
      q.view({b, -1}), k.view({b, -1}), v.view({b, -1}), norm ? w.q_norm : at::Tensor(), norm ? w.k_norm : at::Tensor(),
      c.rms_norm_eps, c.lightning_use_rope ? ctx.light_cos : at::Tensor(),
      c.lightning_use_rope ? ctx.light_sin : at::Tensor(), decay, c.lightning_scale_value(), state);
  if (out) return out->view({b, 1, -1});
  return std::nullopt;
}

// The output norm over all heads, the sigmoid gate and o_proj, on o [B, T, H*D].
at::Tensor output_projection(const ModelConfig& c, const MixerWeights& w, const at::Tensor& x, at::Tensor o) {
  if (c.lightning_use_output_norm) o = rms_norm(o, w.o_norm, c.rms_norm_eps);
  if (c.lightning_use_output_gate) o = o * at::sigmoid(at::linear(x, w.z_proj));
  return at::linear(o, w.o_proj, w.o_bias);
}

}  // namespace

at::Tensor lightning_mixer(const ModelConfig& c, const MixerWeights& w, const at::Tensor& x, const at::Tensor& decay,
                           const ForwardContext& ctx, InferenceCache* cache, int64_t layer) {
  const int64_t b = x.size(0), t = x.size(1);
  const int64_t nh = c.lightning_nh, nkv = c.lightning_nkv, d = c.lightning_head_dim;
  at::Tensor q = at::linear(x, w.q_proj, w.q_bias);
  at::Tensor k = at::linear(x, w.k_proj, w.k_bias);
  at::Tensor v = at::linear(x, w.v_proj, w.v_bias);
  if (std::optional<at::Tensor> o = fused_decode_step(c, w, q, k, v, decay, ctx, cache, layer))
    return output_projection(c, w, x, *o);
  q = q.view({b, t, nh, d});
  k = k.view({b, t, nkv, d});
  v = v.view({b, t, nkv, d}).transpose(1, 2);
  if (c.lightning_use_qk_norm) {
    q = rms_norm(q, w.q_norm, c.rms_norm_eps);
    k = rms_norm(k, w.k_norm, c.rms_norm_eps);
  }
  q = q.transpose(1, 2);
  k = k.transpose(1, 2);
  if (c.lightning_use_rope) {
    q = apply_rope(q, ctx.light_cos, ctx.light_sin);
    k = apply_rope(k, ctx.light_cos, ctx.light_sin);
  }
  if (ctx.token_valid.defined()) k = at::where(ctx.token_valid.to(at::kBool), k, at::zeros({}, k.options()));
  if (nkv != nh) {
    k = k.repeat_interleave(nh / nkv, 1);
    v = v.repeat_interleave(nh / nkv, 1);
  }
  c10::optional<at::Tensor> state;
  if (cache != nullptr && cache->lightning_state(layer).defined()) state = cache->lightning_state(layer);
  LightningImpl impl = t == 1 ? LightningImpl::recurrent : ctx.lightning_impl;
  LightningOutput r = lightning_attention(q, k, v, decay, c.lightning_scale_value(), impl, state, ctx.lightning_chunk);
  if (cache != nullptr && ctx.cache_position.defined()) {
    cache->lightning_state(layer).copy_(r.state);  // in place: a CUDA graph replays on fixed addresses
  } else if (cache != nullptr) {
    cache->lightning_state(layer) = r.state;
  }
  return output_projection(c, w, x, r.out.transpose(1, 2).reshape({b, t, nh * d}));
}

}  // namespace halo
