// config.json -> ModelConfig. Every field is checked for presence and JSON type, and errors
// name the file and the key; both transformers 4.x and 5.x spellings are read.
#include "halo/model_config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <set>

#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/safetensors.h"

namespace halo {
namespace {

using nlohmann::json;

// A value from the file as a message shows it: numbers and booleans as written, strings escaped
// and cut (printable), arrays and objects by their type (they may nest without bound).
std::string shown(const json& v) {
  if (v.is_string()) return "'" + printable(v.get_ref<const std::string&>()) + "'";
  if (v.is_primitive()) return v.dump();
  return std::string("a JSON ") + v.type_name();
}

const json& require(const json& obj, const char* key, const std::string& path) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) fail(path, ": missing required key '", key, "'");
  return *it;
}

int64_t get_int(const json& obj, const char* key, const std::string& path) {
  const json& v = require(obj, key, path);
  if (!v.is_number_integer()) fail(path, ": key '", key, "' must be an integer, got ", shown(v));
  return v.get<int64_t>();
}

double get_number(const json& v, const char* key, const std::string& path) {
  if (!v.is_number()) fail(path, ": key '", key, "' must be a number, got ", shown(v));
  return v.get<double>();
}

bool get_bool(const json& obj, const char* key, bool fallback, const std::string& path) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(path, ": key '", key, "' must be true or false, got ", shown(*it));
  return it->get<bool>();
}

std::optional<int64_t> get_optional_int(const json& obj, const char* key, const std::string& path) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) fail(path, ": key '", key, "' must be an integer or null");
  return it->get<int64_t>();
}

int64_t get_int_or(const json& obj, const char* key, int64_t fallback, const std::string& path) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  return get_int(obj, key, path);
}

double get_number_or(const json& obj, const char* key, double fallback, const std::string& path) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  return get_number(*it, key, path);
}

// rope_theta and the scaling, from 5.x rope_parameters (theta and scaling in one object) or 4.x
// rope_theta + rope_scaling; an empty rope_parameters beside a top-level rope_theta (as the
// reference's HypeNet configs hold) reads the top-level one.
void read_rope(const json& obj, ModelConfig& c, const std::string& path) {
  const json* scaling = nullptr;
  if (auto it = obj.find("rope_parameters"); it != obj.end() && !it->is_null()) {
    if (!it->is_object()) fail(path, ": key 'rope_parameters' must be an object");
    if (!it->empty()) scaling = &*it;
  }
  if (scaling == nullptr) {
    if (auto it = obj.find("rope_scaling"); it != obj.end() && !it->is_null()) {
      if (!it->is_object()) fail(path, ": key 'rope_scaling' must be an object or null");
      scaling = &*it;
    }
  }
  c.rope_theta = get_number_or(obj, "rope_theta", 10000.0, path);
  if (scaling != nullptr) c.rope_theta = get_number_or(*scaling, "rope_theta", c.rope_theta, path);
  if (!(c.rope_theta > 1.0) || !std::isfinite(c.rope_theta)) fail(path, ": rope_theta must be > 1, got ", c.rope_theta);
  if (scaling == nullptr) return;
  RopeScaling& r = c.rope_scaling;
  for (const char* key : {"type", "rope_type"}) {
    if (auto it = scaling->find(key); it != scaling->end() && !it->is_null()) {
      if (!it->is_string()) fail(path, ": rope scaling key '", key, "' must be a string");
      r.type = it->get<std::string>();
    }
  }
  if (r.type == "default") return;
  if (r.type != "linear" && r.type != "llama3" && r.type != "yarn") {
    fail(path, ": RoPE scaling type '", printable(r.type), "' is not supported (default, linear, llama3, yarn)");
  }
  r.factor = get_number(require(*scaling, "factor", path), "factor", path);
  if (!(r.factor >= 1.0) || !std::isfinite(r.factor)) fail(path, ": rope scaling factor must be >= 1, got ", r.factor);
  r.original_max_position_embeddings = get_int_or(*scaling, "original_max_position_embeddings", 0, path);
  if (r.type == "llama3") {
    r.low_freq_factor = get_number(require(*scaling, "low_freq_factor", path), "low_freq_factor", path);
    r.high_freq_factor = get_number(require(*scaling, "high_freq_factor", path), "high_freq_factor", path);
    if (r.original_max_position_embeddings <= 0)
      fail(path, ": llama3 RoPE scaling needs original_max_position_embeddings > 0");
    if (!(r.high_freq_factor > r.low_freq_factor) || !(r.low_freq_factor > 0)) {
      fail(path, ": llama3 RoPE scaling needs 0 < low_freq_factor < high_freq_factor");
    }
  }
  if (r.type == "yarn") {
    r.beta_fast = get_number_or(*scaling, "beta_fast", 32.0, path);
    r.beta_slow = get_number_or(*scaling, "beta_slow", 1.0, path);
    if (auto it = scaling->find("attention_factor"); it != scaling->end() && !it->is_null()) {
      r.attention_factor = get_number(*it, "attention_factor", path);
    }
    if (auto it = scaling->find("mscale"); it != scaling->end() && !it->is_null())
      r.mscale = get_number(*it, "mscale", path);
    if (auto it = scaling->find("mscale_all_dim"); it != scaling->end() && !it->is_null()) {
      r.mscale_all_dim = get_number(*it, "mscale_all_dim", path);
    }
    r.truncate = get_bool(*scaling, "truncate", true, path);
  }
}

json rope_scaling_json(const RopeScaling& r) {
  if (r.type == "default") return nullptr;
  json j = {{"rope_type", r.type}, {"factor", r.factor}};
  if (r.original_max_position_embeddings > 0)
    j["original_max_position_embeddings"] = r.original_max_position_embeddings;
  if (r.type == "llama3") {
    j["low_freq_factor"] = r.low_freq_factor;
    j["high_freq_factor"] = r.high_freq_factor;
  }
  if (r.type == "yarn") {
    j["beta_fast"] = r.beta_fast;
    j["beta_slow"] = r.beta_slow;
    j["truncate"] = r.truncate;
    if (r.attention_factor) j["attention_factor"] = *r.attention_factor;
    if (r.mscale) j["mscale"] = *r.mscale;
    if (r.mscale_all_dim) j["mscale_all_dim"] = *r.mscale_all_dim;
  }
  return j;
}

std::string read_dtype(const json& obj, const std::string& path) {
  for (const char* key : {"dtype", "torch_dtype"}) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) continue;
    if (!it->is_string()) fail(path, ": key '", key, "' must be a string");
    std::string d = it->get<std::string>();
    if (d == "float32" || d == "bfloat16" || d == "float16" || d == "float64") return d;
    fail(path, ": key '", key, "' is '", printable(d), "'; expected float32, bfloat16, float16 or float64");
  }
  return "float32";
}

std::vector<int64_t> read_eos(const json& obj, const std::string& path) {
  auto it = obj.find("eos_token_id");
  if (it == obj.end() || it->is_null()) return {};
  if (it->is_number_integer()) return {it->get<int64_t>()};
  if (it->is_array()) {
    std::vector<int64_t> ids;
    for (const auto& v : *it) {
      if (!v.is_number_integer()) fail(path, ": key 'eos_token_id' must hold integers");
      ids.push_back(v.get<int64_t>());
    }
    return ids;
  }
  fail(path, ": key 'eos_token_id' must be an integer or a list of integers");
}

// Keys the reference's configuration_hypenet.py may leave out take its defaults (not halo's
// conversion choices, which halo always writes out): mixer_types all "attn", attn_use_rope true,
// no output gates, no lightning norms, expand_kv_proj false, lightning_nkv = the KV heads.
void read_hypenet_keys(const json& obj, ModelConfig& c, const std::string& path) {
  c.mixer_types.assign(std::max<int64_t>(c.num_hidden_layers, 0), MixerType::attention);
  auto found = obj.find("mixer_types");
  const bool listed = found != obj.end() && !found->is_null() && !(found->is_array() && found->empty());
  if (listed) {
    const json& mixers = *found;
    if (!mixers.is_array()) fail(path, ": key 'mixer_types' must be a list of \"attn\" / \"lightning-attn\"");
    c.mixer_types.clear();
    for (const auto& m : mixers) {
      const std::string name = m.is_string() ? m.get<std::string>() : shown(m);
      if (name == "attn")
        c.mixer_types.push_back(MixerType::attention);
      else if (name == "lightning-attn")
        c.mixer_types.push_back(MixerType::lightning);
      else
        fail(path, ": mixer_types[", c.mixer_types.size(), "] is '", printable(name), "'; expected \"attn\" or \"lightning-attn\"");
    }
  }
  c.attn_use_qk_norm = get_bool(obj, "attn_use_qk_norm", true, path);
  c.attention_output_bias = get_bool(obj, "attention_output_bias", false, path);
  c.attn_use_rope = get_bool(obj, "attn_use_rope", true, path);
  c.attn_use_output_gate = get_bool(obj, "attn_use_output_gate", false, path);
  if (auto it = obj.find("attn_logits_scaling"); it != obj.end() && !it->is_null()) {
    if (it->is_number())
      c.attn_logits_scaling_const = it->get<double>();
    else if (it->is_string())
      parse_attn_logits_scaling(it->get<std::string>(), c, path);
    else
      fail(path, ": key 'attn_logits_scaling' must be null, a number or \"hype <a>\"");
  }
  c.expand_kv_proj = get_bool(obj, "expand_kv_proj", false, path);
  c.lightning_nh = get_int_or(obj, "lightning_nh", c.num_attention_heads, path);
  c.lightning_nkv = get_int_or(obj, "lightning_nkv", c.num_key_value_heads, path);
  c.lightning_head_dim = get_int_or(obj, "lightning_head_dim", c.head_dim, path);
  c.lightning_use_rope = get_bool(obj, "lightning_use_rope", true, path);
  c.lightning_use_qk_norm = get_bool(obj, "lightning_use_qk_norm", false, path);
  c.lightning_use_output_norm = get_bool(obj, "lightning_use_output_norm", false, path);
  c.lightning_use_output_gate = get_bool(obj, "lightning_use_output_gate", false, path);
  if (auto it = obj.find("lightning_scale"); it != obj.end() && !it->is_null()) {
    if (!it->is_string()) fail(path, ": key 'lightning_scale' must be \"1/sqrt(d)\", \"1/d\" or \"1\"");
    c.lightning_scale = it->get<std::string>();
  }
  if (get_bool(obj, "lightning_use_short_conv", false, path)) {
    fail(path, ": lightning_use_short_conv true is not supported (the paper found that it diverges); set it to false");
  }
}

}  // namespace

void parse_attn_logits_scaling(const std::string& text, ModelConfig& c, const std::string& path) {
  c.attn_logits_scaling_a.reset();
  c.attn_logits_scaling_const.reset();
  if (text == "hype") {
    c.attn_logits_scaling_a = 362.0;
    return;
  }
  if (text.rfind("hype ", 0) == 0) {
    try {
      size_t used = 0;
      const std::string number = text.substr(5);
      double a = std::stod(number, &used);
      if (used == number.size() && a > 1 && std::isfinite(a)) {
        c.attn_logits_scaling_a = a;
        return;
      }
    } catch (const std::exception&) {
    }
  }
  fail(path, ": attn_logits_scaling '", printable(text),
       "' is not understood; use null, a number, \"hype\" or \"hype <a>\" with a > 1");
}

bool ModelConfig::has_lightning_layers() const {
  for (MixerType m : mixer_types) {
    if (m == MixerType::lightning) return true;
  }
  return false;
}

double ModelConfig::lightning_scale_value() const {
  const double d = static_cast<double>(lightning_head_dim);
  if (lightning_scale == "1/sqrt(d)") return 1.0 / std::sqrt(d);
  if (lightning_scale == "1/d") return 1.0 / d;
  if (lightning_scale == "1") return 1.0;
  fail("lightning_scale '", lightning_scale, "' is not understood; use \"1/sqrt(d)\", \"1/d\" or \"1\"");
}

std::string model_config_to_json(const ModelConfig& c) {
  json j;
  const char* architecture = c.is_hypenet()            ? "HypeNetForCausalLM"
                             : c.model_type == "llama" ? "LlamaForCausalLM"
                             : c.model_type == "qwen2" ? "Qwen2ForCausalLM"
                                                       : "Qwen3ForCausalLM";
  j["architectures"] = {architecture};
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = rope_scaling_json(c.rope_scaling);
  j["hidden_act"] = "silu";
  j["initializer_range"] = 0.02;  // transformers' and the reference's default; halo's init_std is its own
  j["attention_dropout"] = 0.0;
  if (c.model_type != "qwen2") j["attention_bias"] = c.attention_bias;
  if (c.model_type == "llama" || c.is_hypenet()) j["mlp_bias"] = c.mlp_bias;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = c.dtype;
  j["use_cache"] = true;
  j["bos_token_id"] = c.bos_token_id ? json(*c.bos_token_id) : json(nullptr);
  j["pad_token_id"] = c.pad_token_id ? json(*c.pad_token_id) : json(nullptr);
  if (c.eos_token_ids.size() == 1)
    j["eos_token_id"] = c.eos_token_ids[0];
  else if (c.eos_token_ids.empty())
    j["eos_token_id"] = nullptr;
  else
    j["eos_token_id"] = c.eos_token_ids;
  if (c.is_hypenet()) {
    json mixers = json::array();
    for (MixerType m : c.mixer_types) mixers.push_back(mixer_type_name(m));
    j["mixer_types"] = mixers;
    j["attn_use_qk_norm"] = c.attn_use_qk_norm;
    j["attention_output_bias"] = c.attention_output_bias;
    j["attn_use_rope"] = c.attn_use_rope;
    j["attn_use_output_gate"] = c.attn_use_output_gate;
    if (c.attn_logits_scaling_a)
      j["attn_logits_scaling"] = cat("hype ", *c.attn_logits_scaling_a);
    else if (c.attn_logits_scaling_const)
      j["attn_logits_scaling"] = *c.attn_logits_scaling_const;
    else
      j["attn_logits_scaling"] = nullptr;
    j["expand_kv_proj"] = c.expand_kv_proj;
    j["lightning_nh"] = c.lightning_nh;
    j["lightning_nkv"] = c.lightning_nkv;
    j["lightning_head_dim"] = c.lightning_head_dim;
    j["lightning_use_rope"] = c.lightning_use_rope;
    j["lightning_scale"] = c.lightning_scale;
    j["lightning_use_qk_norm"] = c.lightning_use_qk_norm;
    j["lightning_use_output_norm"] = c.lightning_use_output_norm;
    j["lightning_use_output_gate"] = c.lightning_use_output_gate;
    j["lightning_use_short_conv"] = false;
    j["lightning_conv_size"] = 4;
  }
  return j.dump(2) + "\n";
}

const char* mixer_type_name(MixerType type) {
  return type == MixerType::attention ? "attn" : "lightning-attn";
}

std::vector<int64_t> evenly_spaced_layers(int64_t layers, int64_t k) {
  if (k < 0 || k > layers) usage_fail("cannot keep ", k, " of ", layers, " layers");
  std::vector<int64_t> chosen;
  for (int64_t j = 0; j < k; ++j) chosen.push_back((2 * j + 1) * layers / (2 * k));
  return chosen;
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& path) {
  json obj;
  try {
    obj = json::parse(json_text);
  } catch (const json::exception& e) {
    fail(path, ": not valid JSON (", printable(e.what()), ")");
  }
  if (!obj.is_object()) fail(path, ": expected a JSON object");

  ModelConfig c;
  if (auto it = obj.find("model_type"); it != obj.end() && it->is_string()) c.model_type = it->get<std::string>();
  if (c.model_type != "qwen3" && c.model_type != "llama" && c.model_type != "qwen2" && c.model_type != "hypenet") {
    fail(path, ": model_type '", printable(c.model_type), "' is not supported (expected qwen3, llama, qwen2 or hypenet)");
  }
  c.vocab_size = get_int(obj, "vocab_size", path);
  c.hidden_size = get_int(obj, "hidden_size", path);
  c.intermediate_size = get_int(obj, "intermediate_size", path);
  c.num_hidden_layers = get_int(obj, "num_hidden_layers", path);
  c.num_attention_heads = get_int(obj, "num_attention_heads", path);
  c.num_key_value_heads = obj.contains("num_key_value_heads") && !obj["num_key_value_heads"].is_null()
                              ? get_int(obj, "num_key_value_heads", path)
                              : c.num_attention_heads;
  c.head_dim = obj.contains("head_dim") && !obj["head_dim"].is_null()
                   ? get_int(obj, "head_dim", path)
                   : (c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
  c.max_position_embeddings =
      obj.contains("max_position_embeddings") ? get_int(obj, "max_position_embeddings", path) : 32768;
  if (auto it = obj.find("rms_norm_eps"); it != obj.end()) c.rms_norm_eps = get_number(*it, "rms_norm_eps", path);
  read_rope(obj, c, path);
  c.tie_word_embeddings = get_bool(obj, "tie_word_embeddings", false, path);
  c.dtype = read_dtype(obj, path);
  c.eos_token_ids = read_eos(obj, path);
  c.bos_token_id = get_optional_int(obj, "bos_token_id", path);
  c.pad_token_id = get_optional_int(obj, "pad_token_id", path);
  // The family's layers: Qwen3 and Llama bias q/k/v/o together (attention_bias), Qwen2 always
  // biases q/k/v and never o; only Qwen3 (and HypeNet, unless its config says otherwise)
  // normalizes q and k.
  c.attention_bias = c.model_type == "qwen2" || get_bool(obj, "attention_bias", false, path);
  c.attention_output_bias = c.model_type != "qwen2" && c.attention_bias;
  c.mlp_bias = get_bool(obj, "mlp_bias", false, path);
  c.attn_use_qk_norm = c.model_type == "qwen3" || c.model_type == "hypenet";
  if (auto it = obj.find("hidden_act"); it != obj.end() && it->is_string() && it->get<std::string>() != "silu") {
    fail(path, ": hidden_act '", printable(it->get<std::string>()), "' is not supported (expected \"silu\")");
  }
  if (get_bool(obj, "use_sliding_window", false, path)) {
    fail(path, ": use_sliding_window true is not supported; set it to false");
  }
  check_model_dimensions(c, path);  // before anything is sized by them
  c.mixer_types.assign(static_cast<size_t>(c.num_hidden_layers), MixerType::attention);
  if (c.is_hypenet()) read_hypenet_keys(obj, c, path);
  validate_model_config(c, path);
  return c;
}

ModelConfig load_model_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  return parse_model_config(read_file(path), path);
}

void check_model_dimensions(const ModelConfig& c, const std::string& path) {
  auto bounded = [&](const char* key, int64_t v, int64_t limit) {
    if (v <= 0) fail(path, ": key '", key, "' must be positive, got ", v);
    if (v > limit) fail(path, ": key '", key, "' is ", v, ", beyond what halo supports (", limit, "); a typo?");
  };
  bounded("vocab_size", c.vocab_size, int64_t{1} << 24);
  bounded("hidden_size", c.hidden_size, int64_t{1} << 17);
  bounded("intermediate_size", c.intermediate_size, int64_t{1} << 20);
  bounded("num_hidden_layers", c.num_hidden_layers, kMaxModelLayers);
  bounded("num_attention_heads", c.num_attention_heads, 4096);
  bounded("num_key_value_heads", c.num_key_value_heads, 4096);
  bounded("head_dim", c.head_dim, 4096);
  bounded("max_position_embeddings", c.max_position_embeddings, int64_t{1} << 34);
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) {
    fail(path, ": key 'rope_theta' must be a positive number, got ", c.rope_theta);
  }
}

void validate_model_config(const ModelConfig& c, const std::string& path) {
  check_model_dimensions(c, path);
  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) fail(path, ": key '", key, "' must be positive, got ", v);
  };
  positive("vocab_size", c.vocab_size);
  positive("hidden_size", c.hidden_size);
  positive("intermediate_size", c.intermediate_size);
  positive("num_hidden_layers", c.num_hidden_layers);
  positive("num_attention_heads", c.num_attention_heads);
  positive("num_key_value_heads", c.num_key_value_heads);
  positive("head_dim", c.head_dim);
  positive("max_position_embeddings", c.max_position_embeddings);
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    fail(path, ": num_attention_heads (", c.num_attention_heads, ") must be a multiple of num_key_value_heads (",
         c.num_key_value_heads, ")");
  }
  if (c.head_dim % 2 != 0) fail(path, ": head_dim must be even for RoPE, got ", c.head_dim);
  if (!(c.rms_norm_eps > 0)) fail(path, ": rms_norm_eps must be positive");
  if (static_cast<int64_t>(c.mixer_types.size()) != c.num_hidden_layers) {
    fail(path, ": mixer_types has ", c.mixer_types.size(), " entries but num_hidden_layers is ", c.num_hidden_layers);
  }
  if (c.has_lightning_layers()) {
    positive("lightning_nh", c.lightning_nh);
    positive("lightning_nkv", c.lightning_nkv);
    positive("lightning_head_dim", c.lightning_head_dim);
    if (c.lightning_nh % c.lightning_nkv != 0) {
      fail(path, ": lightning_nh (", c.lightning_nh, ") must be a multiple of lightning_nkv (", c.lightning_nkv, ")");
    }
    if (c.lightning_use_rope && c.lightning_head_dim % 2 != 0) {
      fail(path, ": lightning_head_dim must be even for RoPE, got ", c.lightning_head_dim);
    }
    if (c.lightning_scale != "1/sqrt(d)" && c.lightning_scale != "1/d" && c.lightning_scale != "1") {
      fail(path, ": lightning_scale '", printable(c.lightning_scale), "' is not understood; use \"1/sqrt(d)\", \"1/d\" or \"1\"");
    }
  }
  for (int64_t id : c.eos_token_ids) {
    if (id < 0 || id >= c.vocab_size) fail(path, ": eos_token_id ", id, " is outside the vocabulary");
  }
}

std::vector<double> rope_inverse_frequencies(const ModelConfig& config, int64_t head_dim) {
  const RopeScaling& r = config.rope_scaling;
  const double d = static_cast<double>(head_dim);
  std::vector<double> inv_freq(static_cast<size_t>(head_dim / 2));
  for (size_t i = 0; i < inv_freq.size(); ++i) inv_freq[i] = 1.0 / std::pow(config.rope_theta, 2.0 * i / d);
  if (r.type == "linear") {
    for (double& f : inv_freq) f /= r.factor;
  } else if (r.type == "llama3") {
    const double old_context = static_cast<double>(r.original_max_position_embeddings);
    const double low_freq_wavelen = old_context / r.low_freq_factor;
    const double high_freq_wavelen = old_context / r.high_freq_factor;
    for (double& f : inv_freq) {
      const double wavelen = 2 * M_PI / f;
      if (wavelen > low_freq_wavelen) {
        f /= r.factor;
      } else if (wavelen >= high_freq_wavelen) {  // medium frequencies: between the two
        const double smooth = (old_context / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        f = (1 - smooth) * f / r.factor + smooth * f;
      }
    }
  } else if (r.type == "yarn") {
    const double context = static_cast<double>(
        r.original_max_position_embeddings > 0 ? r.original_max_position_embeddings : config.max_position_embeddings);
    auto correction_dim = [&](double rotations) {
      return d * std::log(context / (rotations * 2 * M_PI)) / (2 * std::log(config.rope_theta));
    };
    double low = correction_dim(r.beta_fast), high = correction_dim(r.beta_slow);
    if (r.truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, d - 1);
    if (low == high) high += 0.001;
    for (size_t i = 0; i < inv_freq.size(); ++i) {
      const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
      const double extrapolation = 1 - ramp;
      inv_freq[i] = inv_freq[i] / r.factor * (1 - extrapolation) + inv_freq[i] * extrapolation;
    }
  }
  return inv_freq;
}

double rope_attention_factor(const ModelConfig& config) {
  const RopeScaling& r = config.rope_scaling;
  if (r.type != "yarn") return 1.0;
  if (r.attention_factor) return *r.attention_factor;
  auto mscale = [&](double m) { return r.factor <= 1 ? 1.0 : 0.1 * m * std::log(r.factor) + 1.0; };
  if (r.mscale && r.mscale_all_dim && *r.mscale != 0 && *r.mscale_all_dim != 0) {
    return mscale(*r.mscale) / mscale(*r.mscale_all_dim);
  }
  return mscale(1.0);
}

std::vector<ParameterSpec> parameter_specs(const ModelConfig& c) {
  const int64_t hidden = c.hidden_size;
  std::vector<ParameterSpec> out;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, hidden}});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = cat("model.layers.", i, ".");
    const bool attention = c.mixer_types.at(i) == MixerType::attention;
    const int64_t heads = attention ? c.num_attention_heads : c.lightning_nh;
    const int64_t kv = attention ? c.num_key_value_heads : c.lightning_nkv;
    const int64_t d = attention ? c.head_dim : c.lightning_head_dim;
    out.push_back({p + "input_layernorm.weight", {hidden}});
    out.push_back({p + "self_attn.q_proj.weight", {heads * d, hidden}});
    out.push_back({p + "self_attn.k_proj.weight", {kv * d, hidden}});
    out.push_back({p + "self_attn.v_proj.weight", {kv * d, hidden}});
    out.push_back({p + "self_attn.o_proj.weight", {hidden, heads * d}});
    if (c.attention_bias) {
      out.push_back({p + "self_attn.q_proj.bias", {heads * d}});
      out.push_back({p + "self_attn.k_proj.bias", {kv * d}});
      out.push_back({p + "self_attn.v_proj.bias", {kv * d}});
    }
    if (c.attention_output_bias) out.push_back({p + "self_attn.o_proj.bias", {hidden}});
    if (attention) {
      if (c.attn_use_qk_norm) {
        out.push_back({p + "self_attn.q_norm.weight", {d}});
        out.push_back({p + "self_attn.k_norm.weight", {d}});
      }
      if (c.attn_use_output_gate) out.push_back({p + "self_attn.o_gate.weight", {heads * d, hidden}});
    } else {
      if (c.lightning_use_output_gate) out.push_back({p + "self_attn.z_proj.weight", {heads * d, hidden}});
      if (c.lightning_use_qk_norm) {
        out.push_back({p + "self_attn.q_norm.weight", {d}});
        out.push_back({p + "self_attn.k_norm.weight", {d}});
      }
      if (c.lightning_use_output_norm) out.push_back({p + "self_attn.o_norm.weight", {heads * d}});
    }
    out.push_back({p + "post_attention_layernorm.weight", {hidden}});
    out.push_back({p + "mlp.gate_proj.weight", {c.intermediate_size, hidden}});
    out.push_back({p + "mlp.up_proj.weight", {c.intermediate_size, hidden}});
    out.push_back({p + "mlp.down_proj.weight", {hidden, c.intermediate_size}});
    if (c.mlp_bias) {
      out.push_back({p + "mlp.gate_proj.bias", {c.intermediate_size}});
      out.push_back({p + "mlp.up_proj.bias", {c.intermediate_size}});
      out.push_back({p + "mlp.down_proj.bias", {hidden}});
    }
  }
  out.push_back({"model.norm.weight", {hidden}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, hidden}});
  return out;
}

namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
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

void check_weights_match_config(const WeightFiles& files, const ModelConfig& config) {
  std::set<std::string> wanted;
  std::vector<std::string> missing;
  for (const ParameterSpec& spec : parameter_specs(config)) {
    wanted.insert(spec.name);
    const WeightEntry* entry = files.find(spec.name);
    if (entry == nullptr) {
      missing.push_back(spec.name);
    } else if (entry->tensor->shape != spec.shape) {
      fail(entry->file->path(), ": tensor ", spec.name, " has shape ", shape_string(entry->tensor->shape),
           " but config.json implies ", shape_string(spec.shape));
    }
  }
  if (!missing.empty()) {
    fail(files.source(), ": missing tensors ", list_names(missing), " (does config.json match these weights?)");
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, entry] : files.entries()) {
    if (!wanted.count(name) && !(name == "lm_head.weight" && config.tie_word_embeddings)) unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    fail(files.source(), ": unexpected tensors ", list_names(unexpected), " (does config.json match these weights?)");
  }
}

}  // namespace halo
