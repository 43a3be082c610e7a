// load_causal_lm: config.json, every tensor checked by name and shape against it, then loaded.
// save_model_directory: weights via save_weights (atomic, sharded), side files copied
// atomically, config.json last with the stored dtype recorded.
#include "halo/model_directory.h"

#include <ATen/ATen.h>
#include <sys/stat.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "halo/causal_lm.h"
#include "halo/device.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/safetensors.h"
#include "halo/tensor_io.h"
#include "halo/tokenizer.h"

namespace halo {

CausalLM load_causal_lm(const std::string& model_dir, c10::ScalarType dtype, const c10::Device& device) {
  const ModelConfig config = load_model_config(model_dir);
  const WeightFiles files(model_dir);
  check_weights_match_config(files, config);  // before anything is allocated
  CausalLM model(config);
  for (auto& [name, tensor] : model.named_parameters()) {
    const WeightEntry& entry = *files.find(name);
    const DType stored = entry.tensor->dtype;
    if (stored != DType::F32 && stored != DType::F16 && stored != DType::BF16 && stored != DType::F64) {
      fail(entry.file->path(), ": tensor '", name, "' is stored as ", dtype_name(stored),
           "; weights must be floating point (F32, F16, BF16 or F64)");
    }
    *tensor = entry_to_tensor(entry).to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
    // NaN or Inf (stored, or a float32 value past the compute dtype's range) would generate
    // garbage silently.
    if (!at::isfinite(*tensor).all().item<bool>()) {
      fail(entry.file->path(), ": tensor '", name, "' holds NaN or Inf",
           stored == DType::F32 || stored == DType::F64 ? cat(" (or values beyond ", scalar_type_name(dtype), "'s range)")
                                                        : std::string(),
           "; the weights are damaged");
    }
  }
  model.to(device, dtype);
  return model;
}

namespace {

bool same_directory(const std::string& a, const std::string& b) {
  struct stat sa = {};
  struct stat sb = {};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

}  // namespace

std::vector<int64_t> stop_token_ids(const std::string& model_dir, const ModelConfig& config,
                                    const Tokenizer* tokenizer) {
  std::vector<int64_t> ids = config.eos_token_ids;
  const std::string path = join_path(model_dir, "generation_config.json");
  if (is_regular_file(path)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(path));
    } catch (const nlohmann::json::exception& e) {
      fail(path, ": not valid JSON (", e.what(), ")");
    }
    const auto it = j.find("eos_token_id");
    if (it != j.end() && it->is_number_integer()) ids.push_back(it->get<int64_t>());
    if (it != j.end() && it->is_array()) {
      for (const auto& v : *it) {
        if (v.is_number_integer()) ids.push_back(v.get<int64_t>());
      }
    }
  }
  if (tokenizer != nullptr && tokenizer->eos_id()) ids.push_back(*tokenizer->eos_id());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

uint64_t parse_byte_size(const std::string& text, const std::string& option) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    usage_fail(option, ": '", text, "' is not a size (e.g. 5GB, 500MB)");
  }
  std::string unit = text.substr(used);
  double scale = unit.empty() || unit == "B" ? 1 : unit == "KB" ? 1e3 : unit == "MB" ? 1e6 : unit == "GB" ? 1e9 : -1;
  if (scale < 0 || value < 0) usage_fail(option, ": '", text, "' is not a size (e.g. 5GB, 500MB)");
  return static_cast<uint64_t>(value * scale);
}

void save_model_directory(CausalLM& model, const std::string& dir, const SaveOptions& options) {
  create_directories(dir);
  NamedTensors tensors;
  for (auto& [name, tensor] : model.named_parameters()) tensors.emplace_back(name, tensor->to(options.dtype));
  save_weights(dir, tensors, options.max_shard_bytes);

  bool has_generation_config = false;
  if (!options.tokenizer_source.empty()) {
    for (const char* file : {"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
                             "vocab.json", "merges.txt", "added_tokens.json", "generation_config.json"}) {
      const std::string from = join_path(options.tokenizer_source, file);
      if (!path_exists(from) || same_directory(options.tokenizer_source, dir)) continue;
      copy_file_atomic(from, join_path(dir, file));
      has_generation_config |= std::string(file) == "generation_config.json";
    }
  }
  ModelConfig config = model.config();
  config.dtype = scalar_type_name(options.dtype);
  if (!has_generation_config) {
    nlohmann::json g = {{"_from_model_config", true}};
    if (!config.eos_token_ids.empty()) g["eos_token_id"] = config.eos_token_ids;
    write_file_atomic(join_path(dir, "generation_config.json"), g.dump(2) + "\n");
  }
  write_file_atomic(join_path(dir, "config.json"), model_config_to_json(config));
}

}  // namespace halo
