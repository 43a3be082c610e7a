// halo bench: measurements that are not tests. `halo bench tokenizer` times encoding of a text
// file on one thread (the first pass warms the BPE cache; the best of --repeat passes counts).
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/tokenizer.h"

namespace halo::cli {
namespace {

int bench_tokenizer(int argc, char** argv) {
  cxxopts::Options options("halo bench tokenizer", "Encoding speed of a tokenizer on a text file, one thread.\n"
                                                   "Example: halo bench tokenizer --tokenizer ./Qwen3-0.6B --file brown.txt");
  options.add_options()
      ("t,tokenizer", "Tokenizer directory or file", cxxopts::value<std::string>())
      ("file", "Text file to encode", cxxopts::value<std::string>())
      ("repeat", "Timed passes (the best counts)", cxxopts::value<int>()->default_value("3"))
      ("json", "Print the result as JSON");
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const std::string tok_path = require_string(result, "tokenizer", "halo bench tokenizer");
  const std::string file = require_string(result, "file", "halo bench tokenizer");
  const int repeat = result["repeat"].as<int>();
  if (repeat < 1) usage_fail("--repeat must be >= 1");
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  auto tokenizer = load_tokenizer(tok_path);
  const double load_s = std::chrono::duration<double>(clock::now() - t0).count();
  const std::string text = read_file(file);
  double cold_s = 0, best_s = 1e30;
  size_t tokens = 0;
  for (int pass = 0; pass <= repeat; ++pass) {
    auto start = clock::now();
    tokens = tokenizer->encode(text).size();
    const double s = std::chrono::duration<double>(clock::now() - start).count();
    if (pass == 0) cold_s = s;
    else best_s = std::min(best_s, s);
  }
  const double mb = text.size() / 1e6;
  if (result.count("json")) {
    nlohmann::json j = {{"file", file}, {"bytes", text.size()}, {"tokens", tokens}, {"load_s", load_s},
                        {"cold_mb_per_s", mb / cold_s}, {"warm_mb_per_s", mb / best_s}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s: %.2f MB -> %zu tokens; load %.3f s; first pass %.2f MB/s, cached %.2f MB/s (one thread)\n",
                file.c_str(), mb, tokens, load_s, mb / cold_s, mb / best_s);
  }
  return kExitOk;
}

}  // namespace

int run_bench(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "tokenizer") return bench_tokenizer(argc - 1, argv + 1);
  if (argc >= 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::printf("Usage: halo bench WHAT [OPTIONS]\n\n  tokenizer   encoding speed of a tokenizer on a text file\n");
    return kExitOk;
  }
  usage_fail("halo bench: say what to measure: tokenizer (see halo bench --help)");
}

}  // namespace halo::cli
