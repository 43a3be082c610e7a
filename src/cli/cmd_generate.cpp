// halo generate: stream a continuation of a prompt. Text is decoded from all new ids at each
// step and a character still split across tokens is held back, so multi-byte characters come
// out intact. --prompt-ids/--print-ids work without a tokenizer.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/options.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/generation.h"
#include "halo/logging.h"
#include "halo/model_directory.h"
#include "halo/tokenizer.h"

namespace halo::cli {
namespace {

// How much of the decoded text is safe to print: the decoder turns a character still split
// across tokens into a trailing U+FFFD, which later tokens may complete, so that is held back.
size_t printable_prefix(const std::string& text) {
  static const std::string replacement = "\xEF\xBF\xBD";
  const bool pending = text.size() >= 3 && text.compare(text.size() - 3, 3, replacement) == 0;
  return pending ? text.size() - 3 : text.size();
}

std::vector<int64_t> parse_prompt_ids(const std::string& text) {
  std::vector<int64_t> ids;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    try {
      size_t used = 0;
      ids.push_back(std::stoll(word, &used));
      if (used != word.size()) throw std::invalid_argument(word);
    } catch (const std::exception&) {
      usage_fail("--prompt-ids: '", word, "' is not a token id");
    }
  }
  return ids;
}

}  // namespace

int run_generate(int argc, char** argv) {
  cxxopts::Options options("halo generate",
                           "Generate a continuation of a prompt, streamed as it is produced.\n"
                           "Example: halo generate --model ./Qwen3-0.6B --prompt \"The sky is\" --max-new-tokens 32");
  add_model_options(options);
  // clang-format off
  options.add_options()
      ("p,prompt", "Prompt text", cxxopts::value<std::string>())
      ("prompt-ids", "Prompt as space-separated token ids (no tokenizer needed)", cxxopts::value<std::string>())
      ("prompt-file", "Generate for every line of a file as one left-padded batch; prints JSON lines "
       "{\"prompt\", \"completion\"} (ids with --print-ids)", cxxopts::value<std::string>())
      ("ids-in-file", "The lines of --prompt-file are space-separated token ids, not text")
      ("t,tokenizer", "Tokenizer directory or file (default: the model directory)", cxxopts::value<std::string>())
      ("n,max-new-tokens", "Number of tokens to generate at most", cxxopts::value<int64_t>()->default_value("64"))
      ("temperature", "Sampling temperature; 0 means greedy", cxxopts::value<double>()->default_value("0"))
      ("top-p", "Nucleus sampling: keep the most likely tokens up to this probability mass",
       cxxopts::value<double>()->default_value("1"))
      ("seed", "Random seed for sampling", cxxopts::value<uint64_t>()->default_value("0"))
      ("print-ids", "Print the generated token ids instead of text")
      ("ignore-eos", "Do not stop at end-of-sequence tokens")
      ("no-cuda-graph", "Run each decode step eagerly instead of replaying one CUDA graph (for comparison)");
  // clang-format on
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  if (result.count("prompt") + result.count("prompt-ids") + result.count("prompt-file") != 1) {
    usage_fail("halo generate: give exactly one of --prompt, --prompt-ids or --prompt-file");
  }
  const std::string model_dir = require_string(result, "model", "halo generate");
  const bool print_ids = result.count("print-ids") > 0;
  std::unique_ptr<Tokenizer> tokenizer;
  const bool ids_given = result.count("prompt-ids") || result.count("ids-in-file");
  if (!ids_given || !print_ids) {
    tokenizer = load_tokenizer(result.count("tokenizer") ? result["tokenizer"].as<std::string>() : model_dir);
  }
  CausalLM model = load_model_from_options(result, "halo generate");

  std::vector<int64_t> prompt;
  std::vector<std::vector<int64_t>> batch;
  std::vector<std::string> batch_text;
  if (result.count("prompt-file")) {
    std::istringstream lines(read_file(result["prompt-file"].as<std::string>()));
    for (std::string line; std::getline(lines, line);) {
      if (line.empty()) continue;
      std::vector<int64_t> ids;
      if (result.count("ids-in-file"))
        ids = parse_prompt_ids(line);
      else
        for (int32_t id : tokenizer->encode(line)) ids.push_back(id);
      batch.push_back(ids);
      batch_text.push_back(line);
    }
    if (batch.empty()) usage_fail(result["prompt-file"].as<std::string>(), ": no prompts (one per non-empty line)");
  } else if (result.count("prompt")) {
    for (int32_t id : tokenizer->encode(result["prompt"].as<std::string>())) prompt.push_back(id);
  } else {
    prompt = parse_prompt_ids(result["prompt-ids"].as<std::string>());
  }
  for (const auto& ids : batch.empty() ? std::vector<std::vector<int64_t>>{prompt} : batch) {
    for (int64_t id : ids) {
      if (id < 0 || id >= model.config().vocab_size) {
        usage_fail("prompt token id ", id, " is outside the model's vocabulary of ", model.config().vocab_size);
      }
    }
  }

  GenerationOptions gen;
  gen.max_new_tokens = result["max-new-tokens"].as<int64_t>();
  if (gen.max_new_tokens < 0) usage_fail("--max-new-tokens must be >= 0");
  size_t longest = prompt.size();
  for (const auto& p : batch) longest = std::max(longest, p.size());
  const int64_t positions = model.config().max_position_embeddings;
  if (gen.max_new_tokens > positions - static_cast<int64_t>(longest)) {
    usage_fail("--max-new-tokens ", gen.max_new_tokens, " after a prompt of ", longest,
               " tokens passes the model's max_position_embeddings (", positions, "); ask for at most ",
               std::max<int64_t>(positions - static_cast<int64_t>(longest), 0));
  }
  gen.sampling.temperature = result["temperature"].as<double>();
  gen.sampling.top_p = result["top-p"].as<double>();
  gen.sampling.seed = result["seed"].as<uint64_t>();
  gen.cuda_graph = result.count("no-cuda-graph") == 0;
  if (!result.count("ignore-eos")) {
    gen.stop_ids = stop_token_ids(model_dir, model.config(), tokenizer.get());
  }

  if (!batch.empty()) {
    GenerationStats stats;
    const auto outputs = generate_batch(model, batch, gen, {}, &stats);
    for (size_t r = 0; r < outputs.size(); ++r) {
      nlohmann::json line = {{"prompt", batch_text[r]}};
      if (print_ids || !tokenizer)
        line["completion"] = outputs[r];
      else
        line["completion"] = tokenizer->decode(std::vector<int32_t>(outputs[r].begin(), outputs[r].end()));
      std::printf("%s\n", line.dump().c_str());
    }
    log::info(cat(batch.size(), " prompts, ", stats.new_tokens, " new tokens in ",
                  fixed(stats.prefill_seconds + stats.decode_seconds, 3), " s"));
    return kExitOk;
  }

  std::vector<int32_t> new_ids;
  size_t printed = 0;
  auto on_token = [&](int64_t id) {
    if (print_ids) {
      std::printf("%s%lld", new_ids.empty() ? "" : " ", static_cast<long long>(id));
      new_ids.push_back(static_cast<int32_t>(id));
    } else {
      new_ids.push_back(static_cast<int32_t>(id));
      const std::string text = tokenizer->decode(new_ids);
      const size_t ready = printable_prefix(text);
      if (ready > printed) {
        std::fwrite(text.data() + printed, 1, ready - printed, stdout);
        printed = ready;
      }
    }
    std::fflush(stdout);
    return true;
  };
  GenerationStats stats;
  if (gen.max_new_tokens > 0) generate(model, prompt, gen, on_token, &stats);
  if (!print_ids) {
    const std::string text = tokenizer->decode(new_ids);
    if (text.size() > printed) std::fwrite(text.data() + printed, 1, text.size() - printed, stdout);
  }
  std::printf("\n");
  std::fflush(stdout);
  log::info(cat("prompt ", stats.prompt_tokens, " tokens in ", fixed(stats.prefill_seconds, 3), " s; ",
                stats.new_tokens, " new tokens in ", fixed(stats.decode_seconds, 3), " s (",
                fixed(stats.steps_per_second(), 1), " tokens/s after the first)"));
  return kExitOk;
}

}  // namespace halo::cli
