// The `halo bench` measurements that live in their own files.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace halo::cli {

// "512,4K,1M" -> {512, 4096, 1048576}; a usage error naming `option` otherwise.
std::vector<int64_t> parse_count_list(const std::string& text, const std::string& option);

int bench_inference(int argc, char** argv);
int bench_training(int argc, char** argv);

}  // namespace halo::cli
