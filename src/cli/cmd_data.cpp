// halo data: training data. `halo data prepare` tokenizes a corpus (files, directories, glob
// patterns; plain text or JSONL) into a token directory that training reads (tokens.bin +
// manifest.json, see halo/token_corpus.h). Input paths may follow --input or stand alone.
#include <cstdio>
#include <cstring>
#include <thread>

#include "cli/commands.h"
#include "cli/options.h"
#include "halo/error.h"
#include "halo/token_corpus.h"
#include "halo/tokenizer.h"

namespace halo::cli {
namespace {

int run_data_prepare(int argc, char** argv) {
  cxxopts::Options options(
      "halo data prepare",
      "Tokenize a corpus into DIR/tokens.bin (uint32 ids, each document followed by EOS) and DIR/manifest.json.\n"
      "Example: halo data prepare --tokenizer ./Qwen3-0.6B --input runs/corpus/raw --out runs/corpus/tokens");
  const unsigned cores = std::thread::hardware_concurrency();
  options.add_options()
      ("t,tokenizer", "Tokenizer directory or file (tokenizer.json or a SentencePiece .model)", cxxopts::value<std::string>())
      ("i,input", "Input files, directories (recursed) or glob patterns; repeat or list them after --input",
       cxxopts::value<std::vector<std::string>>())
      ("o,out", "Output directory", cxxopts::value<std::string>())
      ("format", "Input format: auto (.jsonl/.json: jsonl, else text), text or jsonl",
       cxxopts::value<std::string>()->default_value("auto"))
      ("split", "Documents in text files: file (a document per file) or blank-line (per blank-line-separated block)",
       cxxopts::value<std::string>()->default_value("file"))
      ("jsonl-field", "The string field of each JSONL object that holds the text",
       cxxopts::value<std::string>()->default_value("text"))
      ("threads", "Tokenizer threads", cxxopts::value<int>()->default_value(std::to_string(cores > 0 ? cores : 1)))
      ("no-eos", "Do not append EOS after each document");
  options.parse_positional({"input"});
  options.positional_help("[PATHS...]").show_positional_help();
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const std::string tokenizer_path = require_string(result, "tokenizer", "halo data prepare");
  if (!result.count("input")) usage_fail("halo data prepare: give the input paths with --input (see --help)");

  TokenizeCorpusOptions prepare;
  prepare.inputs = result["input"].as<std::vector<std::string>>();
  prepare.out_dir = require_string(result, "out", "halo data prepare");
  prepare.format = parse_input_format(result["format"].as<std::string>());
  prepare.split = parse_text_split(result["split"].as<std::string>());
  prepare.jsonl_field = result["jsonl-field"].as<std::string>();
  prepare.threads = result["threads"].as<int>();
  prepare.append_eos = !result.count("no-eos");
  if (prepare.threads < 1) usage_fail("--threads must be >= 1");

  prepare.tokenizer = fingerprint_tokenizer(tokenizer_path);
  auto tokenizer = load_tokenizer(tokenizer_path);
  const TokenCorpusManifest m = tokenize_corpus(*tokenizer, prepare);
  std::printf("%s: %lld tokens from %lld documents (%lld empty skipped) in %zu files, %lld bytes (%.2f bytes/token)\n",
              prepare.out_dir.c_str(), static_cast<long long>(m.tokens), static_cast<long long>(m.documents),
              static_cast<long long>(m.skipped_documents), m.sources.size(), static_cast<long long>(m.bytes),
              m.tokens > 0 ? static_cast<double>(m.bytes) / m.tokens : 0.0);
  return kExitOk;
}

void print_data_usage() {
  std::printf(
      "halo data: training data\n\n"
      "Usage: halo data prepare --tokenizer DIR --input PATHS... --out DIR [OPTIONS]\n"
      "  prepare  tokenize a corpus into a token file (halo data prepare --help lists the options)\n");
}

}  // namespace

int run_data(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_data_usage();
    return argc < 2 ? kExitUsage : kExitOk;
  }
  if (!std::strcmp(argv[1], "prepare")) return run_data_prepare(argc - 1, argv + 1);
  usage_fail("unknown subcommand '", argv[1], "' (see halo data --help)");
}

}  // namespace halo::cli
