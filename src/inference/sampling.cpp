// TokenSampler: softmax over temperature-scaled float32 logits, the top-p nucleus kept by
// sorting, then one multinomial draw from a CPU generator seeded by the user (the draw happens
// on the CPU so that results do not depend on the device).
#include "halo/sampling.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "halo/error.h"

namespace halo {

TokenSampler::TokenSampler(const SamplingOptions& options)
    : options_(options), generator_(at::detail::createCPUGenerator(options.seed)) {
  if (options.temperature < 0) usage_fail("--temperature must be >= 0, got ", options.temperature);
  if (!(options.top_p > 0 && options.top_p <= 1)) usage_fail("--top-p must be in (0, 1], got ", options.top_p);
}

at::Tensor TokenSampler::next(const at::Tensor& logits) {
  if (options_.temperature == 0) return logits.argmax(-1);
  at::Tensor probs = at::softmax(logits.to(at::kFloat) / options_.temperature, -1).cpu();
  if (options_.top_p < 1) {
    auto [sorted, order] = probs.sort(-1, /*descending=*/true);
    at::Tensor before = sorted.cumsum(-1) - sorted;  // mass of the tokens ranked above
    sorted.masked_fill_(before >= options_.top_p, 0.0);
    probs = at::zeros_like(probs).scatter_(-1, order, sorted);
  }
  at::Tensor ids = at::multinomial(probs, 1, false, generator_).squeeze(-1);
  return ids.to(logits.device());
}

}  // namespace halo
