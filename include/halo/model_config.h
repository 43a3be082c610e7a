// The architecture of a model directory, read from its config.json (no torch here).
// One struct describes the teachers (Qwen3, Llama and Qwen2: the same decoder with or without
// q/k RMSNorm, projection biases and RoPE scaling) and the HypeNet student: a HypeNet is the
// teacher's skeleton whose layers each name their token mixer. Configs written by transformers
// 4.x (rope_theta, rope_scaling, torch_dtype) and 5.x (rope_parameters, dtype) are accepted.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace halo {

enum class MixerType { attention, lightning };

// RoPE's frequency scaling, as transformers' rope_scaling / rope_parameters names it.
struct RopeScaling {
  std::string type = "default";                  // default | linear | llama3 | yarn
  double factor = 1.0;                           // linear, llama3, yarn
  double low_freq_factor = 1.0;                  // llama3
  double high_freq_factor = 4.0;                 // llama3
  int64_t original_max_position_embeddings = 0;  // llama3, yarn (yarn: 0 = max_position_embeddings)
  double beta_fast = 32.0, beta_slow = 1.0;      // yarn
  std::optional<double> attention_factor;        // yarn: the cos/sin factor (default from factor, mscale)
  std::optional<double> mscale, mscale_all_dim;  // yarn
  bool truncate = true;                          // yarn
};

struct ModelConfig {
  std::string model_type = "qwen3";  // "qwen3" | "llama" | "qwen2" | "hypenet"
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
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  std::string dtype = "float32";  // stored weight dtype: float32 | bfloat16 | float16
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> bos_token_id, pad_token_id;

  // Per-layer token mixer; all attention for Qwen3.
  std::vector<MixerType> mixer_types;
  // What the teacher family's layers have (Qwen3: q/k norms; Llama: optional biases everywhere;
  // Qwen2: q/k/v biases). The biases belong to the q/k/v/o projections of every layer, attention
  // or lightning; the q/k norms of attention layers follow attn_use_qk_norm, lightning layers'
  // follow lightning_use_qk_norm.
  bool attn_use_qk_norm = true;
  bool attention_bias = false;         // q_proj, k_proj, v_proj biases
  bool attention_output_bias = false;  // o_proj bias
  bool mlp_bias = false;               // gate_proj, up_proj, down_proj biases
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

// RoPE for head dimension `head_dim`: the inverse frequencies theta^(-2i/d), i < d/2, scaled as
// `config.rope_scaling` says (transformers' rope init functions, in float64), and the factor the
// cos/sin tables are multiplied by (1 except for yarn).
std::vector<double> rope_inverse_frequencies(const ModelConfig& config, int64_t head_dim);
double rope_attention_factor(const ModelConfig& config);

// Reads DIR/config.json.
ModelConfig load_model_config(const std::string& model_dir);
// The most layers a config may name (sizes past halo's bounds are typos, refused before any
// allocation they would size).
constexpr int64_t kMaxModelLayers = 4096;
// Sizes positive and within bounds (vocabulary 16M, hidden 128K, layers 4096, ...), rope_theta
// positive; fails naming the field and `path`.
void check_model_dimensions(const ModelConfig& config, const std::string& path);
// check_model_dimensions and internal consistency (divisibility, list lengths); fails naming the
// field and `path`.
void validate_model_config(const ModelConfig& config, const std::string& path);

const char* mixer_type_name(MixerType type);  // "attn" | "lightning-attn"

// k of `layers` layers evenly spaced: floor((2j + 1) * layers / (2k)) for j = 0..k-1, the middle of
// the j-th of k equal blocks (28, 7: 2, 6, 10, 14, 18, 22, 26). Fails unless 0 <= k <= layers.
std::vector<int64_t> evenly_spaced_layers(int64_t layers, int64_t k);

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
