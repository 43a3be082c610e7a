// Choosing the next token from logits: greedy (temperature 0) or temperature + nucleus (top-p)
// sampling from a seeded generator, so that a run is reproducible from its seed.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace halo {

struct SamplingOptions {
  double temperature = 0.0;  // 0: greedy
  double top_p = 1.0;        // keep the smallest set of tokens whose probability reaches top_p
  uint64_t seed = 0;
};

class TokenSampler {
 public:
  explicit TokenSampler(const SamplingOptions& options);
  // logits [B, V] (any dtype/device) -> next ids [B] int64 on the same device.
  at::Tensor next(const at::Tensor& logits);

 private:
  SamplingOptions options_;
  at::Generator generator_;
};

}  // namespace halo
