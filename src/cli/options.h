// What every halo subcommand shares: --help, --log-level and --quiet, parsing that turns any
// command-line mistake into a usage error (exit code 2), and required-option checks; and the
// options of the commands that read documents (halo data prepare, halo tokenizer train).
#pragma once
#include <cxxopts.hpp>

#include <string>

#include "halo/document_reader.h"

namespace halo::cli {

// Adds --help, --log-level and --quiet to a subcommand's options.
void add_common_options(cxxopts::Options& options);

// Parses argv; prints help and exits 0 on --help; applies the logging options.
cxxopts::ParseResult parse_command_line(cxxopts::Options& options, int argc, char** argv);

// The value of a required option, or a usage error naming it and the command's --help.
std::string require_string(const cxxopts::ParseResult& result, const std::string& name,
                           const std::string& command);

// Adds --format, --split and --jsonl-field: how input files are read as documents.
void add_document_options(cxxopts::Options& options);
// Their values (usage errors for unknown names).
DocumentOptions document_options(const cxxopts::ParseResult& result);

}  // namespace halo::cli
