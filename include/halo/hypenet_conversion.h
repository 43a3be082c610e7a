// Stage 0 of HALO (../shared/docs/METHOD.md §3): a HypeNet built from a Qwen3 teacher without training.
// Attention layers keep the teacher's weights, lose RoPE and gain an output gate (normal(0,
// 0.02)); every other layer becomes lightning attention initialized from the teacher's
// attention: q_proj, o_proj, q_norm, k_norm copied, k_proj/v_proj expanded from KV heads to all
// heads by repeat-interleave (new head i <- KV head floor(i/g)), z_proj with PyTorch's default
// Linear init, o_norm ones.
#pragma once
#include <ATen/core/Generator.h>

#include <cstdint>
#include <string>
#include <vector>

#include "halo/causal_lm.h"

namespace halo {

// The attention layers of a released HypeNet: "hypenet-2b" (Qwen3-1.7B), "hypenet-5b"
// (Qwen3-4B), "hypenet-9b" (Qwen3-8B). Fails when the teacher's layer count does not fit.
std::vector<int64_t> preset_attention_layers(const std::string& preset, const ModelConfig& teacher);

// "2,3,6" -> {2, 3, 6}; checks range and duplicates against `num_layers`.
std::vector<int64_t> parse_layer_list(const std::string& text, int64_t num_layers);

// The HypeNet config for a teacher with `attention_layers` kept as softmax attention.
ModelConfig hypenet_config(const ModelConfig& teacher, const std::vector<int64_t>& attention_layers);

// A lightning mixer initialized from one teacher attention layer (also stage 1's start). K/V
// are expanded to student.lightning_nkv heads (all heads with expand_kv_proj, the default).
MixerWeights lightning_from_attention(const ModelConfig& teacher, const ModelConfig& student,
                                      const MixerWeights& attention, at::Generator& generator);

// Stage 0: the student, in the teacher's dtype and on its device.
CausalLM convert_to_hypenet(CausalLM& teacher, const ModelConfig& student_config, uint64_t seed);

}  // namespace halo
