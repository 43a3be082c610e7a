// halo import: a GGUF file (llama.cpp's format) -> a Hugging Face model directory that every
// halo command reads (halo/gguf_import.h). The input may follow --gguf or stand alone.
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "halo/error.h"
#include "halo/gguf_import.h"

namespace halo::cli {

int run_import(int argc, char** argv) {
  cxxopts::Options options(
      "halo import",
      "Import a GGUF model (architectures llama, qwen2, qwen3; any quantization halo dequantizes:\n"
      "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, Q8_K) into a Hugging Face directory:\n"
      "config.json, model.safetensors, tokenizer.json (byte-level BPE only), tokenizer_config.json,\n"
      "special_tokens_map.json, generation_config.json and halo_import.json. Weights are dequantized to\n"
      "float32 and written as --dtype; llama's q/k rows are put back in transformers' order. The\n"
      "directory is written beside DIR and renamed into place, so a failure leaves DIR as it was; an\n"
      "existing non-empty DIR is refused, unless it is an earlier import and --force is given.\n"
      "Example: halo import SmolLM2-135M-Instruct.Q4_1.gguf --out runs/teachers/smollm2-135m");
  // clang-format off
  options.add_options()
      ("gguf", "The GGUF file", cxxopts::value<std::string>())
      ("o,out", "Output directory", cxxopts::value<std::string>())
      ("dtype", "Stored weight dtype: float32 (exactly the dequantized weights) or bfloat16 (half the size)",
       cxxopts::value<std::string>()->default_value("float32"))
      ("threads", "Dequantization threads (0: all cores, at most 16)", cxxopts::value<int>()->default_value("0"))
      ("force", "Replace DIR when it holds an earlier halo import");
  // clang-format on
  options.parse_positional({"gguf"});
  options.positional_help("FILE.gguf").show_positional_help();
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const char* command = "halo import";
  if (!result.count("gguf")) usage_fail(command, ": give the GGUF file (halo import FILE.gguf --out DIR; see --help)");
  const std::string gguf = result["gguf"].as<std::string>();
  const std::string out_dir = require_string(result, "out", command);

  GgufImportOptions import;
  import.dtype = result["dtype"].as<std::string>();
  import.threads = result["threads"].as<int>();
  import.overwrite = result.count("force") > 0;
  const auto start = std::chrono::steady_clock::now();
  const GgufImportResult imported = import_gguf(gguf, out_dir, import);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s: %s, %lld tensors, %.2f M parameters%s, %.1f MB of %s weights; %.1f s\n", out_dir.c_str(),
              imported.architecture.c_str(), static_cast<long long>(imported.tensors), imported.parameters / 1e6,
              imported.tied_embeddings ? " (tied embeddings)" : "", imported.bytes / 1e6, import.dtype.c_str(),
              seconds);
  return kExitOk;
}

}  // namespace halo::cli
