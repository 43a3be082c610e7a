// What every halo subcommand shares: --help, --log-level and --quiet, parsing that turns any
// command-line mistake into a usage error (exit code 2), and required-option checks; and the
// options of the commands that read documents (halo data prepare, halo tokenizer train).
#pragma once
#include <cxxopts.hpp>

#include <string>
#include <type_traits>
#include <vector>

#include "halo/document_reader.h"
#include "halo/error.h"

namespace halo::cli {

// Adds --help, --log-level and --quiet to a subcommand's options.
void add_common_options(cxxopts::Options& options);

// Parses argv; prints help and exits 0 on --help; applies the logging options.
cxxopts::ParseResult parse_command_line(cxxopts::Options& options, int argc, char** argv);

// The value of a required option, or a usage error naming it and the command's --help.
std::string require_string(const cxxopts::ParseResult& result, const std::string& name, const std::string& command);

// The non-empty items of a comma-separated list.
std::vector<std::string> split_list(const std::string& text);

// A comma-separated list of numbers for --`option` ("512,2048"); usage errors name the option.
template <class T>
std::vector<T> parse_numbers(const std::string& text, const char* option) {
  std::vector<T> values;
  for (const auto& item : split_list(text)) {
    size_t used = 0;
    T value{};
    try {
      if constexpr (std::is_integral_v<T>) {
        value = static_cast<T>(std::stoll(item, &used));
      } else {
        value = static_cast<T>(std::stod(item, &used));
      }
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size()) usage_fail("--", option, ": '", item, "' is not a number");
    values.push_back(value);
  }
  if (values.empty()) usage_fail("--", option, " is empty");
  return values;
}

// Adds --format, --split and --jsonl-field: how input files are read as documents.
void add_document_options(cxxopts::Options& options);
// Their values (usage errors for unknown names).
DocumentOptions document_options(const cxxopts::ParseResult& result);

}  // namespace halo::cli
