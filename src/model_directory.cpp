// save_model_directory: weights via save_checkpoint (atomic, sharded), side files copied
// atomically, config.json last with the stored dtype recorded.
#include "halo/model_directory.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "halo/causal_lm.h"
#include "halo/device.h"
#include "halo/error.h"
#include "halo/tensor_io.h"

namespace halo {

namespace fs = std::filesystem;

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
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, ": cannot create directory (", ec.message(), ")");
  NamedTensors tensors;
  for (auto& [name, tensor] : model.named_parameters()) tensors.emplace_back(name, tensor->to(options.dtype));
  save_checkpoint(dir, tensors, options.max_shard_bytes);

  bool has_generation_config = false;
  if (!options.tokenizer_source.empty()) {
    for (const char* file : {"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
                             "vocab.json", "merges.txt", "added_tokens.json", "generation_config.json"}) {
      const fs::path from = fs::path(options.tokenizer_source) / file;
      if (!fs::exists(from) || fs::equivalent(from.parent_path(), fs::path(dir))) continue;
      write_file_atomic((fs::path(dir) / file).string(), read_file(from.string()));
      has_generation_config |= std::string(file) == "generation_config.json";
    }
  }
  ModelConfig config = model.config();
  config.dtype = scalar_type_name(options.dtype);
  if (!has_generation_config) {
    nlohmann::json g = {{"_from_model_config", true}};
    if (!config.eos_token_ids.empty()) g["eos_token_id"] = config.eos_token_ids;
    write_file_atomic((fs::path(dir) / "generation_config.json").string(), g.dump(2) + "\n");
  }
  write_file_atomic((fs::path(dir) / "config.json").string(), model_config_to_json(config));
}

}  // namespace halo
