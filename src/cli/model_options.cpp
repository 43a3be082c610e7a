// Loading a model for a subcommand, with timing and a summary line in the log.
#include "cli/model_options.h"

#include <chrono>

#include "cli/options.h"
#include "halo/device.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/logging.h"
#include "halo/model_directory.h"

namespace halo::cli {

void add_model_options(cxxopts::Options& options) {
  // clang-format off
  options.add_options("Model")
      ("m,model", "Model directory (config.json + model.safetensors or shards)", cxxopts::value<std::string>())
      ("dtype", "Compute dtype: float32, bfloat16, float16 or auto (stored dtype on CUDA, float32 on CPU)",
       cxxopts::value<std::string>()->default_value("auto"))
      ("device", "cpu, cuda, cuda:N or auto", cxxopts::value<std::string>()->default_value("auto"));
  // clang-format on
}

CausalLM load_model_from_options(const cxxopts::ParseResult& result, const std::string& command) {
  const std::string dir = require_string(result, "model", command);
  if (!is_directory(dir)) fail(dir, ": not a directory (--model wants a model directory)");
  const ModelConfig config = load_model_config(dir);
  const c10::Device device = parse_device(result["device"].as<std::string>());
  const c10::ScalarType dtype = parse_compute_dtype(result["dtype"].as<std::string>(), config.dtype, device);
  auto start = std::chrono::steady_clock::now();
  CausalLM model = load_causal_lm(dir, dtype, device);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log::info(cat("loaded ", dir, ": ", model.config().model_type, ", ", model.config().num_hidden_layers, " layers, ",
                model.parameter_count(), " parameters, ", scalar_type_name(dtype), " on ", device.str(), " in ",
                fixed(seconds, 2), " s"));
  return model;
}

}  // namespace halo::cli
