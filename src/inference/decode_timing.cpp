// Prefill then timed greedy decode steps (see decode_timing.h).
#include "halo/decode_timing.h"

#include <ATen/ATen.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "halo/causal_lm.h"
#include "halo/decode_graph.h"
#include "halo/device.h"
#include "halo/error.h"
#include "halo/inference_cache.h"

namespace halo {

using clock_type = std::chrono::steady_clock;

void reset_peak_memory(const c10::Device& device) {
  if (!device.is_cuda()) return;
  c10::getDeviceAllocator(c10::DeviceType::CUDA)->emptyCache();
  c10::getDeviceAllocator(c10::DeviceType::CUDA)->resetPeakStats(device.index());
}

double peak_memory_gb(const c10::Device& device) {
  if (!device.is_cuda()) return 0;
  const auto stats = c10::getDeviceAllocator(c10::DeviceType::CUDA)->getDeviceStats(device.index());
  return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak / 1e9;
}

DecodeTiming time_decode(CausalLM& model, const DecodeTimingOptions& options) {
  if (options.batch < 1 || options.context < 1 || options.steps < 1 || options.prefill_chunk < 1) {
    usage_fail("decode timing needs a positive batch, context, step count and prefill chunk");
  }
  c10::InferenceMode guard;
  const c10::Device device = model.device();
  const int64_t vocab = model.config().vocab_size, batch = options.batch;
  auto seconds_since = [&](clock_type::time_point start) {
    synchronize(device);
    return std::chrono::duration<double>(clock_type::now() - start).count();
  };
  reset_peak_memory(device);
  DecodeTiming timing;
  InferenceCache cache(model.config().num_hidden_layers);
  cache.reserve(options.context + options.steps + (options.after ? 1 : 0));
  auto start = clock_type::now();
  at::Tensor hidden;
  for (int64_t begin = 0; begin < options.context; begin += options.prefill_chunk) {
    const int64_t len = std::min(options.prefill_chunk, options.context - begin);
    at::Tensor ids = at::randint(0, vocab, {batch, len}, at::TensorOptions().dtype(at::kLong).device(device));
    hidden = model.forward_hidden(ids, &cache).select(1, len - 1);
  }
  at::Tensor next = model.logits(hidden).argmax(-1);
  timing.prefill_s = seconds_since(start);
  std::unique_ptr<DecodeGraph> graph;
  if (options.cuda_graph && DecodeGraph::replays_on(device)) graph = std::make_unique<DecodeGraph>(model, cache);
  auto decode_one = [&] {
    at::Tensor logits = graph != nullptr
                            ? graph->step(next)
                            : model.logits(model.forward_hidden(next.view({batch, 1}), &cache).select(1, 0));
    next = logits.argmax(-1);
  };
  std::vector<double> ms;
  for (int64_t s = 0; s < options.steps; ++s) {
    auto t0 = clock_type::now();
    decode_one();
    ms.push_back(1000 * seconds_since(t0));
  }
  std::sort(ms.begin(), ms.end());
  timing.ms_per_token = ms[ms.size() / 2];
  timing.cache_gb = cache.bytes() / 1e9;
  timing.peak_gb = peak_memory_gb(device);
  if (options.after) options.after(decode_one);
  return timing;
}

}  // namespace halo
