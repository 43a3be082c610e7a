// The profiler is LibTorch's Kineto API (torch/csrc/autograd/profiler_kineto.h): prepare and
// enable with activities {CPU} or {CPU, CUDA}, run the step, disable to get the events, save
// the trace. Event kinds are libkineto's ActivityType codes.
#include "cli/bench/step_profile.h"

#include <kineto/ActivityType.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "halo/device.h"
#include "halo/error.h"

namespace halo::cli {
namespace {

namespace profiler = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

bool is_kind(const profiler::KinetoEvent& e, libkineto::ActivityType kind) {
  return e.activityType() == static_cast<uint8_t>(kind);
}

// Total length of the union of [start, end) intervals, in ns.
uint64_t covered_ns(std::vector<std::pair<uint64_t, uint64_t>> intervals) {
  std::sort(intervals.begin(), intervals.end());
  uint64_t total = 0, end = 0;
  for (const auto& [s, e] : intervals) {
    if (e <= end) continue;
    total += e - std::max(s, end);
    end = e;
  }
  return total;
}

std::string shorten(const std::string& name, size_t width) {
  return name.size() <= width ? name : name.substr(0, width - 3) + "...";
}

}  // namespace

void add_profile_option(cxxopts::Options& options) {
  // clang-format off
  options.add_options()("profile", "Record one step with the Kineto profiler: a chrome trace to FILE, a summary printed",
                        cxxopts::value<std::string>());
  // clang-format on
}

std::string profile_step(const std::function<void()>& step, const c10::Device& device, const std::string& trace_path,
                         int top) {
  std::set<ActivityType> activities{ActivityType::CPU};
  if (device.is_cuda()) activities.insert(ActivityType::CUDA);
  const ProfilerConfig config(ProfilerState::KINETO);
  synchronize(device);
  profiler::prepareProfiler(config, activities);
  profiler::enableProfiler(config, activities);
  const auto start = std::chrono::steady_clock::now();
  step();
  synchronize(device);
  const double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::unique_ptr<profiler::ProfilerResult> result = profiler::disableProfiler();
  if (!result) fail("the profiler returned no result");
  result->save(trace_path);

  // Device work: kernels (and copies/memsets for busy time) on a GPU, operators on the CPU.
  struct Total {
    int64_t calls = 0;
    uint64_t ns = 0;
  };
  std::map<std::string, Total> totals;
  std::vector<std::pair<uint64_t, uint64_t>> busy;
  int64_t launches = 0, copies = 0;
  for (const auto& e : result->events()) {
    const bool kernel = is_kind(e, libkineto::ActivityType::CONCURRENT_KERNEL);
    const bool copy =
        is_kind(e, libkineto::ActivityType::GPU_MEMCPY) || is_kind(e, libkineto::ActivityType::GPU_MEMSET);
    const bool op = is_kind(e, libkineto::ActivityType::CPU_OP);
    if (device.is_cuda() ? !(kernel || copy) : !op) continue;
    busy.emplace_back(e.startNs(), e.endNs());
    launches += kernel || op;
    copies += copy;
    if (kernel || op) {
      Total& t = totals[e.name()];
      t.calls += 1;
      t.ns += e.durationNs();
    }
  }
  std::vector<std::pair<std::string, Total>> ranked(totals.begin(), totals.end());
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second.ns > b.second.ns; });

  const double busy_ms = covered_ns(busy) / 1e6;
  const char* what = device.is_cuda() ? "kernel" : "operator";
  std::string out = cat("profile of one step (trace: ", trace_path, ")\n");
  out += cat("wall ", fixed(wall_ms, 3), " ms (the profiler adds host time per op); ",
             device.is_cuda() ? "GPU busy " : "CPU operators busy ", fixed(busy_ms, 3), " ms (",
             fixed(wall_ms > 0 ? 100 * busy_ms / wall_ms : 0, 1), "% of wall); ", launches, " ",
             device.is_cuda() ? "kernel launches" : "operator calls",
             device.is_cuda() ? cat(", ", copies, " copies/memsets") : "", "\n");
  char line[256];
  std::snprintf(line, sizeof line, "%7s %10s %8s  %s%s\n", "calls", "total ms", "% wall", what,
                device.is_cuda() ? "" : " (inclusive time)");
  out += line;
  for (size_t i = 0; i < ranked.size() && static_cast<int>(i) < top; ++i) {
    const double ms = ranked[i].second.ns / 1e6;
    std::snprintf(line, sizeof line, "%7lld %10.3f %7.1f%%  %s\n", static_cast<long long>(ranked[i].second.calls), ms,
                  wall_ms > 0 ? 100 * ms / wall_ms : 0.0, shorten(ranked[i].first, 90).c_str());
    out += line;
  }
  return out;
}

}  // namespace halo::cli
