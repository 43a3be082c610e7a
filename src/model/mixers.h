// The two token mixers of a layer, called by CausalLM (causal_lm.cpp) and by the tests:
// softmax attention (attention_mixer.cpp) and lightning attention (lightning_mixer.cpp).
// Internal to the library.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "halo/causal_lm.h"

namespace halo {

class InferenceCache;

// Softmax attention of one layer (x already normalized): [B, T, hidden] -> [B, T, hidden].
at::Tensor attention_mixer(const ModelConfig& config, const MixerWeights& w, const at::Tensor& x,
                           const ForwardContext& ctx, InferenceCache* cache, int64_t layer);
// Lightning attention of one layer; `decay` [nh] gamma values on x's device.
at::Tensor lightning_mixer(const ModelConfig& config, const MixerWeights& w, const at::Tensor& x,
                           const at::Tensor& decay, const ForwardContext& ctx, InferenceCache* cache, int64_t layer);

}  // namespace halo
