// halo data: training data. `halo data prepare` tokenizes a corpus (files, directories, glob
// patterns; plain text or JSONL) into a token directory that training reads (tokens.bin +
// manifest.json, see halo/token_corpus.h). Input paths may follow --input or stand alone.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/options.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/logging.h"
#include "halo/needle_text.h"
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
  // clang-format off
  options.add_options()
      ("t,tokenizer", "Tokenizer directory or file (tokenizer.json or a SentencePiece .model)", cxxopts::value<std::string>())
      ("i,input", "Input files, directories (recursed) or glob patterns; repeat or list them after --input",
       cxxopts::value<std::vector<std::string>>())
      ("o,out", "Output directory", cxxopts::value<std::string>());
  // clang-format on
  add_document_options(options);
  // clang-format off
  options.add_options()
      ("threads", "Tokenizer threads", cxxopts::value<int>()->default_value(std::to_string(cores > 0 ? cores : 1)))
      ("no-eos", "Do not append EOS after each document");
  // clang-format on
  options.parse_positional({"input"});
  options.positional_help("[PATHS...]").show_positional_help();
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const std::string tokenizer_path = require_string(result, "tokenizer", "halo data prepare");
  if (!result.count("input")) usage_fail("halo data prepare: give the input paths with --input (see --help)");

  TokenizeCorpusOptions prepare;
  prepare.inputs = result["input"].as<std::vector<std::string>>();
  prepare.out_dir = require_string(result, "out", "halo data prepare");
  prepare.documents = document_options(result);
  prepare.threads = result["threads"].as<int>();
  prepare.append_eos = !result.count("no-eos");

  prepare.tokenizer = fingerprint_tokenizer(tokenizer_path);
  auto tokenizer = load_tokenizer(tokenizer_path);
  const TokenCorpusManifest m = tokenize_corpus(*tokenizer, prepare);
  std::printf("%s: %lld tokens from %lld documents (%lld empty skipped) in %zu files, %lld bytes (%.2f bytes/token)\n",
              prepare.out_dir.c_str(), static_cast<long long>(m.tokens), static_cast<long long>(m.documents),
              static_cast<long long>(m.skipped_documents), m.sources.size(), static_cast<long long>(m.bytes),
              m.tokens > 0 ? static_cast<double>(m.bytes) / m.tokens : 0.0);
  return kExitOk;
}

int run_data_retrieval(int argc, char** argv) {
  cxxopts::Options options(
      "halo data retrieval",
      "Write synthetic retrieval documents (JSONL, field \"text\"): real filler sentences with a hidden\n"
      "\"special magic number\" (or several, --needles; each optionally repeated later, --recalls), then the\n"
      "question and its answer for each, in the NIAH evaluation's template.\n"
      "Mixed into a small teacher's pretraining data, they teach it to retrieve in context.\n"
      "Example: halo data retrieval --filler runs/corpus/raw/wordnet --out runs/corpus/raw/retrieval.jsonl");
  // clang-format off
  options.add_options()
      ("filler", "Text or JSONL (field \"text\") files, or directories of them (recursed), whose sentences fill the "
       "documents; repeatable", cxxopts::value<std::vector<std::string>>())
      ("o,out", "Output JSONL file", cxxopts::value<std::string>())
      ("documents", "Number of documents", cxxopts::value<int64_t>()->default_value("2000"))
      ("min-chars", "Shortest filler per document, in characters", cxxopts::value<int64_t>()->default_value("200"))
      ("max-chars", "Longest filler per document, in characters", cxxopts::value<int64_t>()->default_value("2000"))
      ("needles", "Needles per document (distinct keys, 1 to 64), each asked for after the filler",
       cxxopts::value<int64_t>()->default_value("1"))
      ("digit-free-filler", "Leave out filler sentences that hold a digit (the magic numbers are then a document's only digits)")
      ("recalls", "Repeat each needle verbatim this many times (0 to 16) at random sentence boundaries after it "
       "(copy targets at varied distances)", cxxopts::value<int64_t>()->default_value("0"))
      ("repeat-text", "Write each document's text (filler and needles) twice before the questions, so that every "
       "token of the copy can be copied")
      ("scramble-words", "Shuffle each document's filler words (needles intact): with --repeat-text only copying "
       "predicts the copy")
      ("max-filler-mb", "Read at most this much filler text", cxxopts::value<int64_t>()->default_value("20"))
      ("seed", "Seed", cxxopts::value<uint64_t>()->default_value("0"));
  // clang-format on
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  if (!result.count("filler")) usage_fail("halo data retrieval: --filler is required");
  const std::string out = require_string(result, "out", "halo data retrieval");
  const int64_t budget = result["max-filler-mb"].as<int64_t>() * 1000000;
  const std::vector<std::string> files = expand_inputs(result["filler"].as<std::vector<std::string>>());
  std::vector<std::string> sentences;
  int64_t bytes = 0;
  for (const std::string& file : files) {
    if (bytes >= budget) break;
    const std::string text = read_file(file);
    bytes += static_cast<int64_t>(text.size());
    if (file.size() > 6 && file.compare(file.size() - 6, 6, ".jsonl") == 0) {
      std::istringstream lines(text);
      int64_t number = 0;
      for (std::string line; std::getline(lines, line);) {
        ++number;
        if (line.empty()) continue;
        nlohmann::json object;
        try {
          object = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception&) {
          fail(file, ":", number, ": not a JSON object");
        }
        if (!object.is_object() || !object.contains("text") || !object["text"].is_string()) {
          fail(file, ":", number, ": no string field \"text\"");
        }
        for (auto& sentence : split_sentences(object["text"].get<std::string>()))
          sentences.push_back(std::move(sentence));
      }
    } else {
      for (auto& sentence : split_sentences(text)) sentences.push_back(std::move(sentence));
    }
  }
  RetrievalDocumentOptions retrieval;
  retrieval.count = result["documents"].as<int64_t>();
  retrieval.min_chars = result["min-chars"].as<int64_t>();
  retrieval.max_chars = result["max-chars"].as<int64_t>();
  retrieval.needles = result["needles"].as<int64_t>();
  retrieval.digit_free_filler = result.count("digit-free-filler") > 0;
  retrieval.recalls = result["recalls"].as<int64_t>();
  retrieval.repeat_text = result.count("repeat-text") > 0;
  retrieval.scramble_words = result.count("scramble-words") > 0;
  retrieval.seed = result["seed"].as<uint64_t>();
  const auto docs = retrieval_documents(sentences, retrieval);
  std::string jsonl;
  for (const auto& doc : docs) jsonl += nlohmann::json({{"text", doc}}).dump() + "\n";
  write_file_atomic(out, jsonl);
  log::info(cat("wrote ", docs.size(), " retrieval documents (", fixed(jsonl.size() / 1e6, 2), " MB) to ", out,
                " from ", sentences.size(), " filler sentences"));
  return kExitOk;
}

void print_data_usage() {
  std::printf(
      "halo data: training data\n\n"
      "Usage: halo data prepare --tokenizer DIR --input PATHS... --out DIR [OPTIONS]\n"
      "       halo data retrieval --filler PATH --out FILE.jsonl [OPTIONS]\n"
      "  prepare    tokenize a corpus into a token file (halo data prepare --help lists the options)\n"
      "  retrieval  synthetic retrieval documents (needle in filler, question, answer) as JSONL\n");
}

}  // namespace

int run_data(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_data_usage();
    return argc < 2 ? kExitUsage : kExitOk;
  }
  if (!std::strcmp(argv[1], "prepare")) return run_data_prepare(argc - 1, argv + 1);
  if (!std::strcmp(argv[1], "retrieval")) return run_data_retrieval(argc - 1, argv + 1);
  usage_fail("unknown subcommand '", argv[1], "' (see halo data --help)");
}

}  // namespace halo::cli
