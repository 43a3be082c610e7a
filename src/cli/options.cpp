// Shared option handling for the halo subcommands.
#include "cli/options.h"

#include <cstdio>
#include <cstdlib>

#include "halo/error.h"
#include "halo/logging.h"

namespace halo::cli {

void add_common_options(cxxopts::Options& options) {
  options.add_options("Common")
      ("h,help", "Show this help and exit")
      ("log-level", "Log verbosity: debug, info, warn, error or off",
       cxxopts::value<std::string>()->default_value("info"))
      ("q,quiet", "Only print results and errors (same as --log-level error)");
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
    usage_fail(options.program(), ": unexpected argument '", result.unmatched().front(), "' (see ",
               options.program(), " --help)");
  }
  log::set_level(result.count("quiet") ? log::Level::error
                                       : log::parse_level(result["log-level"].as<std::string>()));
  return result;
}

std::string require_string(const cxxopts::ParseResult& result, const std::string& name,
                           const std::string& command) {
  if (!result.count(name)) usage_fail(command, ": --", name, " is required (see ", command, " --help)");
  return result[name].as<std::string>();
}

}  // namespace halo::cli
