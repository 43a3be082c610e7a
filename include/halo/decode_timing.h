// Decode speed at a given context: prefill `context` tokens into an InferenceCache (chunks of
// `prefill_chunk`), then time greedy decode steps one by one (each synchronized) and take the
// median, replaying one CUDA graph per step where DecodeGraph can (the first step includes the
// capture; the median ignores it). Token ids are random: speed depends on the architecture only,
// so `halo bench inference` (random weights) and the experiment report (trained weights) share
// this one measurement. Peak memory is the CUDA caching allocator's, reset before the prefill.
#pragma once
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>

namespace halo {

class CausalLM;

struct DecodeTimingOptions {
  int64_t batch = 1;
  int64_t context = 4096;
  int64_t steps = 16;  // timed decode steps
  int64_t prefill_chunk = 16384;
  bool cuda_graph = true;  // replay a DecodeGraph when the device allows it
  // Called once after the timed steps with a function that runs one more step (for profiling).
  std::function<void(const std::function<void()>& step)> after = {};
};

struct DecodeTiming {
  double prefill_s = 0;
  double ms_per_token = 0;  // median over the timed steps
  double cache_gb = 0;      // the KV cache and RNN states
  double peak_gb = 0;       // 0 off CUDA
};

// Throws c10::OutOfMemoryError when the context does not fit (callers report it as such).
DecodeTiming time_decode(CausalLM& model, const DecodeTimingOptions& options);

// The CUDA caching allocator's peak, reset (and cache emptied) / read in GB; no-ops off CUDA.
void reset_peak_memory(const c10::Device& device);
double peak_memory_gb(const c10::Device& device);

}  // namespace halo
