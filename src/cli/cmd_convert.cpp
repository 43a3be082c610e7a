// halo convert: stage 0 of HALO. Loads a Qwen3 teacher, builds the HypeNet (kept attention
// layers from --attn-layers or a released preset), and writes a Hugging Face-format directory
// with the teacher's tokenizer files.
#include <cmath>
#include <cstdlib>

#include "cli/commands.h"
#include "cli/options.h"
#include "halo/causal_lm.h"
#include "halo/device.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/hypenet_conversion.h"
#include "halo/logging.h"
#include "halo/model_directory.h"

namespace halo::cli {

int run_convert(int argc, char** argv) {
  cxxopts::Options options(
      "halo convert",
      "Stage 0 of HALO: build a HypeNet from a Qwen3, Llama or Qwen2 checkpoint by weight transfer (no training).\n"
      "Kept attention layers lose RoPE and gain an output gate; the others become lightning attention.\n"
      "Example: halo convert --teacher ./Qwen3-1.7B --out ./hypenet-2b-stage0 --preset hypenet-2b");
  // clang-format off
  options.add_options()
      ("teacher", "Teacher model directory (Qwen3, Llama or Qwen2)", cxxopts::value<std::string>())
      ("o,out", "Output directory (Hugging Face format)", cxxopts::value<std::string>())
      ("attn-layers", "Comma-separated 0-based layers that stay softmax attention, e.g. 2,3,6", cxxopts::value<std::string>())
      ("preset", "Released layer choice: hypenet-2b (Qwen3-1.7B), hypenet-5b (Qwen3-4B), hypenet-9b (Qwen3-8B)",
       cxxopts::value<std::string>())
      ("attn-logits-scaling", "HyPE scaling of attention layers: none, a number, \"hype\" or \"hype <a>\"",
       cxxopts::value<std::string>()->default_value("none"))
      ("no-output-gate", "Do not add the output gate to attention layers")
      ("dtype", "Stored dtype: auto (the teacher's), float32, bfloat16 or float16", cxxopts::value<std::string>()->default_value("auto"))
      ("max-shard-size", "Shard the weights above this size (e.g. 5GB; 0: never)", cxxopts::value<std::string>()->default_value("5GB"))
      ("seed", "Seed for the new weights (z_proj, o_gate)", cxxopts::value<uint64_t>()->default_value("0"));
  // clang-format on
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const std::string teacher_dir = require_string(result, "teacher", "halo convert");
  const std::string out_dir = require_string(result, "out", "halo convert");
  if (result.count("attn-layers") == result.count("preset")) {
    usage_fail("halo convert: give exactly one of --attn-layers or --preset");
  }
  if (is_directory(out_dir) && canonical_path(out_dir) == canonical_path(teacher_dir)) {
    usage_fail("halo convert: --out is the teacher's directory (", teacher_dir,
               "); writing there would overwrite the teacher: choose another --out");
  }
  const ModelConfig teacher_config = load_model_config(teacher_dir);
  const std::vector<int64_t> layers =
      result.count("preset")
          ? preset_attention_layers(result["preset"].as<std::string>(), teacher_config)
          : parse_layer_list(result["attn-layers"].as<std::string>(), teacher_config.num_hidden_layers);
  ModelConfig student_config = hypenet_config(teacher_config, layers);
  student_config.attn_use_output_gate = result.count("no-output-gate") == 0;
  const std::string scaling = result["attn-logits-scaling"].as<std::string>();
  if (scaling != "none") {
    char* end = nullptr;
    const double constant = std::strtod(scaling.c_str(), &end);
    if (end != scaling.c_str() && *end == '\0') {
      if (!std::isfinite(constant) || constant <= 0) {
        usage_fail("--attn-logits-scaling: a constant must be a positive finite number, got '", scaling, "'");
      }
      student_config.attn_logits_scaling_const = constant;
    } else {
      try {
        parse_attn_logits_scaling(scaling, student_config, "--attn-logits-scaling");
      } catch (const Error& e) {
        usage_fail(e.what());  // a command-line value: exit 2
      }
    }
  }
  SaveOptions save;
  save.dtype = parse_compute_dtype(
      result["dtype"].as<std::string>() == "auto" ? teacher_config.dtype : result["dtype"].as<std::string>(),
      teacher_config.dtype, c10::Device(c10::kCPU));
  save.max_shard_bytes = parse_byte_size(result["max-shard-size"].as<std::string>(), "--max-shard-size");
  save.tokenizer_source = teacher_dir;

  // Stage 0 only copies: the teacher stays in its stored dtype (half the memory of float32).
  const c10::ScalarType stored =
      parse_compute_dtype(teacher_config.dtype, teacher_config.dtype, c10::Device(c10::kCPU));
  CausalLM teacher = load_causal_lm(teacher_dir, stored, c10::Device(c10::kCPU));
  CausalLM student = convert_to_hypenet(teacher, student_config, result["seed"].as<uint64_t>());
  save_model_directory(student, out_dir, save);
  std::string kept;
  for (int64_t l : layers) kept += (kept.empty() ? "" : ",") + std::to_string(l);
  log::info(cat("wrote ", out_dir, ": HypeNet with ", layers.size(), " attention layers (", kept, ") of ",
                teacher_config.num_hidden_layers, ", ", student.parameter_count(), " parameters"));
  return kExitOk;
}

}  // namespace halo::cli
