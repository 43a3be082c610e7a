// The decoder-only language model that both the Qwen3 teacher and the HypeNet student are:
// embeddings, L x [RMSNorm -> token mixer -> residual, RMSNorm -> SwiGLU MLP -> residual],
// final RMSNorm, lm_head (tied to the embeddings when the config says so). Each layer's mixer
// is softmax attention (Qwen3; HypeNet's kept layers with NoPE, output gate and HyPE scaling)
// or lightning attention (HypeNet's converted layers), as config.mixer_types names it.
// Weights are plain tensors named exactly as in Hugging Face checkpoints; the forward pass is
// written with ATen ops, so autograd works through it for training.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "halo/lightning_attention.h"
#include "halo/model_config.h"

namespace halo {

class InferenceCache;

// One layer's token mixer (`self_attn.*` in checkpoints). Attention uses q/k/v/o_proj,
// q_norm, k_norm and (with the output gate) o_gate; lightning uses q/k/v/o/z_proj and
// q_norm, k_norm, o_norm (each only when its option is on); the projection biases exist when
// the config's attention_bias / attention_output_bias say so. Unused tensors stay undefined.
struct MixerWeights {
  at::Tensor q_proj, k_proj, v_proj, o_proj;  // [out, in] as nn.Linear stores them
  at::Tensor q_norm, k_norm;                  // [head_dim]
  at::Tensor o_gate;                          // attention: [heads*head_dim, hidden]
  at::Tensor z_proj, o_norm;                  // lightning: [nh*hd, hidden], [nh*hd]
  at::Tensor q_bias, k_bias, v_bias, o_bias;  // [out]
};

// A deep copy (undefined tensors stay undefined).
MixerWeights cloned(const MixerWeights& w);

struct MlpWeights {
  at::Tensor gate_proj, up_proj, down_proj;
  at::Tensor gate_bias, up_bias, down_bias;  // [out]; mlp_bias only
};

struct LayerWeights {
  at::Tensor input_layernorm, post_attention_layernorm;
  MixerWeights mixer;
  MlpWeights mlp;
};

// What every layer of one forward call shares: RoPE tables, HyPE scales, masks for padding.
struct ForwardContext {
  int64_t offset = 0;               // absolute position of the first token
  int64_t length = 0;               // tokens in this call
  at::Tensor attn_cos, attn_sin;    // RoPE of attention layers [B|1, 1, T, D]
  at::Tensor light_cos, light_sin;  // RoPE of lightning layers [B|1, 1, T, D']
  at::Tensor hype_scale;            // [B|1, 1, T, 1]; undefined when off
  at::Tensor attn_mask;             // bool [B, 1, T, S]; undefined: plain causal
  at::Tensor token_valid;           // [B, 1, T, 1] 1/0 in the compute dtype; undefined: all valid
  LightningImpl lightning_impl = LightningImpl::chunked;
  int64_t lightning_chunk = 64;
  // A decode step whose cache position is device data (CausalLM::decode_step): the cache slot
  // of the new token, int64 [1] on the device, and cache_position + 1, the keys attention reads.
  // Undefined in every other call.
  at::Tensor cache_position, cache_length;
};

class CausalLM {
 public:
  explicit CausalLM(ModelConfig config);

  const ModelConfig& config() const { return config_; }

  // Every parameter with its Hugging Face name, in the order of parameter_specs(config()).
  std::vector<std::pair<std::string, at::Tensor*>> named_parameters();
  int64_t parameter_count() const;
  LayerWeights& layer(int64_t i) { return layers_.at(i); }
  at::Tensor& embed_tokens() { return embed_tokens_; }
  at::Tensor& final_norm() { return norm_; }
  at::Tensor& lm_head() { return lm_head_; }  // undefined when tied

  // input_ids [B, T] int64 -> final hidden states after the last norm, [B, T, hidden].
  // With a cache, tokens continue the cached sequence (positions start at cache->length(),
  // minus each row's left padding) and the cache is advanced. With `hidden_states`, the
  // per-layer states are appended as transformers reports them: embeddings, the output of
  // layers 0..L-2, then the final norm.
  at::Tensor forward_hidden(const at::Tensor& input_ids, InferenceCache* cache = nullptr,
                            std::vector<at::Tensor>* hidden_states = nullptr);
  // Hidden states -> logits [.., vocab] in the compute dtype.
  at::Tensor logits(const at::Tensor& hidden) const;
  at::Tensor forward(const at::Tensor& input_ids, InferenceCache* cache = nullptr,
                     std::vector<at::Tensor>* hidden_states = nullptr) {
    return logits(forward_hidden(input_ids, cache, hidden_states));
  }
  // One decode step whose cache position is device data (DecodeGraph captures it as a CUDA
  // graph): ids [B, 1] on the model's device -> logits [B, vocab]. The tokens take cache slot
  // `position` (int64 [1] on the device): K/V are written there and lightning states updated in
  // place, all with static shapes and no host synchronization. The cache must already hold its
  // buffers (a prefill first) and its padding on the model's device; neither `position` nor the
  // cache's length is advanced.
  at::Tensor decode_step(const at::Tensor& ids, const at::Tensor& position, InferenceCache& cache);

  // The lm_head weight [V, hidden] (the embeddings when tied).
  const at::Tensor& lm_head_weight() const { return config_.tie_word_embeddings ? embed_tokens_ : lm_head_; }

  // Which lightning implementation prefill/training uses (decode steps of one token always
  // use the recurrent form), and its chunk size.
  void set_lightning_impl(LightningImpl impl, int64_t chunk = 64);

  // Training: recompute each layer in the backward pass instead of storing its activations
  // (only where autograd records and no cache is used).
  void set_recompute_activations(bool on) { recompute_activations_ = on; }

  // Sees every layer's mixer input (after input_layernorm) and output during forward_hidden;
  // stage 1 trains its student mixers on these. Empty: none.
  using MixerObserver = std::function<void(int64_t layer, const at::Tensor& input, const at::Tensor& output)>;
  void set_mixer_observer(MixerObserver observer) { mixer_observer_ = std::move(observer); }

  // HyPE's logits-scaling constant a of the attention layers (none: off), as config.json's
  // attn_logits_scaling "hype <a>" sets it; used by the tuning of a (hype_scaling.h).
  void set_hype_scaling(std::optional<double> a);

  // Sets requires_grad on every parameter.
  void set_requires_grad(bool on);
  // Fresh weights as transformers initializes Qwen3: normal(0, std) for every matrix and the
  // embeddings, ones for the norms (pretraining from scratch). Seeded, CPU generator.
  void init_random(uint64_t seed, double std = 0.02);

  // The shared per-call state (RoPE tables, HyPE scales, padding masks) for these ids.
  ForwardContext forward_context(const at::Tensor& input_ids, InferenceCache* cache) const;
  // One layer's token mixer on normalized input x (no cache).
  at::Tensor mixer_forward(int64_t layer, const at::Tensor& x, const ForwardContext& ctx);

  c10::Device device() const { return embed_tokens_.device(); }
  c10::ScalarType dtype() const { return embed_tokens_.scalar_type(); }
  // Moves every parameter (and the decays) to a device and dtype.
  void to(const c10::Device& device, c10::ScalarType dtype);

 private:
  at::Tensor layer_forward(int64_t i, const at::Tensor& x, const ForwardContext& ctx, InferenceCache* cache);
  // RoPE tables and HyPE scales of ctx for positions [B|1, T] (float; padding already removed).
  void set_position_tables(ForwardContext& ctx, const at::Tensor& positions) const;

  // The RoPE frequency tensors for parameters on `device` in `dtype`.
  void set_rope_frequencies(const c10::Device& device, c10::ScalarType dtype);
  // Where the parameter of this Hugging Face name lives (fails for names the model lacks).
  at::Tensor* parameter_slot(const std::string& name);

  ModelConfig config_;
  at::Tensor embed_tokens_, norm_, lm_head_;
  std::vector<LayerWeights> layers_;
  at::Tensor decay_;  // lightning gamma per head, float32 on the model's device
  // RoPE inverse frequencies of attention and lightning layers (rope_inverse_frequencies), float32
  // (float64 for float64 models) on the model's device, and the cos/sin factor.
  at::Tensor attn_inv_freq_, light_inv_freq_;
  double rope_attention_factor_ = 1.0;
  LightningImpl lightning_impl_ = LightningImpl::chunked;
  int64_t lightning_chunk_ = 64;
  bool recompute_activations_ = false;
  MixerObserver mixer_observer_;
};

}  // namespace halo
