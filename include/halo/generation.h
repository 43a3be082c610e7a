// Autoregressive generation with the inference cache: chunked prefill of the prompt (bounded
// memory for long prompts), then one token per step until max_new_tokens or a stop id. The cache
// holds prompt + max_new_tokens positions from the start.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "halo/sampling.h"

namespace halo {

class CausalLM;

struct GenerationOptions {
  int64_t max_new_tokens = 64;
  SamplingOptions sampling;
  std::vector<int64_t> stop_ids;  // generation ends after emitting one of these
  int64_t prefill_chunk = 2048;
  // Decode steps replay one CUDA graph (DecodeGraph) when the model is on a CUDA device and halo
  // was built with HALO_CUDA; false keeps the eager steps (for comparison).
  bool cuda_graph = true;
};

struct GenerationStats {
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t prompt_tokens = 0, new_tokens = 0;
  int64_t decode_steps = 0;  // forward calls after the prefill
  // The steps after the first, whose time also holds one-off work (the CUDA graph's warm-up and
  // capture): the steady per-token speed.
  double steady_seconds = 0;
  int64_t steady_steps = 0;
  // Decode steps per second: the steady rate when there are steps after the first.
  double steps_per_second() const {
    if (steady_steps > 0 && steady_seconds > 0) return steady_steps / steady_seconds;
    return decode_seconds > 0 ? decode_steps / decode_seconds : 0.0;
  }
};

// Continues several prompts at once. Shorter prompts are left-padded (the padding never reaches
// attention or recurrent state, so each row gets the tokens it would get alone); each row stops
// at its own stop id. `on_token(row, id)` sees each new id; returning false stops that row.
std::vector<std::vector<int64_t>> generate_batch(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                                 const GenerationOptions& options,
                                                 const std::function<bool(int64_t row, int64_t id)>& on_token = {},
                                                 GenerationStats* stats = nullptr);

// Continues `prompt` (batch 1). `on_token` sees each new id as it is chosen; returning false
// stops generation. Returns the new ids (without the prompt).
std::vector<int64_t> generate(CausalLM& model, const std::vector<int64_t>& prompt, const GenerationOptions& options,
                              const std::function<bool(int64_t)>& on_token = {}, GenerationStats* stats = nullptr);

}  // namespace halo
