// GGUF -> Hugging Face directory (see halo/gguf_import.h).
//
// Order of work: everything that can be refused is checked before a weight is dequantized
// (architecture, metadata, tokenizer, every tensor's name, type and shape, the output
// directory), so bad input fails in milliseconds. Then each tensor is dequantized to float32
// (threads inside halo::dequantize), un-permuted when llama.cpp permuted it, and kept in the
// output dtype; the files are written into OUT.partial-PID beside OUT and renamed into place.
//
// llama's q/k permutation: llama.cpp's converter stores the rows of each head as
// (i, half) pairs, w.reshape(n_head, 2, d/2, cols).swapaxes(1, 2), so that ggml's interleaved
// RoPE (pairs of adjacent rows) computes what transformers' rotate_half (rows i and i + d/2)
// computes. Importing undoes it: GGUF row h*d + 2*i + s goes back to HF row h*d + s*d/2 + i
// (k uses the KV head count). Biases are permuted alike. qwen2/qwen3 files are not permuted.
//
// llama3 RoPE scaling: llama.cpp keeps no scaling metadata for it but a tensor rope_freqs
// (one divisor per frequency: 1 for high frequencies, `factor` for low ones, a smooth blend
// between). The parameters are solved back from it (the blend is linear in 1/wavelength) and
// checked by recomputing every divisor; a file that fits no llama3 curve is refused.
#include "halo/gguf_import.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/gguf.h"
#include "halo/progress.h"
#include "halo/safetensors.h"
#include "model/gguf_import_internal.h"

namespace halo {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

constexpr const char* kMarkerName = "halo_import.json";
constexpr uint64_t kMaxShardBytes = 5'000'000'000ULL;  // transformers' default shard size
constexpr double kPi = 3.14159265358979323846;

const char* const kArchitectures[] = {"llama", "qwen2", "qwen3"};

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// The model hyperparameters, from `<arch>.*` metadata.
struct Hyper {
  std::string arch;
  int64_t layers = 0, hidden = 0, ffn = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t context = 0, vocab = 0;
  double rms_eps = 0, rope_theta = 10000.0;
  json rope_scaling = nullptr;
  bool tied = false, attention_bias = false;
};

Hyper read_hyper(const GgufFile& file) {
  const std::string& path = file.path();
  Hyper h;
  h.arch = file.string_value("general.architecture");
  if (std::find(std::begin(kArchitectures), std::end(kArchitectures), h.arch) == std::end(kArchitectures)) {
    fail(path, ": architecture '", h.arch, "' is not supported; halo imports llama, qwen2 and qwen3");
  }
  const std::string a = h.arch + ".";
  h.layers = file.int_value(a + "block_count");
  h.hidden = file.int_value(a + "embedding_length");
  h.ffn = file.int_value(a + "feed_forward_length");
  h.heads = file.int_value(a + "attention.head_count");
  // llama.cpp's default when absent: as many KV heads as query heads.
  h.kv_heads = file.optional_int(a + "attention.head_count_kv").value_or(h.heads);
  h.context = file.int_value(a + "context_length");
  h.rms_eps = file.float_value(a + "attention.layer_norm_rms_epsilon");
  h.rope_theta = file.optional_float(a + "rope.freq_base").value_or(10000.0);
  const auto positive = [&](const std::string& key, int64_t value) {
    if (value <= 0) fail(path, ": metadata key '", key, "' must be positive, got ", value);
  };
  positive(a + "block_count", h.layers);
  positive(a + "embedding_length", h.hidden);
  positive(a + "feed_forward_length", h.ffn);
  positive(a + "attention.head_count", h.heads);
  positive(a + "attention.head_count_kv", h.kv_heads);
  positive(a + "context_length", h.context);
  if (!(h.rms_eps > 0)) fail(path, ": metadata key '", a, "attention.layer_norm_rms_epsilon' must be positive");
  if (!(h.rope_theta > 0)) fail(path, ": metadata key '", a, "rope.freq_base' must be positive");
  if (h.heads % h.kv_heads != 0) {
    fail(path, ": ", a, "attention.head_count (", h.heads, ") is not a multiple of ", a, "attention.head_count_kv (",
         h.kv_heads, ")");
  }
  if (const auto key_length = file.optional_int(a + "attention.key_length")) {
    h.head_dim = *key_length;
  } else {
    if (h.hidden % h.heads != 0) {
      fail(path, ": metadata key '", a, "attention.key_length' is missing and ", a, "embedding_length (", h.hidden,
           ") is not a multiple of the head count (", h.heads, ")");
    }
    h.head_dim = h.hidden / h.heads;
  }
  positive(a + "attention.key_length", h.head_dim);
  if (h.head_dim % 2 != 0) fail(path, ": head_dim ", h.head_dim, " must be even for RoPE");
  if (const auto value_length = file.optional_int(a + "attention.value_length")) {
    if (*value_length != h.head_dim) {
      fail(path, ": ", a, "attention.value_length (", *value_length, ") differs from the key length (", h.head_dim,
           "); transformers' ", h.arch, " has one head_dim");
    }
  }
  if (const auto rope_dims = file.optional_int(a + "rope.dimension_count")) {
    if (*rope_dims != h.head_dim) {
      fail(path, ": ", a, "rope.dimension_count (", *rope_dims, ") differs from head_dim (", h.head_dim,
           "); partial rotary embeddings are not supported");
    }
  }
  return h;
}

// rope_scaling from `<arch>.rope.scaling.*` (linear, yarn) or, for llama3, the rope_freqs tensor.
json read_rope_scaling(const GgufFile& file, const Hyper& h, const std::vector<float>* rope_freqs) {
  const std::string& path = file.path();
  const std::string a = h.arch + ".";
  const std::string type = file.optional_string(a + "rope.scaling.type").value_or("none");
  if (rope_freqs) {
    if (type != "none") {
      fail(path, ": both ", a, "rope.scaling.type '", type, "' and a rope_freqs.weight tensor; expected one of them");
    }
    const std::vector<float>& r = *rope_freqs;
    const size_t n = r.size();
    if (static_cast<int64_t>(n) != h.head_dim / 2) {
      fail(path, ": tensor 'rope_freqs.weight' has ", n, " values, expected head_dim / 2 = ", h.head_dim / 2);
    }
    const auto wavelength = [&](size_t i) {
      return 2 * kPi * std::pow(h.rope_theta, 2.0 * static_cast<double>(i) / static_cast<double>(h.head_dim));
    };
    double factor = 0;
    for (const float value : r) factor = std::max(factor, static_cast<double>(value));
    bool all_one = true;
    for (const float value : r) all_one = all_one && std::fabs(value - 1.0f) < 1e-6f;
    if (all_one) return nullptr;
    const std::string unfit =
        cat(path,
            ": tensor 'rope_freqs.weight' does not follow llama3 RoPE scaling (1 for high frequencies, a factor for "
            "low ones, a smooth blend between); this kind of frequency scaling is not supported");
    if (!(factor > 1.0) || std::fabs(r[0] - 1.0f) > 1e-4f) fail(unfit);
    // Medium band: smooth_i = (1/r_i - 1/factor) / (1 - 1/factor) = A / wavelength_i + B,
    // with A = L / (hi - lo), B = -lo / (hi - lo).
    std::vector<double> xs, ys;
    for (size_t i = 0; i < n; ++i) {
      const double value = r[i];
      if (value > 1.0 + 1e-4 && value < factor * (1 - 1e-4)) {
        xs.push_back(1.0 / wavelength(i));
        ys.push_back((1.0 / value - 1.0 / factor) / (1.0 - 1.0 / factor));
      }
    }
    const std::optional<int64_t> original = file.optional_int(a + "rope.scaling.original_context_length");
    double low = 1.0, high = 4.0, original_context = original ? static_cast<double>(*original) : 8192.0;
    if (xs.size() >= 2) {
      double mx = 0, my = 0;
      for (size_t k = 0; k < xs.size(); ++k) mx += xs[k], my += ys[k];
      mx /= xs.size(), my /= ys.size();
      double sxx = 0, sxy = 0;
      for (size_t k = 0; k < xs.size(); ++k) sxx += (xs[k] - mx) * (xs[k] - mx), sxy += (xs[k] - mx) * (ys[k] - my);
      const double slope = sxy / sxx, intercept = my - slope * mx;
      if (!(slope > 0) || !(intercept < 0)) fail(unfit);
      if (original) {  // L known: hi - lo = L / A, lo = -B (hi - lo)
        const double span = original_context / slope;
        low = -intercept * span;
        high = low + span;
      } else {  // llama3's low_freq_factor is 1: hi - lo = -1 / B, L = A (hi - lo)
        low = 1.0;
        high = 1.0 - 1.0 / intercept;
        original_context = std::round(slope * (high - low));
      }
    }
    const auto round_to = [](double value, double step) { return std::round(value / step) * step; };
    factor = round_to(factor, 1e-4);
    low = round_to(low, 1e-4);
    high = round_to(high, 1e-4);
    original_context = std::round(original_context);
    // Check: recompute every divisor as llama.cpp's converter does.
    const double low_wavelength = original_context / low, high_wavelength = original_context / high;
    for (size_t i = 0; i < n; ++i) {
      const double w = wavelength(i);
      double expected;
      if (w < high_wavelength) {
        expected = 1.0;
      } else if (w > low_wavelength) {
        expected = factor;
      } else {
        const double smooth = (original_context / w - low) / (high - low);
        expected = 1.0 / ((1 - smooth) / factor + smooth);
      }
      if (std::fabs(expected - r[i]) > 1e-3 * expected) fail(unfit);
    }
    json scaling;
    scaling["rope_type"] = "llama3";
    scaling["factor"] = factor;
    scaling["low_freq_factor"] = low;
    scaling["high_freq_factor"] = high;
    scaling["original_max_position_embeddings"] = static_cast<int64_t>(original_context);
    return scaling;
  }
  if (type == "none") return nullptr;
  if (type == "linear" || type == "yarn") {
    json scaling;
    scaling["rope_type"] = type;
    scaling["factor"] = file.float_value(a + "rope.scaling.factor");
    if (type == "yarn") {
      scaling["original_max_position_embeddings"] = file.int_value(a + "rope.scaling.original_context_length");
    }
    return scaling;
  }
  fail(path, ": ", a, "rope.scaling.type '", type,
       "' is not supported (none, linear, yarn; or llama3 through rope_freqs)");
}

// One GGUF tensor on its way to the checkpoint.
struct Planned {
  const GgufTensorInfo* info = nullptr;
  std::string name;            // Hugging Face name
  std::vector<int64_t> shape;  // Hugging Face shape
  int64_t permute_heads = 0;   // > 0: undo llama.cpp's q/k row permutation with this many heads
};

struct Plan {
  std::vector<Planned> tensors;
  const GgufTensorInfo* rope_freqs = nullptr;
};

// Maps every tensor of the file to its Hugging Face name and shape; fails on unknown, missing,
// duplicate-meaning or mis-shaped tensors.
Plan plan_tensors(const GgufFile& file, Hyper& h) {
  const std::string& path = file.path();
  const int64_t q_rows = h.heads * h.head_dim, kv_rows = h.kv_heads * h.head_dim;
  const bool llama = h.arch == "llama", qwen2 = h.arch == "qwen2", qwen3 = h.arch == "qwen3";

  const GgufTensorInfo* embedding = file.find_tensor("token_embd.weight");
  if (!embedding) fail(path, ": tensor 'token_embd.weight' is missing");
  if (embedding->ne.size() != 2) {
    fail(path, ": tensor 'token_embd.weight' has shape ", shape_text(embedding->shape()), ", expected [vocab_size, ",
         h.hidden, "]");
  }
  h.vocab = embedding->shape()[0];
  if (const auto vocab = file.optional_int(h.arch + ".vocab_size")) {
    if (*vocab != h.vocab) {
      fail(path, ": metadata key '", h.arch, ".vocab_size' is ", *vocab, " but tensor 'token_embd.weight' has ",
           h.vocab, " rows");
    }
  }
  h.tied = file.find_tensor("output.weight") == nullptr;

  // Biases present decide attention_bias (llama, qwen3: all of q, k, v, o or none).
  const auto has_bias = [&](const char* which) {
    for (int64_t layer = 0; layer < h.layers; ++layer) {
      if (file.find_tensor(cat("blk.", layer, ".", which, ".bias"))) return true;
    }
    return false;
  };
  h.attention_bias = !qwen2 && has_bias("attn_q");

  struct Expected {
    std::string hf;
    std::vector<int64_t> shape;
    const char* meaning;
    int64_t permute_heads;
  };
  std::map<std::string, Expected> expected;
  expected["token_embd.weight"] = {"model.embed_tokens.weight", {h.vocab, h.hidden}, "vocab_size, hidden_size", 0};
  expected["output_norm.weight"] = {"model.norm.weight", {h.hidden}, "hidden_size", 0};
  if (!h.tied) expected["output.weight"] = {"lm_head.weight", {h.vocab, h.hidden}, "vocab_size, hidden_size", 0};
  for (int64_t layer = 0; layer < h.layers; ++layer) {
    const std::string g = cat("blk.", layer, "."), m = cat("model.layers.", layer, ".");
    const auto add = [&](const std::string& gguf, const std::string& hf, std::vector<int64_t> shape,
                         const char* meaning, int64_t permute_heads = 0) {
      expected[g + gguf] = {m + hf, std::move(shape), meaning, permute_heads};
    };
    add("attn_norm.weight", "input_layernorm.weight", {h.hidden}, "hidden_size");
    add("ffn_norm.weight", "post_attention_layernorm.weight", {h.hidden}, "hidden_size");
    add("attn_q.weight", "self_attn.q_proj.weight", {q_rows, h.hidden}, "num_attention_heads * head_dim, hidden_size",
        llama ? h.heads : 0);
    add("attn_k.weight", "self_attn.k_proj.weight", {kv_rows, h.hidden}, "num_key_value_heads * head_dim, hidden_size",
        llama ? h.kv_heads : 0);
    add("attn_v.weight", "self_attn.v_proj.weight", {kv_rows, h.hidden}, "num_key_value_heads * head_dim, hidden_size");
    add("attn_output.weight", "self_attn.o_proj.weight", {h.hidden, q_rows},
        "hidden_size, num_attention_heads * head_dim");
    if (qwen2 || h.attention_bias) {
      add("attn_q.bias", "self_attn.q_proj.bias", {q_rows}, "num_attention_heads * head_dim", llama ? h.heads : 0);
      add("attn_k.bias", "self_attn.k_proj.bias", {kv_rows}, "num_key_value_heads * head_dim", llama ? h.kv_heads : 0);
      add("attn_v.bias", "self_attn.v_proj.bias", {kv_rows}, "num_key_value_heads * head_dim");
    }
    if (h.attention_bias) add("attn_output.bias", "self_attn.o_proj.bias", {h.hidden}, "hidden_size");
    if (qwen3) {
      add("attn_q_norm.weight", "self_attn.q_norm.weight", {h.head_dim}, "head_dim");
      add("attn_k_norm.weight", "self_attn.k_norm.weight", {h.head_dim}, "head_dim");
    }
    add("ffn_gate.weight", "mlp.gate_proj.weight", {h.ffn, h.hidden}, "intermediate_size, hidden_size");
    add("ffn_up.weight", "mlp.up_proj.weight", {h.ffn, h.hidden}, "intermediate_size, hidden_size");
    add("ffn_down.weight", "mlp.down_proj.weight", {h.hidden, h.ffn}, "hidden_size, intermediate_size");
  }

  Plan plan;
  std::vector<std::string> unknown;
  for (const GgufTensorInfo& info : file.tensors()) {
    if (info.name == "rope_freqs.weight" && llama) {
      plan.rope_freqs = &info;
      continue;
    }
    const auto found = expected.find(info.name);
    if (found == expected.end()) {
      unknown.push_back(info.name);
      continue;
    }
    const Expected& e = found->second;
    if (info.shape() != e.shape) {
      fail(path, ": tensor '", info.name, "' has shape ", shape_text(info.shape()), ", expected ", shape_text(e.shape),
           " (", e.meaning, ")");
    }
    plan.tensors.push_back(Planned{&info, e.hf, e.shape, e.permute_heads});
  }
  if (!unknown.empty()) {
    std::string names;
    for (size_t i = 0; i < unknown.size() && i < 5; ++i) names += (i ? ", " : "") + ("'" + unknown[i] + "'");
    if (unknown.size() > 5) names += cat(" and ", unknown.size() - 5, " more");
    fail(path, ": ", unknown.size() == 1 ? "tensor " : "tensors ", names, " unknown to halo's ", h.arch, " importer (",
         h.layers, " layers", qwen2 || h.attention_bias ? "" : ", no attention biases", "); is this a ", h.arch,
         " model?");
  }
  if (plan.tensors.size() != expected.size()) {
    std::set<std::string> present;
    for (const Planned& p : plan.tensors) present.insert(p.info->name);
    for (const auto& [name, e] : expected) {
      if (!present.count(name)) {
        const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
        fail(path, ": tensor '", name, "' is missing", bias ? " (attention biases must cover q, k, v" : "",
             bias ? (qwen2 ? " in every layer for qwen2)" : " and o in every layer)") : "");
      }
    }
  }
  return plan;
}

// Undoes llama.cpp's permute(): GGUF row h*d + 2*i + s -> HF row h*d + s*d/2 + i.
void unpermute_rows(std::vector<float>& data, int64_t rows, int64_t cols, int64_t heads) {
  const int64_t d = rows / heads, half = d / 2;
  std::vector<float> original(data.size());
  for (int64_t head = 0; head < heads; ++head) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t s = 0; s < 2; ++s) {
        const int64_t from = head * d + 2 * i + s, to = head * d + s * half + i;
        std::memcpy(&original[static_cast<size_t>(to * cols)], &data[static_cast<size_t>(from * cols)],
                    static_cast<size_t>(cols) * sizeof(float));
      }
    }
  }
  data.swap(original);
}

uint16_t to_bfloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x007FFFFFu) != 0) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // NaN stays a (quiet) NaN
  }
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

std::string config_json(const Hyper& h, const GgufTokenizer& tokenizer, const std::string& dtype) {
  static const std::map<std::string, const char*> kClass = {
      {"llama", "LlamaForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}, {"qwen3", "Qwen3ForCausalLM"}};
  json c;  // std::map keys: sorted, as transformers writes config.json
  c["architectures"] = json::array({kClass.at(h.arch)});
  c["attention_dropout"] = 0.0;
  c["bos_token_id"] = tokenizer.bos_id ? json(*tokenizer.bos_id) : json(nullptr);
  c["eos_token_id"] = tokenizer.eos_id ? json(*tokenizer.eos_id) : json(nullptr);
  c["head_dim"] = h.head_dim;
  c["hidden_act"] = "silu";
  c["hidden_size"] = h.hidden;
  c["initializer_range"] = 0.02;
  c["intermediate_size"] = h.ffn;
  c["max_position_embeddings"] = h.context;
  c["model_type"] = h.arch;
  c["num_attention_heads"] = h.heads;
  c["num_hidden_layers"] = h.layers;
  c["num_key_value_heads"] = h.kv_heads;
  // float32 metadata: print the float's shortest decimal (1e-05, not 9.999999747378752e-06).
  c["rms_norm_eps"] = std::stod(cat(static_cast<float>(h.rms_eps)));
  c["rope_scaling"] = h.rope_scaling;
  c["rope_theta"] = h.rope_theta;
  c["tie_word_embeddings"] = h.tied;
  c["torch_dtype"] = dtype;
  c["transformers_version"] = "4.57.1";
  c["use_cache"] = true;
  c["vocab_size"] = h.vocab;
  if (h.arch == "llama") {
    c["attention_bias"] = h.attention_bias;
    c["mlp_bias"] = false;
    c["pretraining_tp"] = 1;
  } else {
    if (h.arch == "qwen3") c["attention_bias"] = h.attention_bias;
    c["layer_types"] = json(std::vector<std::string>(static_cast<size_t>(h.layers), "full_attention"));
    c["max_window_layers"] = h.layers;
    c["sliding_window"] = nullptr;
    c["use_sliding_window"] = false;
  }
  return c.dump(2) + "\n";
}

std::string generation_config_json(const GgufTokenizer& tokenizer) {
  json g;
  g["_from_model_config"] = true;
  if (tokenizer.bos_id) g["bos_token_id"] = *tokenizer.bos_id;
  if (tokenizer.eos_id) g["eos_token_id"] = *tokenizer.eos_id;
  g["transformers_version"] = "4.57.1";
  return g.dump(2) + "\n";
}

std::string strip_trailing_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// Removes a directory tree on scope exit unless released.
class TreeGuard {
 public:
  explicit TreeGuard(std::string path) : path_(std::move(path)) {}
  ~TreeGuard() {
    if (!path_.empty()) remove_tree(path_);
  }
  void release() { path_.clear(); }

 private:
  std::string path_;
};

// Checks that `out_dir` may receive the import; returns whether it holds something to replace.
bool check_out_dir(const std::string& out_dir, bool overwrite) {
  if (!path_exists(out_dir)) return false;
  if (!is_directory(out_dir)) fail(out_dir, ": exists and is not a directory; choose another --out");
  if (list_directory(out_dir).empty()) return false;
  const bool earlier_import = is_regular_file(join_path(out_dir, kMarkerName));
  if (!earlier_import) {
    fail(out_dir, ": exists and is not empty (and is not an earlier halo import); remove it or choose another --out");
  }
  if (!overwrite) {
    fail(out_dir, ": holds an earlier import; pass --force to replace it, or remove it");
  }
  return true;
}

void rename_or_fail(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    fail(to, ": cannot rename ", from, " into place (", std::strerror(errno), ")");
  }
}

}  // namespace

GgufImportResult import_gguf(const std::string& gguf_path, const std::string& out_dir_arg,
                             const GgufImportOptions& options) {
  if (options.dtype != "float32" && options.dtype != "bfloat16") {
    usage_fail("--dtype '", options.dtype, "' is not supported; use float32 or bfloat16");
  }
  if (options.threads < 0 || options.threads > kMaxWorkerThreads) {
    usage_fail("--threads must be 0 (all cores) to ", kMaxWorkerThreads, ", got ", options.threads);
  }
  const std::string out_dir = strip_trailing_slashes(out_dir_arg);
  if (out_dir.empty()) usage_fail("--out must name a directory");
  const bool bf16 = options.dtype == "bfloat16";

  const GgufFile file(gguf_path);
  Hyper h = read_hyper(file);
  const GgufTokenizer tokenizer = read_gguf_tokenizer(file);
  Plan plan = plan_tensors(file, h);
  if (static_cast<int64_t>(tokenizer.tokens.size()) > h.vocab) {
    fail(gguf_path, ": tokenizer.ggml.tokens has ", tokenizer.tokens.size(),
         " tokens but tensor 'token_embd.weight' has only ", h.vocab, " rows");
  }
  std::vector<float> rope_freqs;
  if (plan.rope_freqs) {
    const GgufTensorInfo& info = *plan.rope_freqs;
    if (info.ne.size() != 1) fail(gguf_path, ": tensor 'rope_freqs.weight' must be one-dimensional");
    rope_freqs.resize(static_cast<size_t>(info.elements));
    dequantize(info.type, info.data, info.elements, rope_freqs.data(), 1);
  }
  h.rope_scaling = read_rope_scaling(file, h, plan.rope_freqs ? &rope_freqs : nullptr);
  const GgufTokenizerFiles tokenizer_files = gguf_tokenizer_files(tokenizer, h.context);
  const bool replace = check_out_dir(out_dir, options.overwrite);

  // Dequantize.
  struct Buffer {
    std::vector<float> f32;
    std::vector<uint16_t> bf16;
  };
  std::vector<Buffer> buffers(plan.tensors.size());
  int64_t total_elements = 0;
  for (const Planned& p : plan.tensors) total_elements += p.info->elements;
  constexpr int64_t kUnit = 1'000'000;
  std::unique_ptr<ProgressBar> bar;
  if (options.progress) {
    bar = std::make_unique<ProgressBar>("dequantizing", (total_elements + kUnit - 1) / kUnit, "M weights");
  }
  int64_t done_elements = 0, shown = 0;
  GgufImportResult result;
  result.architecture = h.arch;
  result.tied_embeddings = h.tied;
  std::vector<TensorToWrite> to_write;
  to_write.reserve(plan.tensors.size());
  for (size_t k = 0; k < plan.tensors.size(); ++k) {
    const Planned& p = plan.tensors[k];
    const GgufTensorInfo& info = *p.info;
    std::vector<float> values(static_cast<size_t>(info.elements));
    dequantize(info.type, info.data, info.elements, values.data(), options.threads);
    if (p.permute_heads > 0) {
      const int64_t rows = p.shape[0];
      const int64_t cols = p.shape.size() > 1 ? p.shape[1] : 1;
      unpermute_rows(values, rows, cols, p.permute_heads);
    }
    Buffer& buffer = buffers[k];
    TensorToWrite tensor{p.name, bf16 ? DType::BF16 : DType::F32, p.shape, nullptr, 0};
    if (bf16) {
      buffer.bf16.resize(values.size());
      for (size_t i = 0; i < values.size(); ++i) buffer.bf16[i] = to_bfloat16(values[i]);
      tensor.data = buffer.bf16.data();
      tensor.nbytes = buffer.bf16.size() * sizeof(uint16_t);
    } else {
      buffer.f32 = std::move(values);
      tensor.data = buffer.f32.data();
      tensor.nbytes = buffer.f32.size() * sizeof(float);
    }
    result.parameters += info.elements;
    result.bytes += tensor.nbytes;
    to_write.push_back(std::move(tensor));
    done_elements += info.elements;
    if (bar) {
      const int64_t now = done_elements / kUnit;
      if (now > shown) bar->advance(now - shown), shown = now;
    }
  }
  if (bar) {
    const int64_t total_units = (total_elements + kUnit - 1) / kUnit;
    if (total_units > shown) bar->advance(total_units - shown);
    bar->finish();
  }
  result.tensors = static_cast<int64_t>(to_write.size());

  // Write everything beside out_dir, then move it into place.
  create_directories(parent_directory(out_dir));
  const std::string partial = cat(out_dir, ".partial-", ::getpid());
  remove_tree(partial);
  TreeGuard partial_guard(partial);
  create_directories(partial);
  write_weights(partial, to_write, kMaxShardBytes, {{"format", "pt"}});
  write_file_atomic(join_path(partial, "config.json"), config_json(h, tokenizer, options.dtype));
  write_file_atomic(join_path(partial, "generation_config.json"), generation_config_json(tokenizer));
  write_file_atomic(join_path(partial, "tokenizer.json"), tokenizer_files.tokenizer_json);
  write_file_atomic(join_path(partial, "tokenizer_config.json"), tokenizer_files.tokenizer_config_json);
  write_file_atomic(join_path(partial, "special_tokens_map.json"), tokenizer_files.special_tokens_map_json);
  ordered_json marker;
  marker["format"] = "halo-gguf-import";
  marker["version"] = 1;
  marker["source"] = base_name(gguf_path);
  marker["source_bytes"] = file_size(gguf_path);
  marker["architecture"] = h.arch;
  marker["dtype"] = options.dtype;
  marker["tensors"] = result.tensors;
  marker["parameters"] = result.parameters;
  write_file_atomic(join_path(partial, kMarkerName), marker.dump(2) + "\n");

  if (replace) {
    const std::string old = cat(out_dir, ".old-", ::getpid());
    remove_tree(old);
    rename_or_fail(out_dir, old);
    if (std::rename(partial.c_str(), out_dir.c_str()) != 0) {
      const int error = errno;
      std::rename(old.c_str(), out_dir.c_str());
      fail(out_dir, ": cannot rename ", partial, " into place (", std::strerror(error), ")");
    }
    remove_tree(old);
  } else {
    if (is_directory(out_dir)) ::rmdir(out_dir.c_str());  // an empty directory
    rename_or_fail(partial, out_dir);
  }
  partial_guard.release();
  return result;
}

namespace {

std::string size_text(double bytes) {
  if (bytes >= 1e9) return fixed(bytes / 1e9, 2) + " GB";
  if (bytes >= 1e6) return fixed(bytes / 1e6, 1) + " MB";
  return fixed(bytes / 1e3, 1) + " kB";
}

}  // namespace

bool is_gguf_file(const std::string& path) {
  if (!is_regular_file(path)) return false;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char magic[4] = {0, 0, 0, 0};
  const size_t got = std::fread(magic, 1, 4, f);
  std::fclose(f);
  return got == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

std::string describe_gguf(const std::string& gguf_path) {
  const GgufFile file(gguf_path);
  return describe_gguf(file);
}

std::string describe_gguf(const GgufFile& file) {
  // Lenient reads: a key of an unexpected kind or a missing one shows as "-".
  const auto text = [&](const std::string& key) -> std::string {
    const GgufValue* value = file.find(key);
    if (!value || value->is_array()) return "-";
    if (value->kind == GgufValue::Kind::STRING) return value->strings[0];
    if (!value->floats.empty()) return cat(static_cast<float>(value->floats[0]));
    if (!value->integers.empty()) {
      if (value->kind == GgufValue::Kind::BOOL) return value->integers[0] ? "true" : "false";
      return std::to_string(value->integers[0]);
    }
    return "-";
  };
  const auto count = [&](const std::string& key) -> std::string {
    const GgufValue* value = file.find(key);
    return value && value->is_array() ? std::to_string(value->size()) : "-";
  };
  const std::string arch = text("general.architecture");
  const std::string a = arch + ".";

  int64_t parameters = 0;
  uint64_t bytes = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> types;  // name -> (tensors, elements)
  for (const GgufTensorInfo& info : file.tensors()) {
    parameters += info.elements;
    bytes += info.nbytes;
    auto& entry = types[ggml_type_name(static_cast<uint32_t>(info.type))];
    ++entry.first;
    entry.second += info.elements;
  }
  std::string type_counts;
  for (const auto& [name, entry] : types) {
    type_counts += cat(type_counts.empty() ? "" : ", ", name, " x", entry.first, " (",
                       fixed(100.0 * static_cast<double>(entry.second) / std::max<int64_t>(parameters, 1), 1), "%)");
  }
  const std::string params =
      parameters >= 1'000'000'000 ? fixed(parameters / 1e9, 2) + " B" : fixed(parameters / 1e6, 2) + " M";
  const bool tied = file.find_tensor("token_embd.weight") && !file.find_tensor("output.weight");
  std::string head_dim = text(a + "attention.key_length");
  if (head_dim == "-") {
    const GgufValue* hidden = file.find(a + "embedding_length");
    const GgufValue* heads = file.find(a + "attention.head_count");
    if (hidden && heads && !hidden->integers.empty() && !heads->integers.empty() && heads->integers[0] > 0 &&
        !hidden->is_array() && !heads->is_array()) {
      head_dim = std::to_string(hidden->integers[0] / heads->integers[0]);
    }
  }
  const bool supported = arch == "llama" || arch == "qwen2" || arch == "qwen3";

  std::ostringstream out;
  out << "file           " << file.path() << " (GGUF v" << file.version() << ", "
      << size_text(static_cast<double>(file_size(file.path()))) << ")\n";
  out << "architecture   " << arch << (supported ? "" : " (halo import supports llama, qwen2, qwen3)") << "\n";
  out << "name           " << text("general.name") << "\n";
  out << "parameters     " << parameters << " (" << params << ") in " << file.tensors().size() << " tensors, "
      << size_text(static_cast<double>(bytes)) << " of data\n";
  out << "tensor types   " << type_counts << "\n";
  out << "layers         " << text(a + "block_count") << ", hidden " << text(a + "embedding_length") << ", ffn "
      << text(a + "feed_forward_length") << "\n";
  out << "attention      " << text(a + "attention.head_count") << " heads, " << text(a + "attention.head_count_kv")
      << " kv heads, head_dim " << head_dim << ", rope_theta " << text(a + "rope.freq_base") << "\n";
  out << "context        " << text(a + "context_length") << "\n";
  out << "embeddings     " << (tied ? "tied" : "untied") << "\n";
  out << "tokenizer      model " << text("tokenizer.ggml.model") << ", pre " << text("tokenizer.ggml.pre") << ", "
      << count("tokenizer.ggml.tokens") << " tokens, " << count("tokenizer.ggml.merges") << " merges\n";
  out << "special ids    bos " << text("tokenizer.ggml.bos_token_id") << ", eos " << text("tokenizer.ggml.eos_token_id")
      << ", add_bos " << text("tokenizer.ggml.add_bos_token") << ", chat template "
      << (file.find("tokenizer.chat_template") ? "yes" : "no") << "\n";
  return out.str();
}

}  // namespace halo
