// Language-model losses that never materialize [tokens, vocab] logits whole (V = 151,936 for
// Qwen3): custom autograd functions that form the logits a slice of tokens at a time and, when
// gradients are wanted, compute d/dhidden and d/dweight in the same forward pass (held until
// backward, which only scales them: the float32 d/dweight is V x H x 4 bytes, 1.2 GB for
// Qwen3-1.7B). Logits and softmax are float32 for any model dtype (float64 models stay float64).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace halo {

// Mean next-token cross-entropy. hidden [N, H] (after the final norm), weight [V, H] (lm_head),
// targets [N] int64 (entries < 0 are ignored). Differentiable in hidden and weight.
at::Tensor chunked_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                 int64_t chunk = 1024);

// Mean over tokens of the forward KL(teacher || student) = sum_v p_t (log p_t - log p_s).
// The teacher's hidden states and lm_head are treated as constants.
at::Tensor chunked_kl_divergence(const at::Tensor& student_hidden, const at::Tensor& student_weight,
                                 const at::Tensor& teacher_hidden, const at::Tensor& teacher_weight,
                                 int64_t chunk = 1024);

}  // namespace halo
