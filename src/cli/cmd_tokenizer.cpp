// halo tokenizer: making tokenizers. `halo tokenizer train` learns a byte-level BPE vocabulary
// from text (halo/bpe_trainer.h) and writes tokenizer.json + tokenizer_config.json, for a model
// smaller than Qwen3's 151,936-token vocabulary would suit. It reads its inputs as halo data
// prepare does (--format, --split, --jsonl-field). Input paths may follow --input or stand alone.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "cli/commands.h"
#include "cli/options.h"
#include "halo/bpe_trainer.h"
#include "halo/error.h"

namespace halo::cli {
namespace {

int run_tokenizer_train(int argc, char** argv) {
  cxxopts::Options options(
      "halo tokenizer train",
      "Train a byte-level BPE tokenizer (Qwen3's normalizer and pre-tokenizer, a vocabulary of your size) and write\n"
      "DIR/tokenizer.json and DIR/tokenizer_config.json (eos_token: the first special token).\n"
      "Example: halo tokenizer train --input runs/corpus/raw --vocab-size 4096 --out runs/tokenizer");
  const unsigned cores = std::thread::hardware_concurrency();
  // clang-format off
  options.add_options()
      ("i,input", "Input files, directories (recursed) or glob patterns of UTF-8 text; repeat or list them after --input",
       cxxopts::value<std::vector<std::string>>())
      ("vocab-size", "Vocabulary size: 256 byte tokens + merges + special tokens", cxxopts::value<int32_t>())
      ("o,out", "Output directory", cxxopts::value<std::string>());
  // clang-format on
  add_document_options(options);
  // clang-format off
  options.add_options()
      ("min-frequency", "Never merge a pair seen fewer times", cxxopts::value<int64_t>()->default_value("2"))
      ("special", "Special tokens, comma-separated (\"\" for none); the first is EOS",
       cxxopts::value<std::vector<std::string>>()->default_value("<|endoftext|>,<|im_start|>,<|im_end|>"))
      ("max-mb", "Read at most this many MB (10^6 bytes) of text; 0: all", cxxopts::value<double>()->default_value("0"))
      ("threads", "Threads that pre-tokenize and count (the result does not depend on it)",
       cxxopts::value<int>()->default_value(std::to_string(cores > 0 ? cores : 1)));
  // clang-format on
  options.parse_positional({"input"});
  options.positional_help("[PATHS...]").show_positional_help();
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const char* command = "halo tokenizer train";
  if (!result.count("input")) usage_fail(command, ": give the input paths with --input (see --help)");
  if (!result.count("vocab-size")) usage_fail(command, ": --vocab-size is required (see --help)");
  const std::string out_dir = require_string(result, "out", command);
  const double max_mb = result["max-mb"].as<double>();
  if (!(max_mb >= 0)) usage_fail("--max-mb must be >= 0");

  BpeTrainerOptions trainer;
  trainer.vocab_size = result["vocab-size"].as<int32_t>();
  trainer.min_frequency = result["min-frequency"].as<int64_t>();
  trainer.special_tokens.clear();
  for (const auto& special : result["special"].as<std::vector<std::string>>()) {
    if (!special.empty()) trainer.special_tokens.push_back(special);
  }
  trainer.documents = document_options(result);
  trainer.max_bytes = static_cast<int64_t>(max_mb * 1e6);
  trainer.threads = result["threads"].as<int>();

  const auto start = std::chrono::steady_clock::now();
  const BpeTrainingResult trained = train_bpe(result["input"].as<std::vector<std::string>>(), trainer);
  write_tokenizer_json(out_dir, trained);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "%s: vocab %d (256 bytes + %zu merged + %zu special), %zu merges; %.2f MB of text from %lld files, "
      "%.2f bytes/token on it; %.1f s\n",
      out_dir.c_str(), trained.vocab_size(), trained.tokens.size() - 256, trained.special_tokens.size(),
      trained.merges.size(), trained.text_bytes / 1e6, static_cast<long long>(trained.files),
      trained.piece_tokens > 0 ? static_cast<double>(trained.piece_bytes) / trained.piece_tokens : 0.0, seconds);
  return kExitOk;
}

void print_tokenizer_usage() {
  std::printf(
      "halo tokenizer: make a tokenizer\n\n"
      "Usage: halo tokenizer train --input PATHS... --vocab-size N --out DIR [OPTIONS]\n"
      "  train  learn a byte-level BPE vocabulary from text (halo tokenizer train --help lists the options)\n");
}

}  // namespace

int run_tokenizer(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_tokenizer_usage();
    return argc < 2 ? kExitUsage : kExitOk;
  }
  if (!std::strcmp(argv[1], "train")) return run_tokenizer_train(argc - 1, argv + 1);
  usage_fail("unknown subcommand '", argv[1], "' (see halo tokenizer --help)");
}

}  // namespace halo::cli
