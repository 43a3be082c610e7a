// halo ppl: perplexity of a text file under a model, with a progress bar.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/options.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/logging.h"
#include "halo/perplexity.h"
#include "halo/progress.h"
#include "halo/tokenizer.h"

namespace halo::cli {

int run_ppl(int argc, char** argv) {
  cxxopts::Options options("halo ppl",
                           "Perplexity of a text file (sliding windows of --context tokens, advancing by --stride).\n"
                           "Example: halo ppl --model ./Qwen3-0.6B --text brown.txt --context 2048");
  add_model_options(options);
  // clang-format off
  options.add_options()
      ("text", "Text file to score", cxxopts::value<std::string>())
      ("t,tokenizer", "Tokenizer directory or file (default: the model directory)", cxxopts::value<std::string>())
      ("context", "Window length in tokens", cxxopts::value<int64_t>()->default_value("2048"))
      ("stride", "Window advance in tokens (default: the context, i.e. disjoint windows)", cxxopts::value<int64_t>())
      ("max-tokens", "Score only the first N tokens of the file (0: all)", cxxopts::value<int64_t>()->default_value("0"))
      ("json", "Print the result as JSON");
  // clang-format on
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const std::string text_path = require_string(result, "text", "halo ppl");
  const std::string model_dir = require_string(result, "model", "halo ppl");
  const int64_t context = result["context"].as<int64_t>();
  const int64_t stride = result.count("stride") ? result["stride"].as<int64_t>() : context;
  const int64_t max_tokens = result["max-tokens"].as<int64_t>();
  if (max_tokens < 0) usage_fail("--max-tokens must be >= 0");

  auto tokenizer = load_tokenizer(result.count("tokenizer") ? result["tokenizer"].as<std::string>() : model_dir);
  const std::string text = read_file(text_path);
  auto start = std::chrono::steady_clock::now();
  std::vector<int32_t> ids = tokenizer->encode(text);
  log::info(cat("tokenized ", text_path, ": ", text.size(), " bytes -> ", ids.size(), " tokens in ",
                fixed(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2), " s"));
  if (max_tokens > 0 && static_cast<int64_t>(ids.size()) > max_tokens) ids.resize(max_tokens);

  CausalLM model = load_model_from_options(result, "halo ppl");
  const int32_t max_id = ids.empty() ? 0 : *std::max_element(ids.begin(), ids.end());
  if (max_id >= model.config().vocab_size) {
    fail("the tokenizer produced id ", max_id, " but the model's vocabulary has ", model.config().vocab_size,
         " entries: tokenizer and model do not match (see --tokenizer)");
  }
  ProgressBar bar("ppl", static_cast<int64_t>(ids.size()) - 1, "tok");
  int64_t shown = 0;
  PerplexityResult r = perplexity(model, ids, context, stride, [&](int64_t scored) {
    bar.advance(scored - shown);
    shown = scored;
  });
  bar.finish();
  if (result.count("json")) {
    nlohmann::json j = {{"text", text_path},   {"tokens", r.tokens},
                        {"nll", r.mean_nll()}, {"perplexity", r.perplexity()},
                        {"context", context},  {"stride", stride}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("perplexity %.4f (mean nll %.5f nats over %lld tokens; context %lld, stride %lld)\n", r.perplexity(),
                r.mean_nll(), static_cast<long long>(r.tokens), static_cast<long long>(context),
                static_cast<long long>(stride));
  }
  return kExitOk;
}

}  // namespace halo::cli
