// One step of a benchmark (a decode step, a training step) recorded with LibTorch's Kineto
// profiler: a chrome trace (chrome://tracing, Perfetto) and a summary of where the step's time
// went. On a GPU: the top CUDA kernels by total time, the number of kernel launches, and GPU
// busy time (the union of kernel, copy and memset intervals) against the step's wall time, so a
// launch-bound step shows as a small busy fraction. On the CPU: the top operators by inclusive
// time (nested operators count in their parents too).
#pragma once
#include <c10/core/Device.h>
#include <cxxopts.hpp>

#include <functional>
#include <string>

namespace halo::cli {

// Adds --profile FILE to a bench's options.
void add_profile_option(cxxopts::Options& options);

// Runs `step` once under the profiler (the device synchronized before and after), saves the
// trace to `trace_path` and returns the summary, `top` rows at most.
std::string profile_step(const std::function<void()>& step, const c10::Device& device, const std::string& trace_path,
                         int top = 25);

}  // namespace halo::cli
