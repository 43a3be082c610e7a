// The generation loop: InferenceMode, left padding recorded in the cache, chunked prefill,
// then single-token steps for all rows until every row has stopped. Only the last position's
// logits are computed during prefill. On CUDA the steps replay a DecodeGraph, made at the first
// step; elsewhere (or with cuda_graph off) each step is an eager forward_hidden. The stats keep
// the steps after the first apart, since the first also makes the graph.
#include "halo/generation.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <memory>

#include "halo/causal_lm.h"
#include "halo/decode_graph.h"
#include "halo/error.h"
#include "halo/inference_cache.h"

namespace halo {

std::vector<std::vector<int64_t>> generate_batch(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                                 const GenerationOptions& options,
                                                 const std::function<bool(int64_t, int64_t)>& on_token,
                                                 GenerationStats* stats) {
  if (prompts.empty()) usage_fail("no prompts given");
  if (options.prefill_chunk <= 0) usage_fail("prefill chunk must be positive");
  size_t longest = 0, shortest = SIZE_MAX;
  for (const auto& p : prompts) {
    longest = std::max(longest, p.size());
    shortest = std::min(shortest, p.size());
  }
  if (shortest == 0) usage_fail("a prompt is empty: give at least one token");
  c10::InferenceMode guard;
  using clock = std::chrono::steady_clock;
  auto start = clock::now();
  const int64_t rows = static_cast<int64_t>(prompts.size());
  std::vector<int64_t> flat(rows * longest, 0), padding(rows);
  for (int64_t r = 0; r < rows; ++r) {
    padding[r] = static_cast<int64_t>(longest - prompts[r].size());
    std::copy(prompts[r].begin(), prompts[r].end(), flat.begin() + r * longest + padding[r]);
  }
  InferenceCache cache(model.config().num_hidden_layers);
  cache.reserve(static_cast<int64_t>(longest) + std::max<int64_t>(options.max_new_tokens, 0));
  if (shortest != longest) cache.set_left_padding(at::tensor(padding, at::kLong).to(model.device()));
  TokenSampler sampler(options.sampling);
  at::Tensor ids = at::tensor(flat, at::kLong).view({rows, static_cast<int64_t>(longest)}).to(model.device());
  at::Tensor last_hidden;
  for (int64_t begin = 0; begin < ids.size(1); begin += options.prefill_chunk) {
    int64_t len = std::min<int64_t>(options.prefill_chunk, ids.size(1) - begin);
    last_hidden = model.forward_hidden(ids.narrow(1, begin, len), &cache).select(1, len - 1);
  }
  at::Tensor next = sampler.next(model.logits(last_hidden));
  const auto decode_start = clock::now();
  auto first_step_done = decode_start;
  std::vector<std::vector<int64_t>> out(rows);
  std::vector<bool> done(rows, options.max_new_tokens <= 0);
  int64_t steps = 0;
  const bool use_graph = options.cuda_graph && DecodeGraph::replays_on(model.device());
  std::unique_ptr<DecodeGraph> graph;
  while (std::find(done.begin(), done.end(), false) != done.end()) {
    at::Tensor chosen = next.cpu();  // waits for the step
    if (steps == 1) first_step_done = clock::now();
    for (int64_t r = 0; r < rows; ++r) {
      if (done[r]) continue;
      const int64_t id = chosen[r].item<int64_t>();
      out[r].push_back(id);
      const bool stop = std::find(options.stop_ids.begin(), options.stop_ids.end(), id) != options.stop_ids.end();
      if ((on_token && !on_token(r, id)) || stop || static_cast<int64_t>(out[r].size()) >= options.max_new_tokens) {
        done[r] = true;
      }
    }
    if (std::find(done.begin(), done.end(), false) == done.end()) break;
    at::Tensor logits;
    if (use_graph) {
      if (graph == nullptr) graph = std::make_unique<DecodeGraph>(model, cache);
      logits = graph->step(next);
    } else {
      logits = model.logits(model.forward_hidden(next.view({rows, 1}), &cache).select(1, 0));
    }
    next = sampler.next(logits);
    ++steps;
  }
  if (stats != nullptr) {
    auto end = clock::now();
    stats->prefill_seconds = std::chrono::duration<double>(decode_start - start).count();
    stats->decode_seconds = std::chrono::duration<double>(end - decode_start).count();
    stats->prompt_tokens = static_cast<int64_t>(longest) * rows;
    stats->new_tokens = 0;
    for (const auto& o : out) stats->new_tokens += static_cast<int64_t>(o.size());
    stats->decode_steps = steps;
    stats->steady_steps = std::max<int64_t>(steps - 1, 0);
    stats->steady_seconds = steps > 1 ? std::chrono::duration<double>(end - first_step_done).count() : 0.0;
  }
  return out;
}

std::vector<int64_t> generate(CausalLM& model, const std::vector<int64_t>& prompt, const GenerationOptions& options,
                              const std::function<bool(int64_t)>& on_token, GenerationStats* stats) {
  std::function<bool(int64_t, int64_t)> per_row;
  if (on_token) per_row = [&](int64_t, int64_t id) { return on_token(id); };
  return generate_batch(model, {prompt}, options, per_row, stats)[0];
}

}  // namespace halo
