// CausalLM forward pass and checkpoint loading. The math follows METHOD.md §1 operation by
// operation (RMSNorm in float32 then cast, q/k norms before RoPE, rotate-half RoPE with cos/sin
// computed in float32, SDPA with GQA) so that fp32 results match transformers to rounding.
#include "halo/causal_lm.h"

#include <ATen/ATen.h>

#include <cmath>
#include <set>

#include "halo/error.h"
#include "halo/inference_cache.h"
#include "halo/logging.h"
#include "halo/safetensors.h"
#include "halo/tensor_io.h"

namespace halo {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor apply_rope(const at::Tensor& x, int64_t offset, double theta) {
  const int64_t t = x.size(-2), d = x.size(-1);
  auto f32 = x.options().dtype(at::kFloat);
  at::Tensor inv_freq = 1.0 / at::pow(theta, at::arange(0, d, 2, f32) / static_cast<double>(d));
  at::Tensor positions = at::arange(offset, offset + t, f32);
  at::Tensor freqs = at::outer(positions, inv_freq);
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  at::Tensor cos = emb.cos().to(x.scalar_type());
  at::Tensor sin = emb.sin().to(x.scalar_type());
  at::Tensor x1 = x.narrow(-1, 0, d / 2), x2 = x.narrow(-1, d / 2, d / 2);
  at::Tensor rotated = at::cat({-x2, x1}, -1);
  return x * cos + rotated * sin;
}

CausalLM::CausalLM(ModelConfig config) : config_(std::move(config)), layers_(config_.num_hidden_layers) {}

std::vector<std::pair<std::string, at::Tensor*>> CausalLM::named_parameters() {
  std::vector<std::pair<std::string, at::Tensor*>> out;
  out.emplace_back("model.embed_tokens.weight", &embed_tokens_);
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    const std::string p = cat("model.layers.", i, ".");
    LayerWeights& l = layers_[i];
    out.emplace_back(p + "input_layernorm.weight", &l.input_layernorm);
    out.emplace_back(p + "self_attn.q_proj.weight", &l.attn.q_proj);
    out.emplace_back(p + "self_attn.k_proj.weight", &l.attn.k_proj);
    out.emplace_back(p + "self_attn.v_proj.weight", &l.attn.v_proj);
    out.emplace_back(p + "self_attn.o_proj.weight", &l.attn.o_proj);
    out.emplace_back(p + "self_attn.q_norm.weight", &l.attn.q_norm);
    out.emplace_back(p + "self_attn.k_norm.weight", &l.attn.k_norm);
    if (config_.attn_use_output_gate) out.emplace_back(p + "self_attn.o_gate.weight", &l.attn.o_gate);
    out.emplace_back(p + "post_attention_layernorm.weight", &l.post_attention_layernorm);
    out.emplace_back(p + "mlp.gate_proj.weight", &l.mlp.gate_proj);
    out.emplace_back(p + "mlp.up_proj.weight", &l.mlp.up_proj);
    out.emplace_back(p + "mlp.down_proj.weight", &l.mlp.down_proj);
  }
  out.emplace_back("model.norm.weight", &norm_);
  if (!config_.tie_word_embeddings) out.emplace_back("lm_head.weight", &lm_head_);
  return out;
}

int64_t CausalLM::parameter_count() const {
  int64_t total = 0;
  for (auto& [name, tensor] : const_cast<CausalLM*>(this)->named_parameters()) {
    if (tensor->defined()) total += tensor->numel();
  }
  return total;
}

at::Tensor CausalLM::attention(int64_t layer, const at::Tensor& x, int64_t offset, InferenceCache* cache) {
  const AttentionWeights& w = layers_[layer].attn;
  const int64_t b = x.size(0), t = x.size(1);
  const int64_t h = config_.num_attention_heads, kv = config_.num_key_value_heads, d = config_.head_dim;
  at::Tensor q = rms_norm(at::linear(x, w.q_proj).view({b, t, h, d}), w.q_norm, config_.rms_norm_eps).transpose(1, 2);
  at::Tensor k = rms_norm(at::linear(x, w.k_proj).view({b, t, kv, d}), w.k_norm, config_.rms_norm_eps).transpose(1, 2);
  at::Tensor v = at::linear(x, w.v_proj).view({b, t, kv, d}).transpose(1, 2);
  if (config_.attn_use_rope) {
    q = apply_rope(q, offset, config_.rope_theta);
    k = apply_rope(k, offset, config_.rope_theta);
  }
  if (config_.attn_logits_scaling_const) q = q * *config_.attn_logits_scaling_const;
  if (config_.attn_logits_scaling_a) {
    const double a = *config_.attn_logits_scaling_a;
    at::Tensor pos = at::arange(offset, offset + t, x.options().dtype(at::kFloat));
    at::Tensor s = (at::log(pos + a) / std::log(a)).to(q.scalar_type());
    q = q * s.view({1, 1, t, 1});
  }
  if (cache != nullptr) std::tie(k, v) = cache->append_kv(layer, k, v);
  const int64_t s = k.size(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  at::Tensor o;
  if (t == s || t == 1) {
    // Full causal block, or one new token that sees the whole cache.
    o = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/t == s && t > 1, scale, kv != h);
  } else {
    // A chunk continuing a cache: query i sits at key position s - t + i (bottom-right causal).
    at::Tensor qi = at::arange(s - t, s, x.options().dtype(at::kLong)).unsqueeze(1);
    at::Tensor kj = at::arange(0, s, x.options().dtype(at::kLong)).unsqueeze(0);
    o = at::scaled_dot_product_attention(q, k, v, kj <= qi, 0.0, false, scale, kv != h);
  }
  o = o.transpose(1, 2).reshape({b, t, h * d});
  if (config_.attn_use_output_gate) o = o * at::sigmoid(at::linear(x, w.o_gate));
  return at::linear(o, w.o_proj);
}

at::Tensor CausalLM::mlp(const MlpWeights& w, const at::Tensor& x) const {
  return at::linear(at::silu(at::linear(x, w.gate_proj)) * at::linear(x, w.up_proj), w.down_proj);
}

at::Tensor CausalLM::forward_hidden(const at::Tensor& input_ids, InferenceCache* cache,
                                    std::vector<at::Tensor>* hidden_states) {
  if (input_ids.dim() != 2) fail("input_ids must be [batch, time], got ", input_ids.dim(), " dimensions");
  const int64_t offset = cache != nullptr ? cache->length() : 0;
  at::Tensor x = at::embedding(embed_tokens_, input_ids.to(embed_tokens_.device()));
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    if (hidden_states != nullptr) hidden_states->push_back(x);
    const LayerWeights& l = layers_[i];
    x = x + attention(i, rms_norm(x, l.input_layernorm, config_.rms_norm_eps), offset, cache);
    x = x + mlp(l.mlp, rms_norm(x, l.post_attention_layernorm, config_.rms_norm_eps));
  }
  x = rms_norm(x, norm_, config_.rms_norm_eps);
  if (hidden_states != nullptr) hidden_states->push_back(x);
  if (cache != nullptr) cache->advance(input_ids.size(1));
  return x;
}

at::Tensor CausalLM::logits(const at::Tensor& hidden) const {
  return at::linear(hidden, config_.tie_word_embeddings ? embed_tokens_ : lm_head_);
}

namespace {

std::vector<int64_t> expected_shape(const ModelConfig& c, const std::string& name) {
  const int64_t hidden = c.hidden_size, q = c.num_attention_heads * c.head_dim,
                kv = c.num_key_value_heads * c.head_dim;
  auto ends_with = [&](const char* suffix) {
    const std::string s(suffix);
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (name == "model.embed_tokens.weight" || name == "lm_head.weight") return {c.vocab_size, hidden};
  if (ends_with("layernorm.weight") || name == "model.norm.weight") return {hidden};
  if (ends_with("q_norm.weight") || ends_with("k_norm.weight")) return {c.head_dim};
  if (ends_with("q_proj.weight") || ends_with("o_gate.weight")) return {q, hidden};
  if (ends_with("k_proj.weight") || ends_with("v_proj.weight")) return {kv, hidden};
  if (ends_with("o_proj.weight")) return {hidden, q};
  if (ends_with("gate_proj.weight") || ends_with("up_proj.weight")) return {c.intermediate_size, hidden};
  if (ends_with("down_proj.weight")) return {hidden, c.intermediate_size};
  fail("internal: no expected shape for parameter ", name);
}

std::string shape_string(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string list_names(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < 5; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 5) s += cat(", ... (", names.size(), " in all)");
  return s;
}

}  // namespace

CausalLM load_causal_lm(const std::string& model_dir, c10::ScalarType dtype, const c10::Device& device) {
  CausalLM model(load_model_config(model_dir));
  CheckpointFiles files(model_dir);
  std::set<std::string> wanted;
  std::vector<std::string> missing;
  for (auto& [name, tensor] : model.named_parameters()) {
    wanted.insert(name);
    const CheckpointEntry* entry = files.find(name);
    if (entry == nullptr) {
      missing.push_back(name);
      continue;
    }
    const std::vector<int64_t> shape = expected_shape(model.config(), name);
    if (entry->tensor->shape != shape) {
      fail(entry->file->path(), ": tensor ", name, " has shape ", shape_string(entry->tensor->shape),
           " but config.json implies ", shape_string(shape));
    }
    *tensor = entry_to_tensor(*entry).to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
  }
  if (!missing.empty()) fail(files.source(), ": missing tensors ", list_names(missing));
  std::vector<std::string> unexpected;
  for (const auto& [name, entry] : files.entries()) {
    if (wanted.count(name)) continue;
    if (name == "lm_head.weight" && model.config().tie_word_embeddings) {
      log::debug("ignoring lm_head.weight: the embeddings are tied");
      continue;
    }
    unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    fail(files.source(), ": unexpected tensors ", list_names(unexpected),
         " (does config.json match these weights?)");
  }
  return model;
}

}  // namespace halo
