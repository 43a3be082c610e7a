// Perplexity of a token stream under a causal LM, by sliding windows: each window holds up to
// `context` tokens and starts `stride` after the previous one; only tokens not scored by an
// earlier window are scored (the Hugging Face "strided" method). Every scored token sees at
// least one token of context in its window, so with stride == context (disjoint windows) the
// first token of each later window goes unscored; a stride below the context scores all. Logits are formed a slice of
// positions at a time, so a 151k vocabulary never needs a [T, V] float32 tensor for the whole window.
// With `tail` > 0 the last `tail` positions of every full-length window are also summed apart:
// the "last-1K" perplexity of tokens that each see at least context - tail tokens before them,
// which shows whether a model uses (or is hurt by) the far context where the mean hides it.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace halo {

class CausalLM;

struct PerplexityResult {
  double nll_sum = 0;       // natural-log loss summed over scored tokens
  int64_t tokens = 0;       // tokens scored
  double tail_nll_sum = 0;  // the same over the last `tail` positions of full windows
  int64_t tail_tokens = 0;
  double mean_nll() const { return tokens > 0 ? nll_sum / tokens : 0.0; }
  double perplexity() const;
  double tail_perplexity() const;  // 0 when no window was full
};

// Summed negative log-likelihood of `targets` [N] given hidden states [N, hidden], computed in
// float32 over slices of `slice` positions.
double summed_nll(const CausalLM& model, const at::Tensor& hidden, const at::Tensor& targets, int64_t slice = 512);

// `on_window(scored_so_far)` is called after each window (for progress reporting). With
// `shards` > 1 only the windows whose index modulo `shards` is `shard` are scored (one rank's
// share under torchrun): the sums of all shards' results are the whole text's.
PerplexityResult perplexity(CausalLM& model, const std::vector<int32_t>& ids, int64_t context, int64_t stride,
                            const std::function<void(int64_t)>& on_window = {}, int64_t tail = 0, int64_t shard = 0,
                            int64_t shards = 1);

// The last `tail` positions of the windows [end - context, end), one for each of `ends` (each at
// least `context`, at most the stream's length): the same tokens at any context, so that a
// comparison across contexts measures the context and not the text (the windows of a long
// context end where they end; a short context's disjoint windows would score other tokens).
// Shards split the ends as perplexity() splits its windows. Returns nll_sum and tokens of the
// tails (and the tail fields equal to them).
PerplexityResult tail_perplexity_at(CausalLM& model, const std::vector<int32_t>& ids, int64_t context, int64_t tail,
                                    const std::vector<int64_t>& ends, int64_t shard = 0, int64_t shards = 1);

}  // namespace halo
