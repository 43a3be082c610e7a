// Loading and writing a Hugging Face-format model directory. Loading checks every tensor's name
// and shape against config.json. Writing gives a directory that Python users can load: config.json,
// model.safetensors (sharded with model.safetensors.index.json above a size), the tokenizer
// files and generation_config.json copied from a source directory. Weights are written first
// and config.json last, each file atomically, so a directory with a config.json is complete.
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

namespace halo {

class CausalLM;
class Tokenizer;
struct ModelConfig;

struct SaveOptions {
  c10::ScalarType dtype = c10::kBFloat16;    // dtype of the stored weights
  uint64_t max_shard_bytes = 5'000'000'000;  // 0: never shard
  std::string tokenizer_source;              // directory whose tokenizer files are copied ("" = none)
};

// Reads config.json and the weights of a Qwen3 or HypeNet directory, checks every tensor's
// name and shape, and returns the model in `dtype` on `device`.
CausalLM load_causal_lm(const std::string& model_dir, c10::ScalarType dtype, const c10::Device& device);

// The token ids that end a generation from this model, one rule for every command and stage:
// config.json's eos ids, generation_config.json's (when the directory has one) and the
// tokenizer's EOS (when given and defined), sorted, without duplicates.
std::vector<int64_t> stop_token_ids(const std::string& model_dir, const ModelConfig& config,
                                    const Tokenizer* tokenizer);

void save_model_directory(CausalLM& model, const std::string& dir, const SaveOptions& options);

// "5GB", "500MB", "123" (bytes) -> bytes; fails with a usage error naming `option`.
uint64_t parse_byte_size(const std::string& text, const std::string& option);

}  // namespace halo
