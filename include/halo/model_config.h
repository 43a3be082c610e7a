// The architecture of a model directory, read from its config.json (no torch here).
// One struct describes both the Qwen3 teacher and the HypeNet student: a HypeNet is a Qwen3
// skeleton whose layers each name their token mixer. Qwen3 configs written by transformers
// 4.x (rope_theta, rope_scaling, torch_dtype) and 5.x (rope_parameters, dtype) are accepted.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace halo {

enum class MixerType { attention, lightning };

struct ModelConfig {
  std::string model_type = "qwen3";  // "qwen3" | "hypenet"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  std::string dtype = "float32";  // stored weight dtype: float32 | bfloat16 | float16
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> bos_token_id, pad_token_id;

  // Per-layer token mixer; all attention for Qwen3.
  std::vector<MixerType> mixer_types;
  // Softmax-attention layer options (Qwen3: RoPE on, no gate, no logits scaling).
  bool attn_use_rope = true;
  bool attn_use_output_gate = false;
  std::optional<double> attn_logits_scaling_a;  // HyPE: s_t = log(t + a) / log(a)
  std::optional<double> attn_logits_scaling_const;

  // Lightning-attention layer options (HypeNet, ../shared/docs/METHOD.md §2.3); defaults are the reference's.
  int64_t lightning_nh = 0, lightning_nkv = 0, lightning_head_dim = 0;
  bool expand_kv_proj = true;
  bool lightning_use_rope = true;
  bool lightning_use_qk_norm = true;
  bool lightning_use_output_norm = true;
  bool lightning_use_output_gate = true;
  std::string lightning_scale = "1/sqrt(d)";  // "1/sqrt(d)" | "1/d" | "1"

  bool is_hypenet() const { return model_type == "hypenet"; }
  bool has_lightning_layers() const;
  double lightning_scale_value() const;

  int64_t num_layers() const { return num_hidden_layers; }
  int64_t kv_groups() const { return num_attention_heads / num_key_value_heads; }
};

// Parses config.json text; `path` names the file in error messages.
ModelConfig parse_model_config(const std::string& json_text, const std::string& path);
// config.json text for a model directory: the Qwen3 keys, plus the reference HypeNet keys
// (model_type "hypenet", architectures ["HypeNetForCausalLM"]) for a HypeNet.
std::string model_config_to_json(const ModelConfig& config);

// "hype 500" -> a = 500, "hype" -> a = 362, a number -> constant factor, null -> off.
void parse_attn_logits_scaling(const std::string& text, ModelConfig& config, const std::string& path);

// Reads DIR/config.json.
ModelConfig load_model_config(const std::string& model_dir);
// Checks internal consistency (divisibility, positive sizes, list lengths); fails naming the
// field and `path`.
void validate_model_config(const ModelConfig& config, const std::string& path);

const char* mixer_type_name(MixerType type);  // "attn" | "lightning-attn"

// One weight tensor of a model: its Hugging Face name and shape.
struct ParameterSpec {
  std::string name;
  std::vector<int64_t> shape;
};
// Every weight a model with this config has, in a fixed order (embeddings, each layer's mixer,
// norms and MLP, final norm, then lm_head only when the embeddings are not tied). The one list
// that loading, saving, `halo info` and the parameter counts all follow.
std::vector<ParameterSpec> parameter_specs(const ModelConfig& config);

class WeightFiles;
// Checks that `files` hold exactly the weights of parameter_specs(config), with those shapes
// (a stored lm_head.weight is ignored when the embeddings are tied); fails naming the weights'
// source and the missing, unexpected or misshapen tensors.
void check_weights_match_config(const WeightFiles& files, const ModelConfig& config);

}  // namespace halo
