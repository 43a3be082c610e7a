// halo tune-scaling: HyPE's logits-scaling a of a HypeNet directory chosen on held-out data past
// the training length (the rule of halo/hype_scaling.h), with the curve written to --out; with
// --apply the directory's config.json is rewritten (atomically) with attn_logits_scaling "hype a".
#include <cstdio>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/options.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/hype_scaling.h"
#include "halo/model_config.h"
#include "halo/model_directory.h"
#include "halo/tokenizer.h"

namespace halo::cli {

int run_tune_scaling(int argc, char** argv) {
  cxxopts::Options options(
      "halo tune-scaling",
      "Choose HyPE's logits-scaling a (s_t = log(t + a) / log(a)) of a HypeNet on held-out data: for each a of\n"
      "the grid, needle-in-a-haystack accuracy and held-out loss at --lengths (past the training length);\n"
      "among the a within --niah-tolerance of the best accuracy, the lowest loss wins. Use text that was\n"
      "neither trained on nor will be reported.\n"
      "Example: halo tune-scaling --model runs/x/finetune/model --text heldout.txt --lengths 8192,16384 \\\n"
      "           --out runs/x/tune --apply");
  add_model_options(options);
  // clang-format off
  options.add_options()
      ("t,tokenizer", "Tokenizer directory or file (default: the model directory)", cxxopts::value<std::string>())
      ("text", "Held-out text for the loss", cxxopts::value<std::string>())
      ("filler", "Filler text for the needle prompts (default: --text)", cxxopts::value<std::string>())
      ("lengths", "Context lengths in tokens", cxxopts::value<std::string>())
      ("grid", "Values of a to try", cxxopts::value<std::string>()->default_value("50,100,200,362,500,700,1000,2000,5000"))
      ("niah-samples", "Needle prompts per length (depths spread evenly)", cxxopts::value<int64_t>()->default_value("20"))
      ("niah-tolerance", "Accuracies this close to the best count as tied", cxxopts::value<double>()->default_value("0.05"))
      ("ppl-tokens", "Tokens of the text scored per length (0: the longest length + 1)",
       cxxopts::value<int64_t>()->default_value("0"))
      ("ppl-tail", "Score the loss over the last N positions of each window only (0: whole windows)",
       cxxopts::value<int64_t>()->default_value("0"))
      ("seed", "Seed of the needle prompts", cxxopts::value<uint64_t>()->default_value("0"))
      ("o,out", "Directory for hype_scaling.{json,md,png}", cxxopts::value<std::string>())
      ("apply", "Write the chosen a into the model directory's config.json");
  // clang-format on
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const std::string model_dir = require_string(result, "model", "halo tune-scaling");
  const std::string text_path = require_string(result, "text", "halo tune-scaling");
  const std::string out = require_string(result, "out", "halo tune-scaling");
  HypeScalingOptions tuning;
  tuning.lengths = parse_numbers<int64_t>(require_string(result, "lengths", "halo tune-scaling"), "lengths");
  tuning.grid = parse_numbers<double>(result["grid"].as<std::string>(), "grid");
  tuning.niah_samples = result["niah-samples"].as<int64_t>();
  tuning.niah_tolerance = result["niah-tolerance"].as<double>();
  tuning.ppl_tokens = result["ppl-tokens"].as<int64_t>();
  tuning.ppl_tail = result["ppl-tail"].as<int64_t>();
  tuning.seed = result["seed"].as<uint64_t>();
  check_hype_scaling_options(tuning);  // before the model loads
  const ModelConfig config = load_model_config(model_dir);
  if (!config.is_hypenet() || !config.attn_logits_scaling_a) {
    fail(model_dir, "/config.json: attn_logits_scaling is not \"hype <a>\"; tune-scaling needs a HypeNet with HyPE");
  }
  const std::string text = read_file(text_path);
  const std::string filler = result.count("filler") ? read_file(result["filler"].as<std::string>()) : text;
  auto tokenizer = load_tokenizer(result.count("tokenizer") ? result["tokenizer"].as<std::string>() : model_dir);
  CausalLM model = load_model_from_options(result, "halo tune-scaling");
  const HypeScalingResult tuned =
      tune_hype_scaling(model, *tokenizer, text, filler, stop_token_ids(model_dir, config, tokenizer.get()), tuning);
  write_hype_scaling_report(out, tuned, tuning);
  std::printf("a = %g (was %g); curve in %s/hype_scaling.md\n", tuned.best_a, *config.attn_logits_scaling_a,
              out.c_str());
  if (result.count("apply")) {
    ModelConfig updated = config;
    updated.attn_logits_scaling_a = tuned.best_a;
    write_file_atomic(join_path(model_dir, "config.json"), model_config_to_json(updated));
    std::printf("wrote attn_logits_scaling \"hype %g\" into %s/config.json\n", tuned.best_a, model_dir.c_str());
  }
  return kExitOk;
}

}  // namespace halo::cli
