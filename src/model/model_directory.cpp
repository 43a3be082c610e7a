// load_causal_lm: config.json, then every tensor checked by name and shape against it.
// save_model_directory: weights via save_checkpoint (atomic, sharded), side files copied
// atomically, config.json last with the stored dtype recorded.
#include "halo/model_directory.h"

#include <ATen/ATen.h>
#include <sys/stat.h>
#include <nlohmann/json.hpp>

#include <set>

#include "halo/causal_lm.h"
#include "halo/device.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/logging.h"
#include "halo/safetensors.h"
#include "halo/tensor_io.h"

namespace halo {

namespace {

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
    const std::vector<int64_t> shape = parameter_shape(model.config(), name);
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
  model.to(device, dtype);
  return model;
}


namespace {

bool same_directory(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

}  // namespace

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
  save_checkpoint(dir, tensors, options.max_shard_bytes);

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
