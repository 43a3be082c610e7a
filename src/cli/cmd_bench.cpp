// halo bench: measurements that are not tests. `halo bench tokenizer` times encoding of a text
// file on one thread (the first pass warms the BPE cache; the best of --repeat passes counts);
// `halo bench lightning` times the lightning-attention implementations (median of --repeat).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>

#include "cli/bench_commands.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "halo/device.h"
#include "halo/error.h"
#include "halo/lightning_attention.h"
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

// Median wall time of `repeat` runs of `work` after one warm-up, synchronizing the device.
double median_ms(const std::function<void()>& work, int repeat, const c10::Device& device) {
  std::vector<double> times;
  for (int i = 0; i <= repeat; ++i) {
    synchronize(device);
    auto start = std::chrono::steady_clock::now();
    work();
    synchronize(device);
    if (i > 0) times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

int bench_lightning(int argc, char** argv) {
  cxxopts::Options options("halo bench lightning",
                           "Time the three lightning-attention implementations (forward, and forward+backward with\n"
                           "--backward) over sequence lengths. Example: halo bench lightning --device cpu --lengths 512,2048");
  options.add_options()
      ("impl", "naive, chunked, recurrent or all", cxxopts::value<std::string>()->default_value("all"))
      ("lengths", "Sequence lengths", cxxopts::value<std::string>()->default_value("512,1024,2048,4096,8192"))
      ("batch", "Batch size", cxxopts::value<int64_t>()->default_value("1"))
      ("heads", "Heads", cxxopts::value<int64_t>()->default_value("16"))
      ("head-dim", "Head dimension", cxxopts::value<int64_t>()->default_value("128"))
      ("chunk", "Chunk size of the chunked form", cxxopts::value<int64_t>()->default_value("64"))
      ("dtype", "Input dtype: float32 or bfloat16", cxxopts::value<std::string>()->default_value("float32"))
      ("device", "cpu, cuda or auto", cxxopts::value<std::string>()->default_value("auto"))
      ("backward", "Also time forward+backward")
      ("max-naive-length", "Skip the quadratic form above this length", cxxopts::value<int64_t>()->default_value("8192"))
      ("repeat", "Timed runs per point (median reported)", cxxopts::value<int>()->default_value("3"))
      ("json", "Print the results as JSON lines");
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const c10::Device device = parse_device(result["device"].as<std::string>());
  const c10::ScalarType dtype = parse_compute_dtype(result["dtype"].as<std::string>(), "float32", device);
  const int64_t b = result["batch"].as<int64_t>(), h = result["heads"].as<int64_t>(), d = result["head-dim"].as<int64_t>();
  const int64_t chunk = result["chunk"].as<int64_t>();
  const int repeat = result["repeat"].as<int>();
  const bool backward = result.count("backward") > 0;
  std::vector<LightningImpl> impls;
  const std::string which = result["impl"].as<std::string>();
  if (which == "all") impls = {LightningImpl::naive, LightningImpl::chunked, LightningImpl::recurrent};
  else impls = {parse_lightning_impl(which)};
  const at::Tensor decay = alibi_decays(h).to(device);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  if (!result.count("json")) {
    std::printf("device %s, dtype %s, B=%lld H=%lld D=%lld, chunk %lld, median of %d\n", device.str().c_str(),
                scalar_type_name(dtype), static_cast<long long>(b), static_cast<long long>(h), static_cast<long long>(d),
                static_cast<long long>(chunk), repeat);
    std::printf("%8s  %-10s %12s %14s\n", "T", "impl", "forward ms", backward ? "fwd+bwd ms" : "");
  }
  for (int64_t t : parse_count_list(result["lengths"].as<std::string>(), "--lengths")) {
    auto opts = at::TensorOptions().dtype(dtype).device(device);
    at::Tensor q = at::randn({b, h, t, d}, opts), k = at::randn({b, h, t, d}, opts), v = at::randn({b, h, t, d}, opts);
    for (LightningImpl impl : impls) {
      if (impl == LightningImpl::naive && t > result["max-naive-length"].as<int64_t>()) continue;
      double fwd = 0, both = 0;
      {
        c10::InferenceMode guard;
        fwd = median_ms([&] { lightning_attention(q, k, v, decay, scale, impl, {}, chunk); }, repeat, device);
      }
      if (backward) {
        at::Tensor qg = q.detach().requires_grad_(), kg = k.detach().requires_grad_(), vg = v.detach().requires_grad_();
        both = median_ms([&] {
          lightning_attention(qg, kg, vg, decay, scale, impl, {}, chunk).out.sum().backward();
        }, repeat, device);
      }
      if (result.count("json")) {
        nlohmann::json j = {{"bench", "lightning"}, {"device", device.str()}, {"dtype", scalar_type_name(dtype)},
                            {"B", b}, {"H", h}, {"D", d}, {"T", t}, {"impl", to_string(impl)}, {"chunk", chunk},
                            {"forward_ms", fwd}};
        if (backward) j["forward_backward_ms"] = both;
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%8lld  %-10s %12.3f %14s\n", static_cast<long long>(t), to_string(impl).c_str(), fwd,
                    backward ? fixed(both, 3).c_str() : "");
      }
      std::fflush(stdout);
    }
  }
  return kExitOk;
}

}  // namespace

std::vector<int64_t> parse_count_list(const std::string& text, const std::string& option) {
  std::vector<int64_t> values;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    std::string item = text.substr(start, comma - start);
    int64_t scale = 1;
    if (!item.empty() && (item.back() == 'K' || item.back() == 'k')) scale = 1024, item.pop_back();
    else if (!item.empty() && (item.back() == 'M' || item.back() == 'm')) scale = 1024 * 1024, item.pop_back();
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v <= 0) {
      usage_fail(option, ": '", text.substr(start, comma - start), "' is not a positive count (K = 1024, M = 1048576)");
    }
    values.push_back(v * scale);
    start = comma + 1;
  }
  return values;
}

int run_bench(int argc, char** argv) {
  const std::string what = argc >= 2 ? argv[1] : "";
  if (what == "tokenizer") return bench_tokenizer(argc - 1, argv + 1);
  if (what == "lightning") return bench_lightning(argc - 1, argv + 1);
  if (what == "inference") return bench_inference(argc - 1, argv + 1);
  if (what == "training") return bench_training(argc - 1, argv + 1);
  if (what == "--help" || what == "-h") {
    std::printf("Usage: halo bench WHAT [OPTIONS]   (halo bench WHAT --help for its options)\n\n"
                "  tokenizer   encoding speed of a tokenizer on a text file\n"
                "  lightning   the lightning-attention implementations over sequence lengths\n"
                "  inference   prefill and per-token decode time against context length (real dimensions)\n"
                "  training    tokens/s, MFU and peak memory of HALO training steps (real dimensions)\n");
    return kExitOk;
  }
  usage_fail("halo bench: say what to measure: tokenizer, lightning, inference or training (see halo bench --help)");
}

}  // namespace halo::cli
