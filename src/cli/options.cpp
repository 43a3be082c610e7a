// Shared option handling for the halo subcommands.
#include "cli/options.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "halo/error.h"
#include "halo/logging.h"

namespace halo::cli {

void add_common_options(cxxopts::Options& options) {
  // clang-format off
  options.add_options("Common")
      ("h,help", "Show this help and exit")
      ("log-level", "Log verbosity: debug, info, warn, error or off",
       cxxopts::value<std::string>()->default_value("info"))
      ("q,quiet", "Only print results and errors (same as --log-level error)");
  // clang-format on
}

cxxopts::ParseResult parse_command_line(cxxopts::Options& options, int argc, char** argv) {
  cxxopts::ParseResult result;
  try {
    result = options.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    usage_fail(options.program(), ": ", e.what(), " (see ", options.program(), " --help)");
  }
  if (result.count("help")) {
    std::fputs(options.help().c_str(), stdout);
    std::exit(kExitOk);
  }
  if (!result.unmatched().empty()) {
    usage_fail(options.program(), ": unexpected argument '", result.unmatched().front(), "' (see ", options.program(),
               " --help)");
  }
  log::set_level(result.count("quiet") ? log::Level::error : log::parse_level(result["log-level"].as<std::string>()));
  return result;
}

std::string require_string(const cxxopts::ParseResult& result, const std::string& name, const std::string& command) {
  if (!result.count(name)) usage_fail(command, ": --", name, " is required (see ", command, " --help)");
  return result[name].as<std::string>();
}

void add_document_options(cxxopts::Options& options) {
  // clang-format off
  options.add_options()
      ("format", "Input format: auto (.jsonl/.json: jsonl, else text), text or jsonl",
       cxxopts::value<std::string>()->default_value("auto"))
      ("split", "Documents in text files: file (a document per file) or blank-line (per blank-line-separated block)",
       cxxopts::value<std::string>()->default_value("file"))
      ("jsonl-field", "The string field of each JSONL object that holds the text",
       cxxopts::value<std::string>()->default_value("text"));
  // clang-format on
}

DocumentOptions document_options(const cxxopts::ParseResult& result) {
  DocumentOptions documents;
  documents.format = parse_input_format(result["format"].as<std::string>());
  documents.split = parse_text_split(result["split"].as<std::string>());
  documents.jsonl_field = result["jsonl-field"].as<std::string>();
  return documents;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

}  // namespace halo::cli
