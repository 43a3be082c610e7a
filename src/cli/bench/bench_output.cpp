// --out / --append handling and the device name for benchmark reports.
#include "cli/bench/bench_output.h"

#include <ATen/Context.h>
#include <ATen/cuda/CUDAContext.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "halo/error.h"

namespace halo::cli {

// Larger counts overflow the products the benchmarks form from them; none fits a GPU anyway.
constexpr int64_t kMaxCount = int64_t{1} << 34;

std::vector<int64_t> parse_count_list(const std::string& text, const std::string& option) {
  std::vector<int64_t> values;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    std::string item = text.substr(start, comma - start);
    int64_t scale = 1;
    if (!item.empty() && (item.back() == 'K' || item.back() == 'k'))
      scale = 1024, item.pop_back();
    else if (!item.empty() && (item.back() == 'M' || item.back() == 'm'))
      scale = 1024 * 1024, item.pop_back();
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v <= 0) {
      usage_fail(option, ": '", text.substr(start, comma - start), "' is not a positive count (K = 1024, M = 1048576)");
    }
    if (v > kMaxCount / scale) {
      usage_fail(option, ": '", text.substr(start, comma - start), "' is beyond ", kMaxCount, " (a typo?)");
    }
    values.push_back(v * scale);
    start = comma + 1;
  }
  return values;
}

std::string device_name(const c10::Device& device) {
  if (device.is_cuda() && at::hasCUDA()) return at::cuda::getDeviceProperties(device.index())->name;
  return device.str();
}

void add_output_options(cxxopts::Options& options) {
  // clang-format off
  options.add_options()
      ("out", "Also write PREFIX.json (rows), PREFIX.md (table) and PREFIX.png (chart)", cxxopts::value<std::string>())
      ("append", "With --out: keep the rows already in PREFIX.json and add this run's");
  // clang-format on
}

BenchOutput::BenchOutput(const cxxopts::ParseResult& result, const c10::Device& device, int argc, char** argv,
                         BenchReport report, std::function<RgbImage(const nlohmann::json& rows)> chart)
    : device_name_(device_name(device)), report_(std::move(report)), chart_(std::move(chart)) {
  if (result.count("out")) prefix_ = result["out"].as<std::string>();
  if (result.count("append") && prefix_.empty()) usage_fail("--append needs --out PREFIX");
  command_ = "halo bench";
  for (int i = 0; i < argc; ++i) command_ += std::string(" ") + argv[i];
  report_.rows = result.count("append") ? read_bench_rows(prefix_) : nlohmann::json::array();
}

void BenchOutput::add(nlohmann::json& row) {
  stamp_bench_row(row, device_name_, command_);
  if (prefix_.empty()) return;
  report_.rows.push_back(row);
  write_bench_report(prefix_, report_, chart_(report_.rows));
}

}  // namespace halo::cli
