// halo info: what a model directory holds, read from config.json and the safetensors headers
// only (no weights are loaded, so it is instant even for 8B checkpoints). Weights that do not
// match config.json (missing, unexpected, misshapen) are an error, as when loading. A GGUF file
// instead gets the summary of its metadata and tensor table (halo/gguf_import.h).
#include <cstdio>
#include <map>
#include <set>

#include "cli/commands.h"
#include "cli/options.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/gguf_import.h"
#include "halo/model_config.h"
#include "halo/safetensors.h"

namespace halo::cli {

int run_info(int argc, char** argv) {
  cxxopts::Options options("halo info",
                           "Describe a model directory: architecture, parameter count, dtype, layers;\n"
                           "or a GGUF file: architecture, sizes, tensor types, tokenizer (halo import reads it).\n"
                           "Example: halo info --model ./Qwen3-1.7B");
  // clang-format off
  options.add_options()("m,model", "Model directory, or a .gguf file", cxxopts::value<std::string>());
  // clang-format on
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const std::string dir = require_string(result, "model", "halo info");
  if (is_regular_file(dir)) {  // a GGUF file (the reader names any other file's defect)
    std::fputs(describe_gguf(dir).c_str(), stdout);
    return kExitOk;
  }
  const ModelConfig c = load_model_config(dir);
  const WeightFiles files(dir);
  check_weights_match_config(files, c);

  std::map<int64_t, int64_t> layer_params;
  std::set<std::string> stored_dtypes;
  int64_t total = 0, bytes = 0;
  for (const auto& [name, entry] : files.entries()) {
    int64_t n = 1;
    for (int64_t d : entry.tensor->shape) n *= d;
    total += n;
    bytes += static_cast<int64_t>(entry.tensor->nbytes);
    stored_dtypes.insert(dtype_name(entry.tensor->dtype));
    const std::string prefix = "model.layers.";
    if (name.rfind(prefix, 0) == 0) layer_params[std::stoll(name.substr(prefix.size()))] += n;
  }
  std::string dtypes;
  for (const auto& d : stored_dtypes) dtypes += (dtypes.empty() ? "" : ", ") + d;

  std::printf("model          %s\n", dir.c_str());
  std::printf("architecture   %s\n", c.model_type.c_str());
  std::printf("weights        %s (%zu tensors, %.1f MB)\n", files.source().c_str(), files.entries().size(),
              bytes / 1e6);
  std::printf("parameters     %lld (%s)\n", static_cast<long long>(total),
              total >= 1e9 ? (fixed(total / 1e9, 2) + " B").c_str() : (fixed(total / 1e6, 2) + " M").c_str());
  std::printf("stored dtype   %s (config: %s)\n", dtypes.c_str(), c.dtype.c_str());
  std::printf("vocab          %lld\n", static_cast<long long>(c.vocab_size));
  std::printf("hidden         %lld, ffn %lld, layers %lld\n", static_cast<long long>(c.hidden_size),
              static_cast<long long>(c.intermediate_size), static_cast<long long>(c.num_hidden_layers));
  std::printf("attention      %lld heads, %lld kv heads, head_dim %lld, rope_theta %g\n",
              static_cast<long long>(c.num_attention_heads), static_cast<long long>(c.num_key_value_heads),
              static_cast<long long>(c.head_dim), c.rope_theta);
  std::printf("embeddings     %s\n", c.tie_word_embeddings ? "tied" : "untied");
  std::printf("max positions  %lld\n\n", static_cast<long long>(c.max_position_embeddings));
  std::printf("%5s  %-15s %10s\n", "layer", "mixer", "params");
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    std::printf("%5lld  %-15s %10lld\n", static_cast<long long>(i), mixer_type_name(c.mixer_types[i]),
                static_cast<long long>(layer_params[i]));
  }
  return kExitOk;
}

}  // namespace halo::cli
