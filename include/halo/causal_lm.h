// The decoder-only language model that both the Qwen3 teacher and (with other token mixers)
// the HypeNet student are: embeddings, L x [RMSNorm -> mixer -> residual, RMSNorm -> SwiGLU
// MLP -> residual], final RMSNorm, lm_head (tied to the embeddings when the config says so).
// Weights are plain tensors named exactly as in Hugging Face checkpoints; the forward pass is
// written with ATen ops, so autograd works through it for training.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <string>
#include <utility>
#include <vector>

#include "halo/model_config.h"

namespace halo {

class InferenceCache;

struct AttentionWeights {
  at::Tensor q_proj, k_proj, v_proj, o_proj;  // [out, in] as nn.Linear stores them
  at::Tensor q_norm, k_norm;                  // [head_dim]
  at::Tensor o_gate;                          // [heads*head_dim, hidden]; undefined when off
};

struct MlpWeights {
  at::Tensor gate_proj, up_proj, down_proj;
};

struct LayerWeights {
  at::Tensor input_layernorm, post_attention_layernorm;
  AttentionWeights attn;
  MlpWeights mlp;
};

class CausalLM {
 public:
  explicit CausalLM(ModelConfig config);

  const ModelConfig& config() const { return config_; }

  // Every parameter with its Hugging Face name, in a fixed order. lm_head is listed only when
  // the embeddings are not tied.
  std::vector<std::pair<std::string, at::Tensor*>> named_parameters();
  int64_t parameter_count() const;

  // input_ids [B, T] int64 -> final hidden states after the last norm, [B, T, hidden].
  // With a cache, tokens continue the cached sequence (positions start at cache->length()) and
  // the cache is advanced. With `hidden_states`, the per-layer states are appended as
  // transformers reports them: embeddings, the output of layers 0..L-2, then the final norm.
  at::Tensor forward_hidden(const at::Tensor& input_ids, InferenceCache* cache = nullptr,
                            std::vector<at::Tensor>* hidden_states = nullptr);
  // Hidden states -> logits [.., vocab] in the compute dtype.
  at::Tensor logits(const at::Tensor& hidden) const;
  at::Tensor forward(const at::Tensor& input_ids, InferenceCache* cache = nullptr,
                     std::vector<at::Tensor>* hidden_states = nullptr) {
    return logits(forward_hidden(input_ids, cache, hidden_states));
  }

  c10::Device device() const { return embed_tokens_.device(); }
  c10::ScalarType dtype() const { return embed_tokens_.scalar_type(); }

 private:
  at::Tensor attention(int64_t layer, const at::Tensor& x, int64_t offset, InferenceCache* cache);
  at::Tensor mlp(const MlpWeights& w, const at::Tensor& x) const;

  ModelConfig config_;
  at::Tensor embed_tokens_, norm_, lm_head_;
  std::vector<LayerWeights> layers_;
};

// RMSNorm as Qwen3 computes it: w * (x_f32 * rsqrt(mean(x_f32^2) + eps)).to(dtype).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// Rotate-half RoPE of x [B, H, T, D] for positions offset..offset+T-1.
at::Tensor apply_rope(const at::Tensor& x, int64_t offset, double theta);

// Reads config.json and the weights of a Qwen3 directory, checks every tensor's name and
// shape, and returns the model in `dtype` on `device`.
CausalLM load_causal_lm(const std::string& model_dir, c10::ScalarType dtype, const c10::Device& device);

}  // namespace halo
