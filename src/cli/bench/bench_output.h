// What the `halo bench` measurements share: --out PREFIX / --append (rows written as
// PREFIX.json, PREFIX.md and PREFIX.png after every row, so an interrupted sweep keeps what it
// measured; halo/bench_report.h), the device's name, and count lists such as "512,4K,1M".
#pragma once
#include <c10/core/Device.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "halo/bench_report.h"

namespace halo::cli {

// "512,4K,1M" -> {512, 4096, 1048576}; a usage error naming `option` otherwise.
std::vector<int64_t> parse_count_list(const std::string& text, const std::string& option);

// "NVIDIA H100 80GB HBM3" for a CUDA device, "cpu" for the CPU.
std::string device_name(const c10::Device& device);

// Adds --out and --append.
void add_output_options(cxxopts::Options& options);

class BenchOutput {
 public:
  // `report` has the title, columns and notes; `chart` draws the PNG from all rows.
  BenchOutput(const cxxopts::ParseResult& result, const c10::Device& device, int argc, char** argv, BenchReport report,
              std::function<RgbImage(const nlohmann::json& rows)> chart);
  // Stamps the row (device, date, commit, command) and, with --out, rewrites the three files.
  void add(nlohmann::json& row);

 private:
  std::string prefix_, device_name_, command_;
  BenchReport report_;
  std::function<RgbImage(const nlohmann::json&)> chart_;
};

}  // namespace halo::cli
