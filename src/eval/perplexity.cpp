// Strided perplexity evaluation in inference mode.
#include "halo/perplexity.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>

#include "halo/causal_lm.h"
#include "halo/error.h"

namespace halo {

double PerplexityResult::perplexity() const {
  return std::exp(mean_nll());
}

double PerplexityResult::tail_perplexity() const {
  return tail_tokens > 0 ? std::exp(tail_nll_sum / tail_tokens) : 0.0;
}

double summed_nll(const CausalLM& model, const at::Tensor& hidden, const at::Tensor& targets, int64_t slice) {
  double total = 0;
  for (int64_t begin = 0; begin < hidden.size(0); begin += slice) {
    const int64_t len = std::min(slice, hidden.size(0) - begin);
    at::Tensor logits = model.logits(hidden.narrow(0, begin, len)).to(at::kFloat);
    at::Tensor logp = at::log_softmax(logits, -1);
    at::Tensor picked = logp.gather(1, targets.narrow(0, begin, len).unsqueeze(1));
    total -= picked.sum().item<double>();
  }
  return total;
}

PerplexityResult perplexity(CausalLM& model, const std::vector<int32_t>& ids, int64_t context, int64_t stride,
                            const std::function<void(int64_t)>& on_window, int64_t tail, int64_t shard,
                            int64_t shards) {
  if (context < 2) usage_fail("--context must be at least 2, got ", context);
  if (shards < 1 || shard < 0 || shard >= shards) fail("perplexity: shard ", shard, " of ", shards);
  if (stride < 1 || stride > context) usage_fail("--stride must be in [1, context], got ", stride);
  if (tail < 0 || tail >= context) usage_fail("--tail must be in [0, context), got ", tail);
  if (ids.size() < 2) fail("the text has fewer than 2 tokens: nothing to score");
  c10::InferenceMode guard;
  const int64_t n = static_cast<int64_t>(ids.size());
  at::Tensor all = at::tensor(at::ArrayRef<int32_t>(ids), at::kInt).to(at::kLong);
  PerplexityResult result;
  int64_t scored_until = 1;  // positions < scored_until are already scored (position 0 never is)
  for (int64_t begin = 0, index = 0; scored_until < n; begin += stride, ++index) {
    const int64_t end = std::min(begin + context, n);
    // Position p (global) is predicted from the hidden state at p - 1.
    const int64_t first = std::max(scored_until, begin + 1);
    const int64_t count = end - first;
    if (count > 0 && index % shards != shard) {
      scored_until = end;  // another shard's window
    } else if (count > 0) {
      at::Tensor window = all.narrow(0, begin, end - begin).to(model.device());
      at::Tensor hidden = model.forward_hidden(window.unsqueeze(0)).squeeze(0);
      // [first, split) and [split, end): the second is the window's tail when the window is full.
      const int64_t split = tail > 0 && end - begin == context ? std::max(first, end - tail) : end;
      auto nll = [&](int64_t from, int64_t to) {
        return to > from ? summed_nll(model, hidden.narrow(0, from - 1 - begin, to - from),
                                      window.narrow(0, from - begin, to - from))
                         : 0.0;
      };
      const double tail_nll = nll(split, end);
      result.nll_sum += nll(first, split) + tail_nll;
      result.tail_nll_sum += tail_nll;
      result.tail_tokens += end - split;
      result.tokens += count;
      scored_until = end;
    }
    if (on_window) on_window(result.tokens);
    if (end == n) break;
  }
  return result;
}

PerplexityResult tail_perplexity_at(CausalLM& model, const std::vector<int32_t>& ids, int64_t context, int64_t tail,
                                    const std::vector<int64_t>& ends, int64_t shard, int64_t shards) {
  if (tail < 1 || tail >= context) usage_fail("the tail must be in [1, context), got ", tail, " for context ", context);
  if (shards < 1 || shard < 0 || shard >= shards) fail("tail_perplexity_at: shard ", shard, " of ", shards);
  const int64_t n = static_cast<int64_t>(ids.size());
  for (int64_t end : ends) {
    if (end < context || end > n) fail("tail_perplexity_at: window end ", end, " outside [", context, ", ", n, "]");
  }
  c10::InferenceMode guard;
  at::Tensor all = at::tensor(at::ArrayRef<int32_t>(ids), at::kInt).to(at::kLong);
  PerplexityResult result;
  for (size_t index = static_cast<size_t>(shard); index < ends.size(); index += static_cast<size_t>(shards)) {
    at::Tensor window = all.narrow(0, ends[index] - context, context).to(model.device());
    at::Tensor hidden = model.forward_hidden(window.unsqueeze(0)).squeeze(0);
    // Position p of the window is predicted from the hidden state at p - 1.
    result.nll_sum +=
        summed_nll(model, hidden.narrow(0, context - tail - 1, tail), window.narrow(0, context - tail, tail));
    result.tokens += tail;
  }
  result.tail_nll_sum = result.nll_sum;
  result.tail_tokens = result.tokens;
  return result;
}

}  // namespace halo
