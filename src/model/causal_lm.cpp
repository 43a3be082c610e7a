// CausalLM: parameters by Hugging Face name, the per-call ForwardContext (RoPE tables, HyPE
// scales and padding masks computed once and shared by all layers), the residual stack, and
// the expected shape of each parameter (model_directory.cpp loads them). The math follows ../shared/docs/METHOD.md §1
// operation by operation (RMSNorm in float32 then cast, q/k norms before RoPE, cos/sin computed in float32) so that
// float32 results match transformers to rounding.
#include "halo/causal_lm.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <set>

#include "halo/error.h"
#include "halo/inference_cache.h"
#include "halo/logging.h"
#include "model/activation_recompute.h"
#include "model/mixers.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"

namespace halo {

CausalLM::CausalLM(ModelConfig config) : config_(std::move(config)), layers_(config_.num_hidden_layers) {
  if (config_.has_lightning_layers()) decay_ = alibi_decays(config_.lightning_nh);
  rope_attention_factor_ = rope_attention_factor(config_);
  set_rope_frequencies(c10::Device(c10::kCPU), at::kFloat);
}

void CausalLM::set_rope_frequencies(const c10::Device& device, c10::ScalarType dtype) {
  const c10::ScalarType compute = dtype == at::kDouble ? at::kDouble : at::kFloat;
  attn_inv_freq_ = rope_inverse_frequency_tensor(rope_inverse_frequencies(config_, config_.head_dim), compute, device);
  light_inv_freq_ = config_.has_lightning_layers()
                        ? rope_inverse_frequency_tensor(rope_inverse_frequencies(config_, config_.lightning_head_dim),
                                                        compute, device)
                        : at::Tensor();
}

MixerWeights cloned(const MixerWeights& w) {
  MixerWeights c = w;
  for (at::Tensor* t : {&c.q_proj, &c.k_proj, &c.v_proj, &c.o_proj, &c.q_norm, &c.k_norm, &c.o_gate, &c.z_proj,
                        &c.o_norm, &c.q_bias, &c.k_bias, &c.v_bias, &c.o_bias}) {
    if (t->defined()) *t = t->clone();
  }
  return c;
}

std::vector<std::pair<std::string, at::Tensor*>> CausalLM::named_parameters() {
  std::vector<std::pair<std::string, at::Tensor*>> out;
  for (ParameterSpec& spec : parameter_specs(config_)) {
    at::Tensor* slot = parameter_slot(spec.name);
    out.emplace_back(std::move(spec.name), slot);
  }
  return out;
}

at::Tensor* CausalLM::parameter_slot(const std::string& name) {
  if (name == "model.embed_tokens.weight") return &embed_tokens_;
  if (name == "model.norm.weight") return &norm_;
  if (name == "lm_head.weight") return &lm_head_;
  const std::string prefix = "model.layers.";
  const size_t dot = name.find('.', prefix.size());
  if (name.rfind(prefix, 0) == 0 && dot != std::string::npos) {
    const int64_t i = std::stoll(name.substr(prefix.size(), dot - prefix.size()));
    const std::string part = name.substr(dot + 1);
    LayerWeights& l = layers_.at(i);
    MixerWeights& m = l.mixer;
    const std::pair<const char*, at::Tensor*> slots[] = {
        {"input_layernorm.weight", &l.input_layernorm},
        {"post_attention_layernorm.weight", &l.post_attention_layernorm},
        {"self_attn.q_proj.weight", &m.q_proj},
        {"self_attn.k_proj.weight", &m.k_proj},
        {"self_attn.v_proj.weight", &m.v_proj},
        {"self_attn.o_proj.weight", &m.o_proj},
        {"self_attn.q_norm.weight", &m.q_norm},
        {"self_attn.k_norm.weight", &m.k_norm},
        {"self_attn.o_gate.weight", &m.o_gate},
        {"self_attn.z_proj.weight", &m.z_proj},
        {"self_attn.o_norm.weight", &m.o_norm},
        {"mlp.gate_proj.weight", &l.mlp.gate_proj},
        {"mlp.up_proj.weight", &l.mlp.up_proj},
        {"mlp.down_proj.weight", &l.mlp.down_proj},
        {"self_attn.q_proj.bias", &m.q_bias},
        {"self_attn.k_proj.bias", &m.k_bias},
        {"self_attn.v_proj.bias", &m.v_bias},
        {"self_attn.o_proj.bias", &m.o_bias},
        {"mlp.gate_proj.bias", &l.mlp.gate_bias},
        {"mlp.up_proj.bias", &l.mlp.up_bias},
        {"mlp.down_proj.bias", &l.mlp.down_bias},
    };
    for (const auto& [slot_name, slot] : slots) {
      if (part == slot_name) return slot;
    }
  }
  fail("no parameter named ", name);
}

int64_t CausalLM::parameter_count() const {
  int64_t total = 0;
  for (auto& [name, tensor] : const_cast<CausalLM*>(this)->named_parameters()) {
    if (tensor->defined()) total += tensor->numel();
  }
  return total;
}

void CausalLM::set_hype_scaling(std::optional<double> a) {
  if (a && !(*a > 1)) usage_fail("the HyPE constant a must be > 1, got ", *a);
  config_.attn_logits_scaling_const.reset();
  config_.attn_logits_scaling_a = a;
}

void CausalLM::set_lightning_impl(LightningImpl impl, int64_t chunk) {
  if (chunk < 1) usage_fail("lightning chunk size must be positive, got ", chunk);
  lightning_impl_ = impl;
  lightning_chunk_ = chunk;
}

void CausalLM::to(const c10::Device& device, c10::ScalarType dtype) {
  for (auto& [name, tensor] : named_parameters()) {
    if (tensor->defined()) *tensor = tensor->to(device, dtype);
  }
  if (decay_.defined()) decay_ = decay_.to(device);
  set_rope_frequencies(device, dtype);
}

ForwardContext CausalLM::forward_context(const at::Tensor& input_ids, InferenceCache* cache) const {
  ForwardContext ctx;
  ctx.offset = cache != nullptr ? cache->length() : 0;
  ctx.length = input_ids.size(1);
  ctx.lightning_impl = lightning_impl_;
  ctx.lightning_chunk = lightning_chunk_;
  const auto i64 = embed_tokens_.options().dtype(at::kLong);
  at::Tensor absolute = at::arange(ctx.offset, ctx.offset + ctx.length, i64);
  const c10::ScalarType position_dtype = dtype() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor positions = absolute.unsqueeze(0).to(position_dtype);  // [1, T]
  const at::Tensor padding = cache != nullptr ? cache->left_padding() : at::Tensor();
  if (padding.defined()) {
    at::Tensor pad = padding.to(embed_tokens_.device(), at::kLong).unsqueeze(1);  // [B, 1]
    positions = (absolute.unsqueeze(0) - pad).clamp_min(0).to(position_dtype);    // [B, T]
    at::Tensor keys = at::arange(ctx.offset + ctx.length, i64).unsqueeze(0);      // [1, S]
    at::Tensor causal = keys <= absolute.unsqueeze(1);                            // [T, S]
    at::Tensor key_valid = (keys >= pad).unsqueeze(1);                            // [B, 1, S]
    // Padded queries attend to themselves only, so that their rows stay finite.
    at::Tensor self = keys == absolute.unsqueeze(1);
    ctx.attn_mask = ((key_valid & causal.unsqueeze(0)) | self.unsqueeze(0)).unsqueeze(1);
    ctx.token_valid = (absolute.unsqueeze(0) >= pad).view({-1, 1, ctx.length, 1}).to(dtype());
  }
  set_position_tables(ctx, positions);
  return ctx;
}

void CausalLM::set_position_tables(ForwardContext& ctx, const at::Tensor& token_positions) const {
  const at::Tensor positions = token_positions.unsqueeze(1);  // [B|1, 1, T]
  bool attn_rope = false;
  for (MixerType m : config_.mixer_types) attn_rope |= m == MixerType::attention && config_.attn_use_rope;
  if (attn_rope) {
    std::tie(ctx.attn_cos, ctx.attn_sin) = rope_tables(positions, attn_inv_freq_, rope_attention_factor_, dtype());
  }
  if (config_.has_lightning_layers() && config_.lightning_use_rope) {
    if (attn_rope && config_.lightning_head_dim == config_.head_dim) {
      ctx.light_cos = ctx.attn_cos;
      ctx.light_sin = ctx.attn_sin;
    } else {
      std::tie(ctx.light_cos, ctx.light_sin) = rope_tables(positions, light_inv_freq_, rope_attention_factor_, dtype());
    }
  }
  if (config_.attn_logits_scaling_a) {
    const double a = *config_.attn_logits_scaling_a;
    ctx.hype_scale = (at::log(positions + a) / std::log(a)).unsqueeze(-1).to(dtype());
  }
}

at::Tensor CausalLM::mixer_forward(int64_t layer, const at::Tensor& x, const ForwardContext& ctx) {
  const MixerWeights& w = layers_.at(layer).mixer;
  return config_.mixer_types[layer] == MixerType::attention
             ? attention_mixer(config_, w, x, ctx, nullptr, layer)
             : lightning_mixer(config_, w, x, decay_, ctx, nullptr, layer);
}

at::Tensor CausalLM::layer_forward(int64_t i, const at::Tensor& x, const ForwardContext& ctx, InferenceCache* cache) {
  const LayerWeights& l = layers_[i];
  at::Tensor normed = rms_norm(x, l.input_layernorm, config_.rms_norm_eps);
  at::Tensor mixed = config_.mixer_types[i] == MixerType::attention
                         ? attention_mixer(config_, l.mixer, normed, ctx, cache, i)
                         : lightning_mixer(config_, l.mixer, normed, decay_, ctx, cache, i);
  if (mixer_observer_) mixer_observer_(i, normed, mixed);
  at::Tensor h = x + mixed;
  at::Tensor n2 = rms_norm(h, l.post_attention_layernorm, config_.rms_norm_eps);
  const MlpWeights& mlp = l.mlp;
  return h +
         at::linear(at::silu(at::linear(n2, mlp.gate_proj, mlp.gate_bias)) * at::linear(n2, mlp.up_proj, mlp.up_bias),
                    mlp.down_proj, mlp.down_bias);
}

at::Tensor CausalLM::forward_hidden(const at::Tensor& input_ids, InferenceCache* cache,
                                    std::vector<at::Tensor>* hidden_states) {
  if (input_ids.dim() != 2) fail("input_ids must be [batch, time], got ", input_ids.dim(), " dimensions");
  const ForwardContext ctx = forward_context(input_ids, cache);
  at::Tensor x = at::embedding(embed_tokens_, input_ids.to(embed_tokens_.device()));
  const bool recompute = recompute_activations_ && cache == nullptr && c10::GradMode::is_enabled();
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    if (hidden_states != nullptr) hidden_states->push_back(x);
    if (recompute) {
      const LayerWeights& l = layers_[i];
      const MixerWeights& m = l.mixer;
      std::vector<at::Tensor> params;
      for (const at::Tensor* t : {&l.input_layernorm, &l.post_attention_layernorm,
                                  &m.q_proj,          &m.k_proj,
                                  &m.v_proj,          &m.o_proj,
                                  &m.q_norm,          &m.k_norm,
                                  &m.o_gate,          &m.z_proj,
                                  &m.o_norm,          &m.q_bias,
                                  &m.k_bias,          &m.v_bias,
                                  &m.o_bias,          &l.mlp.gate_proj,
                                  &l.mlp.up_proj,     &l.mlp.down_proj,
                                  &l.mlp.gate_bias,   &l.mlp.up_bias,
                                  &l.mlp.down_bias}) {
        if (t->defined() && t->requires_grad()) params.push_back(*t);
      }
      x = recomputed([this, i, ctx](const at::Tensor& in) { return layer_forward(i, in, ctx, nullptr); }, x, params);
    } else {
      x = layer_forward(i, x, ctx, cache);
    }
  }
  x = rms_norm(x, norm_, config_.rms_norm_eps);
  if (hidden_states != nullptr) hidden_states->push_back(x);
  if (cache != nullptr) cache->advance(input_ids.size(1));
  return x;
}

at::Tensor CausalLM::decode_step(const at::Tensor& ids, const at::Tensor& position, InferenceCache& cache) {
  if (ids.dim() != 2 || ids.size(1) != 1) fail("decode_step: ids must be [batch, 1], got ", ids.sizes());
  ForwardContext ctx;
  ctx.offset = cache.length();
  ctx.length = 1;
  ctx.cache_position = position;
  ctx.cache_length = position + 1;
  // The positions as forward_context computes them, from the device counter.
  at::Tensor absolute = position.view({1, 1});
  const at::Tensor& padding = cache.left_padding();
  if (padding.defined()) absolute = (absolute - padding.view({-1, 1})).clamp_min(0);  // [B, 1]
  set_position_tables(ctx, absolute.to(dtype() == at::kDouble ? at::kDouble : at::kFloat));
  at::Tensor x = at::embedding(embed_tokens_, ids);
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) x = layer_forward(i, x, ctx, &cache);
  return logits(rms_norm(x, norm_, config_.rms_norm_eps).select(1, 0));
}

void CausalLM::set_requires_grad(bool on) {
  for (auto& [name, tensor] : named_parameters()) {
    if (tensor->defined()) tensor->requires_grad_(on);
  }
}

void CausalLM::init_random(uint64_t seed, double std) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  for (const ParameterSpec& spec : parameter_specs(config_)) {
    at::Tensor* tensor = parameter_slot(spec.name);
    at::Tensor value = spec.shape.size() == 1 ? at::ones(spec.shape, at::kFloat)
                                              : at::empty(spec.shape, at::kFloat).normal_(0.0, std, generator);
    *tensor = tensor->defined() ? value.to(tensor->options()) : value;
  }
  if (decay_.defined()) decay_ = decay_.to(embed_tokens_.device());
  set_rope_frequencies(embed_tokens_.device(), embed_tokens_.scalar_type());
}

at::Tensor CausalLM::logits(const at::Tensor& hidden) const {
  return at::linear(hidden, config_.tie_word_embeddings ? embed_tokens_ : lm_head_);
}

}  // namespace halo
