// The generation loop: InferenceMode, chunked prefill into the cache, then single-token steps.
// Only the last position's logits are computed during prefill.
#include "halo/generation.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>

#include "halo/causal_lm.h"
#include "halo/error.h"
#include "halo/inference_cache.h"

namespace halo {

std::vector<int64_t> generate(CausalLM& model, const std::vector<int64_t>& prompt,
                              const GenerationOptions& options,
                              const std::function<bool(int64_t)>& on_token, GenerationStats* stats) {
  if (prompt.empty()) usage_fail("the prompt is empty: give at least one token");
  if (options.prefill_chunk <= 0) usage_fail("prefill chunk must be positive");
  c10::InferenceMode guard;
  using clock = std::chrono::steady_clock;
  auto start = clock::now();
  InferenceCache cache(model.config().num_hidden_layers);
  TokenSampler sampler(options.sampling);
  at::Tensor ids = at::tensor(prompt, at::kLong).to(model.device()).unsqueeze(0);
  at::Tensor last_hidden;
  for (int64_t begin = 0; begin < ids.size(1); begin += options.prefill_chunk) {
    int64_t len = std::min<int64_t>(options.prefill_chunk, ids.size(1) - begin);
    last_hidden = model.forward_hidden(ids.narrow(1, begin, len), &cache).select(1, len - 1);
  }
  at::Tensor next = sampler.next(model.logits(last_hidden));
  auto decode_start = clock::now();
  std::vector<int64_t> out;
  while (static_cast<int64_t>(out.size()) < options.max_new_tokens) {
    const int64_t id = next.item<int64_t>();
    out.push_back(id);
    if (on_token && !on_token(id)) break;
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), id) != options.stop_ids.end()) break;
    if (static_cast<int64_t>(out.size()) == options.max_new_tokens) break;
    at::Tensor hidden = model.forward_hidden(next.view({1, 1}), &cache).select(1, 0);
    next = sampler.next(model.logits(hidden));
  }
  if (stats != nullptr) {
    auto end = clock::now();
    stats->prefill_seconds = std::chrono::duration<double>(decode_start - start).count();
    stats->decode_seconds = std::chrono::duration<double>(end - decode_start).count();
    stats->prompt_tokens = static_cast<int64_t>(prompt.size());
    stats->new_tokens = static_cast<int64_t>(out.size());
  }
  return out;
}

}  // namespace halo
