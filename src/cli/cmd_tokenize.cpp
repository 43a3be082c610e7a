// halo tokenize: text -> ids (space-separated, or a JSON array), or ids -> text with --decode.
// The input bytes are used exactly as given (no trailing newline is added or stripped).
#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/tokenizer.h"

namespace halo::cli {
namespace {

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::string cleaned = text;
  for (char& ch : cleaned) {
    if (ch == ',' || ch == '[' || ch == ']') ch = ' ';
  }
  std::istringstream in(cleaned);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < 0 || v > INT32_MAX) usage_fail("--decode: '", word, "' is not a token id");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

}  // namespace

int run_tokenize(int argc, char** argv) {
  cxxopts::Options options("halo tokenize",
                           "Encode text to token ids, or decode ids to text.\n"
                           "Example: halo tokenize --tokenizer ./Qwen3-0.6B --text \"Hello world\"");
  // clang-format off
  options.add_options()
      ("t,tokenizer", "Tokenizer directory or file (tokenizer.json or a SentencePiece .model)", cxxopts::value<std::string>())
      ("text", "Input given on the command line", cxxopts::value<std::string>())
      ("file", "Input read from a file (bytes used exactly)", cxxopts::value<std::string>())
      ("json", "Print ids as a JSON array")
      ("decode", "Read token ids (space/comma separated or a JSON array) and print their text");
  // clang-format on
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const std::string tok_path = require_string(result, "tokenizer", "halo tokenize");
  if (result.count("text") == result.count("file")) usage_fail("halo tokenize: give exactly one of --text or --file");
  const std::string input =
      result.count("text") ? result["text"].as<std::string>() : read_file(result["file"].as<std::string>());
  auto tokenizer = load_tokenizer(tok_path);
  if (result.count("decode")) {
    const std::string text = tokenizer->decode(parse_ids(input));
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    return kExitOk;
  }
  const std::vector<int32_t> ids = tokenizer->encode(input);
  if (result.count("json")) {
    std::printf("%s\n", nlohmann::json(ids).dump().c_str());
  } else {
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
    std::printf("%s\n", line.c_str());
  }
  return kExitOk;
}

}  // namespace halo::cli
